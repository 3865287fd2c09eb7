"""Simulation benchmark: control steps per second with three RGB-D views, and expert success rates.

Writes ``bench/results/sim.json`` and ``bench/results/sim.md``.

    .venv/bin/python bench/bench_sim.py --seeds 50           # full figure (about 5-10 min on 2 cores)
    .venv/bin/python bench/bench_sim.py --seeds 5 --steps 60  # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def _probe() -> dict:
    """bench/machine_info.py's description (with the CPU probe: native bf16, thread calibration)."""
    try:
        from machine_info import machine  # bench/ is on sys.path when run as a script
    except ImportError:
        return {}
    return {"description": machine()}


def bench_speed(task: str, image_size: int, steps: int, control_hz: float, arm_mesh: str = "detailed") -> dict:
    """Control steps/s of the env alone (holding still) and with the scripted expert, and the time of one
    3-camera render (``arm_mesh``: what the arm's visual geoms draw, bora_sim.scene)."""
    from bora_policy.common.state import state_of
    from bora_sim.env import make_env
    from bora_sim.experts import ScriptedExpert

    env = make_env(task, "standard", image_size=image_size, control_hz=control_hz, render=True, arm_mesh=arm_mesh)
    obs, _ = env.reset(seed=0)
    hold = state_of(obs)  # joint targets = the measured joint positions
    env.step(hold)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(hold)
    env_only = steps / (time.perf_counter() - t0)
    renderer = env._renderer()
    t0 = time.perf_counter()
    for _ in range(steps):
        renderer.render(env.data)
    render_ms = (time.perf_counter() - t0) / steps * 1e3
    env.reset(seed=0)
    ex = ScriptedExpert(env, seed=0)
    t0 = time.perf_counter()
    n = 0
    while n < steps:
        _, _, term, trunc, _ = env.step(ex.act())
        n += 1
        if term or trunc:
            env.reset(seed=n)
            ex.reset()
    with_expert = steps / (time.perf_counter() - t0)
    triangles = int(env.model.mesh_facenum.sum())
    env.close()
    return {
        "task": task,
        "image_size": image_size,
        "arm_mesh": arm_mesh,
        "mesh_triangles": triangles,
        "control_hz": control_hz,
        "cameras": 3,
        "render_ms_3_cameras": render_ms,
        "steps_per_s_env": env_only,
        "steps_per_s_env_and_expert": with_expert,
    }


def bench_experts(tasks, sets, seeds: int, progress: bool = True) -> dict:
    from bora_sim.env import make_env
    from bora_sim.experts import ScriptedExpert

    out = {}
    for task in tasks:
        for oset in sets:
            env = make_env(task, oset, render=False)
            ok, failures, t0 = 0, [], time.perf_counter()
            for seed in range(seeds):
                env.reset(seed=seed)
                ex = ScriptedExpert(env, seed=seed)
                term = trunc = False
                while not (term or trunc):
                    _, _, term, trunc, info = env.step(ex.act())
                ok += bool(info["success"])
                if not info["success"]:
                    failures.append(seed)
            rate = ok / seeds
            out[f"{task}/{oset}"] = {
                "task": task,
                "object_set": oset,
                "episodes": seeds,
                "successes": ok,
                "success_rate": rate,
                "failed_seeds": failures,
                "wall_s": time.perf_counter() - t0,
            }
            if progress:
                print(f"{task:16s} {oset:9s} {ok}/{seeds} = {rate:.0%}", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=50, help="episodes per task and object set")
    p.add_argument("--steps", type=int, default=200, help="control steps timed per speed measurement")
    p.add_argument("--image-sizes", type=int, nargs="+", default=[64, 96], help="64: the demo's policy; 96: the graph")
    p.add_argument(
        "--arm-meshes", nargs="+", default=["collision", "detailed"], help="bora_sim.scene.ARM_MESHES to compare"
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--skip-experts", action="store_true")
    args = p.parse_args(argv)
    import torch  # noqa: F401  (not used; keeps thread settings consistent with the other benches)

    torch.set_num_threads(1)
    from bora_sim.tasks import TASKS

    tasks = list(TASKS)
    speed = []
    for t in ("pick_plush_toy", "open_box"):
        for size in args.image_sizes:
            for mesh in args.arm_meshes:  # alternated on the same machine, one after the other
                s = bench_speed(t, size, args.steps, 10.0, arm_mesh=mesh)
                speed.append(s)
                print(
                    f"speed {t} {size} px arm_mesh={mesh}: render {s['render_ms_3_cameras']:.1f} ms, "
                    f"{s['steps_per_s_env']:.1f} steps/s env, {s['steps_per_s_env_and_expert']:.1f} with expert IK",
                    flush=True,
                )
    load = os.getloadavg()
    out = Path(args.out)
    if args.skip_experts:  # keep the expert figures of an earlier full run
        old = json.loads((out / "sim.json").read_text()) if (out / "sim.json").exists() else {}
        experts, args.seeds = old.get("experts", {}), old.get("seeds", args.seeds)
    else:
        experts = bench_experts(tasks, ("standard", "unseen"), args.seeds)
    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "loadavg_during_speed": load,
            **_probe(),
        },
        "speed": speed,
        "experts": experts,
        "seeds": args.seeds,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim.json").write_text(json.dumps(result, indent=2))
    desc = result["machine"].get("description", {})
    lines = [
        "# bora_sim benchmark",
        "",
        "Control steps per second with three RGB-D views, 10 Hz control (50 physics steps of 2 ms per control "
        "step), EGL on CPU (Mesa llvmpipe), 1 torch thread; `arm_mesh`: what the arm's visual geoms draw "
        "(bora_sim.scene: `detailed` = the Panda's visual meshes, the default; `collision` = its low-poly "
        "collision meshes, opt-in: policies trained on them learned worse, bench/results/arm_mesh_learning.md). "
        f"Commit {desc.get('commit', 'n/a')}; machine: {desc.get('cpu', platform.processor())}, "
        f"{os.cpu_count()} logical CPUs, 1-min load average {load[0]:.1f} after timing.",
        "",
        "| task | image px | arm_mesh | mesh triangles | render 3 cameras (ms) | env steps/s "
        "| env + expert IK steps/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in speed:
        lines.append(
            f"| {s['task']} | {s['image_size']} | {s['arm_mesh']} | {s['mesh_triangles']:,} | "
            f"{s['render_ms_3_cameras']:.1f} | {s['steps_per_s_env']:.1f} | {s['steps_per_s_env_and_expert']:.1f} |"
        )
    if experts:
        lines += [
            "",
            f"Scripted expert success rate ({args.seeds} seeds per cell, clean knobs, no rendering):",
            "",
            "| task | standard | unseen |",
            "| --- | --- | --- |",
        ]
        for t in tasks:
            cells = [
                f"{experts[f'{t}/{s}']['successes']}/{args.seeds} ({experts[f'{t}/{s}']['success_rate']:.0%})"
                for s in ("standard", "unseen")
            ]
            lines.append(f"| {t} | {cells[0]} | {cells[1]} |")
    (out / "sim.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
