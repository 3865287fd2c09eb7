"""Evaluation throughput: episodes per minute one at a time against N robots in lockstep (bora eval --num-envs).

Builds the demo configuration's policy (``make_demo_vla``: paligemma-tiny, chunk k = 8, expert 128 x 2, 27
joints, 3 cameras at 64 px; random init: the inference cost of the demo's policy, it does not solve the
task, so every episode runs to the task's time limit, the slowest case) and runs ``bora eval`` on
press_button with the SAME seeds (``seed0`` = the demo's 100000) once per ``--num-envs`` value. Reports
episodes per minute of wall time and per CPU-minute (process CPU time: not moved by other work on a
shared machine), and checks that every setting gave the same episodes (seed, success, steps, plans and the
final task state: object poses, progress, contacts).
Writes ``bench/results/eval.json`` and ``eval.md``.

    .venv/bin/python bench/bench_eval.py [--trials 8] [--num-envs 1 4 2p] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the robots' processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def build_run(root: Path) -> Path:
    import numpy as np

    from bora_policy.models.normalizer import Normalizer
    from bora_policy.runtime.policy_runner import make_demo_vla
    from bora_sim.hand import get_hand
    from bora_sim.scene import ARM_HOME
    from bora_trainer.checkpoint import write_run_files

    home = np.concatenate([ARM_HOME, np.asarray(get_hand("shadow").posture("open"), dtype=np.float64)])
    run = root / "run"
    make_demo_vla(run / "policy", home, chunk_size=8)
    norm = Normalizer.load(run / "policy" / "normalizer.json")
    write_run_files(run, config={"algo": "cp-bc", "k": 8}, normalizer=norm.to_dict())
    return run


def breakdown(run: Path, task: str, threads: int) -> dict:
    """CPU time of one control step of the simulated robot (physics + 3 camera renders) against one inference,
    alone and batched x3: what batching can save per episode."""
    import torch

    from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig
    from bora_sim.env import make_env
    from bora_trainer.evaluate_vec import infer_batch

    torch.set_num_threads(threads)
    runner = PolicyRunner.from_paths(str(run / "policy"), cfg=PolicyRunnerConfig(deterministic=True))
    env = make_env(task, "standard", image_size=64)
    obs, _ = env.reset(seed=0)
    q = runner.processor.state_of(obs)  # hold the measured state; also the policy's input
    c0 = time.process_time()
    for _ in range(30):
        obs, *_ = env.step(q)
    step = (time.process_time() - c0) / 30
    env.close()
    runner.infer(obs["color"], q, obs["instruction"])
    c0 = time.process_time()
    for _ in range(8):
        runner.infer(obs["color"], q, obs["instruction"])
    one = (time.process_time() - c0) / 8
    c0 = time.process_time()
    for _ in range(4):
        infer_batch(runner, [obs["color"]] * 3, [q] * 3, [obs["instruction"]] * 3)
    three = (time.process_time() - c0) / 4
    return {"env_step_cpu_ms": 1e3 * step, "infer_cpu_ms": 1e3 * one, "infer_batch3_cpu_ms_per_robot": 1e3 * three / 3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--num-envs", nargs="+", default=["1", "4", "2p"],
                    help="settings: N = N robots in this process, Np = N robots each in its own process")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the demo's eval: 1 per job)")
    ap.add_argument("--max-steps", type=int, default=0, help="cap on control steps (0: the task's limit)")
    ap.add_argument("--task", default="press_button")
    ap.add_argument("--shared", default="", help="say in eval.md that the machine was shared (free text)")
    args = ap.parse_args(argv)
    from bora_trainer import evaluate

    out: dict = {"machine": machine(), "config": vars(args), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        run = build_run(Path(tmp))
        out["breakdown"] = breakdown(run, args.task, args.threads)
        for setting in args.num_envs:
            n, procs = int(str(setting).rstrip("p")), str(setting).endswith("p")
            res_path = Path(tmp) / f"eval_{setting}.json"
            argv_e = ["--run", str(run), "--task", args.task, "--objects", "standard", "--trials", str(args.trials),
                      "--seed0", "100000", "--replan-steps", "8", "--image-size", "64", "--threads",
                      str(args.threads), "--no-values", "--no-progress", "--num-envs", str(n), "--out", str(res_path)]
            if args.max_steps:
                argv_e += ["--max-steps", str(args.max_steps)]
            if procs:
                argv_e.append("--env-processes")
            t0, c0 = time.perf_counter(), _cpu()
            rc = evaluate.main(argv_e)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            if rc != 0:
                print(f"bench_eval: bora eval --num-envs {n} failed (exit {rc})", file=sys.stderr)
                return 1
            r = json.loads(res_path.read_text())
            # the final task state too (object poses, progress, contacts): a random-init policy fails every episode
            # at the time limit whatever it does, so seed, success, steps and plans alone would not see a wrong action
            eps = [(e["seed"], e["success"], e["steps"], e["plans"], json.dumps(e.get("final"), sort_keys=True))
                   for e in r["episodes"]]
            out["runs"].append({
                "num_envs": n,
                "env_processes": procs,
                "trials": r["trials"],
                "successes": r["successes"],
                "steps": sum(e[2] for e in eps),
                "wall_s": wall,
                "cpu_s": cpu,
                "episodes_per_min": 60 * r["trials"] / wall,
                "episodes_per_cpu_min": 60 * r["trials"] / cpu,
                "episodes": eps,
            })
            print(f"num_envs {setting}: {r['trials']} episodes in {wall:.1f} s wall / {cpu:.1f} s CPU", file=sys.stderr)
    base = out["runs"][0]
    for r in out["runs"]:
        r["same_episodes_as_first"] = r["episodes"] == base["episodes"]
        r["speedup_wall"] = r["episodes_per_min"] / base["episodes_per_min"]
        r["speedup_cpu"] = r["episodes_per_cpu_min"] / base["episodes_per_cpu_min"]
    write(out)
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1, default=str))
    return 0 if all(r["same_episodes_as_first"] for r in out["runs"]) else 1


def write(out: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(out, indent=1, default=str))
    m, c = out["machine"], out["config"]
    pr = m.get("cpu_probe", {})
    lines = [
        "# Evaluation throughput: one at a time vs vectorised",
        "",
        f"`bench/bench_eval.py`: `bora eval` of the demo configuration's policy (paligemma-tiny, k = 8, 3 cameras "
        f"at 64 px, random init: every episode runs to the task's limit) on {c['task']}/standard, "
        f"{c['trials']} episodes with seeds 100000.., replan every 8 steps, {c['threads']} torch thread(s), no "
        "per-step values. `--num-envs N`: N simulated robots in lockstep, chunks planned as one batch; "
        "(processes): each robot beyond the first in its own process (`--env-processes`), stepping in parallel.",
        "",
        f"Commit {m.get('commit', 'n/a')}. "
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']}; 1-min load average at "
        f"start {m.get('load_avg_1m', 'n/a')}; CPU probe: native bf16 {'yes' if pr.get('native_bf16') else 'no'}, "
        f"fp32 critic-step-layer GFLOP/s by threads {pr.get('gflops_fp32_by_threads', 'n/a')}.",
    ]
    if c.get("shared"):
        lines += ["", f"**Shared machine**: {c['shared']}"]
    lines += [
        "",
        "| num_envs | episodes | successes | control steps | wall s | episodes/min (wall) | CPU s "
        "| episodes per CPU-min | x wall | x CPU | same episodes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for r in out["runs"]:
        lines.append(
            f"| {r['num_envs']}{' (processes)' if r.get('env_processes') else ''} | {r['trials']} | "
            f"{r['successes']} | {r['steps']} | {r['wall_s']:.1f} | "
            f"{r['episodes_per_min']:.2f} | {r['cpu_s']:.1f} | {r['episodes_per_cpu_min']:.2f} | "
            f"{r['speedup_wall']:.2f} | {r['speedup_cpu']:.2f} | {'yes' if r['same_episodes_as_first'] else 'NO'} |"
        )
    lines += [
        "",
        "Same episodes: (seed, success, steps, plans) of every episode equal to the first row's. Episodes per "
        "CPU-minute use the CPU time of this process and its robot processes (simulation, rendering, inference), "
        "the figure to read on a shared machine: it shows the work saved, not the cores used in parallel.",
    ]
    b, base = out.get("breakdown"), out["runs"][0]
    if b:
        plans = max(1, round(base["steps"] / base["trials"] / 8))
        steps = base["steps"] / base["trials"]
        lines += [
            "",
            f"Where an episode's CPU goes (same run, {c['threads']} thread): one control step of the simulated robot "
            f"(physics + 3 camera renders) {b['env_step_cpu_ms']:.1f} ms; one chunk inference "
            f"{b['infer_cpu_ms']:.1f} ms alone, {b['infer_batch3_cpu_ms_per_robot']:.1f} ms per robot batched x3. "
            f"Per episode ({steps:.0f} steps, {plans} plans): simulation {steps * b['env_step_cpu_ms'] / 1e3:.2f} s, "
            f"inference {plans * b['infer_cpu_ms'] / 1e3:.2f} s. Batching the inference can only save a few percent "
            "of the CPU at this configuration; more episodes per minute come from stepping the robots on more "
            "cores (`--env-processes`), at most x the number of idle cores - which a machine shared with other work "
            "cannot show (the wall-clock columns above move with the other helpers' load).",
        ]
    (RESULTS / "eval.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
