"""``bora eval``: success rate of a run on a simulated task and object set (paper Tables 1-2, Fig. 11).

    bora eval --run runs/bora --task press_button --objects standard --trials 20 --out eval/bora_press.json

Rolls the policy out in-process (no ROS) with the SAME ``PolicyRunner`` (VLA + folded residuals +
current residual + critic) and the SAME ``ChunkScheduler`` (replan state machine + ``ChunkExecutor``) as
the policy node, used synchronously: at the episode start it holds the measured state; every
``replan_steps`` control steps the runner plans a chunk from the current observation, which is adopted
at once (cross-fading over ``blend_steps``); each control step the environment is stepped with its command.
Simulated time is ``step / control_hz``; inference takes none. Only observations whose images are used (a
plan, a recorded value, ``--record``) are rendered (``BoraSimEnv.skip_next_images``; same episodes, test).
Episode ``i`` uses seed ``seed0 + i`` (environment reset and torch): the same seeds, the same result. ``--num-envs N``
steps N simulated robots in lockstep and plans their chunks as one batch (``--env-processes``: each
robot in its own process): the same episodes (:mod:`bora_trainer.evaluate_vec`).

Recorded per episode: ``seed``, ``success``, ``steps``, ``object`` and, when the run has a critic, the
critic's value ``v(z_t, 0)`` at every control step (``values``; Fig. 11 value profile). The output JSON is
what ``bora report`` reads: ``{"method", "run", "task", "object_set", "trials", "successes", "episodes"}``
plus provenance (versions, settings).

Runs (:mod:`bora_trainer.eval_run`): an offline run, an online run (its latest multi-round residual checkpoint
is current and its critic gives the values; one without ``RUN/latest`` is refused unless ``--residual`` names
the residual) or a bare ``VLAPolicy`` directory (give ``--method``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bora_policy.common.graph_params import graph_default
from bora_trainer.eval_record import episode_record, make_recorder
from bora_trainer.eval_run import EvalError, describe_run, load_online_critic, residual_stack


def rollout_episode(
    env,
    runner,
    seed: int,
    replan_steps: int,
    exec_cfg,
    max_steps: int | None = None,
    record_values: bool = True,
    generator=None,
    recorder=None,
) -> dict[str, Any]:
    """One episode with the policy node's chunk execution (module docstring); returns the episode record.
    ``recorder`` (:class:`bora_trainer.eval_record.EpisodeRecorder`) also writes it as a dataset episode."""
    import numpy as np
    import torch

    from bora_policy.runtime.chunk_scheduler import ChunkScheduler

    torch.manual_seed(seed)
    if generator is not None:
        generator.manual_seed(seed)
    obs, info = env.reset(seed=seed)
    sched = ChunkScheduler(exec_cfg, replan_steps)  # the policy node's replan state machine, synchronous
    dt = 1.0 / exec_cfg.control_hz

    state_of = runner.processor.state_of  # [arm q, hand q] (bora_policy.runtime.processor)

    sched.begin_episode(state_of(obs), 0.0)  # the node holds the measured state at an episode START
    if recorder is not None:
        recorder.begin()
    values: list[float] = []
    want_images = recorder is not None or (record_values and runner.critic is not None)  # else: plans only
    step = 0
    terminated = truncated = False
    limit = max_steps if max_steps else None
    while not (terminated or truncated):
        t = step * dt
        state = state_of(obs)
        planned_v = None
        if sched.plan_due():  # inference takes no simulated time: the chunk is adopted at once
            res = runner.infer(obs["color"], state, obs["instruction"], generator=generator)
            sched.adopt(res.final, t, t)
            planned_v = None if res.v is None else float(res.v[0])
        if record_values and runner.critic is not None:
            v0 = (
                planned_v
                if planned_v is not None
                else float(runner.value(obs["color"], state, obs["instruction"])[0])
            )
            values.append(v0)
        cmd = sched.step(t)
        if recorder is not None:
            recorder.observe(obs, state)
        if not (sched.plan_due() or want_images):  # nobody looks at the next observation's images
            env.unwrapped.skip_next_images()
        obs, _, terminated, truncated, info = env.step(cmd.position.astype(np.float32))
        if recorder is not None:
            recorder.stepped(terminated)
        step += 1
        if limit is not None and step >= limit:
            break
    episode = episode_record(seed, info, step, values, sched.plans)
    if recorder is not None:
        recorder.write(episode)
    return episode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", required=True, help="run directory (offline or online) or a VLAPolicy directory")
    p.add_argument(
        "--objects",
        default=None,
        help="object set: standard, unseen or an object-set YAML file (default: "
        "the online run's, else standard)",
    )
    p.add_argument(
        "--trials", type=int, default=20, help="episodes (seeds seed0 .. seed0+trials-1; default 20)"
    )
    p.add_argument("--out", required=True, type=Path, help="result JSON file (the input of `bora report`)")
    p.add_argument(
        "--task", default=None, help="bora_sim task (default: the run's config; required otherwise)"
    )
    p.add_argument("--method", default=None, help="method name in the tables (default: from the run's algo)")
    p.add_argument(
        "--residual",
        nargs="+",
        default=None,
        metavar="PATH",
        help="residual checkpoints in round order: the last is the current residual, earlier ones are folded "
        "into the base (PATH@LAMBDA sets a folded one's blend weight); default: an online run's latest",
    )
    p.add_argument("--critic", default=None, help="critic directory (default: the run's critic/, if any)")
    p.add_argument("--no-values", action="store_true", help="do not record the per-step critic value")
    p.add_argument("--seed0", type=int, default=0, help="seed of the first episode (default 0)")
    p.add_argument("--replan-steps", type=int, default=8, help="control steps between replans (default 8)")
    p.add_argument(
        "--blend-steps", type=int, default=2, help="cross-fade ticks at a chunk switch (default 2)"
    )
    p.add_argument("--image-size", type=int, default=None, help="camera image side (default: the policy's)")
    p.add_argument("--control-hz", type=float, default=10.0, help="control rate (default 10)")
    p.add_argument(
        "--chunk-hz", type=float, default=None, help="rate of the chunk rows (default: control-hz)"
    )
    p.add_argument(
        "--max-steps", type=int, default=None, help="cap on control steps (default: the task's limit)"
    )
    p.add_argument(
        "--residual-scale",
        type=float,
        default=graph_default("residual_scale"),
        help="alpha when a residual stores none (default: config/graph.yaml's residual_scale)",
    )
    p.add_argument("--alpha", type=float, default=None, help="alpha of the current residual whatever its checkpoint "
                   "stores (an online run stores its own; 0 = its earlier rounds only). Default: the stored alpha")
    p.add_argument(
        "--num-inference-steps", type=int, default=None, help="expert steps (default: the policy's)"
    )
    p.add_argument(
        "--stochastic", action="store_true", help="sample chunks (seeded) instead of the mean chunk"
    )
    p.add_argument("--hand", default="shadow", help="simulated hand (default shadow)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument(
        "--num-envs",
        type=int,
        default=1,
        help="simulated robots stepped in lockstep, their chunks planned as one batch (evaluate_vec; same "
        "episodes as 1; --stochastic keeps one at a time)",
    )
    p.add_argument(
        "--env-processes", action="store_true", help="with --num-envs: each simulated robot in its own process"
    )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write every episode to this episode directory (source 'policy': the critic data of "
        "`bora train offline --rollouts`); record on tuning seeds, one robot at a time",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _atomic_write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by parsed ``args``; returns the result dict (also written to --out)."""
    import torch

    from bora_policy.runtime.chunk_executor import ChunkExecutorConfig
    from bora_policy.runtime.chunk_scheduler import check_replan_steps
    from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig
    from bora_sim.env import make_env
    from bora_sim.objects import ObjectSetError
    from bora_sim.tasks import TASKS
    from bora_trainer.online.checkpoints import online_critic_of

    if args.trials < 1:
        raise EvalError(f"--trials must be >= 1, got {args.trials}")
    if args.replan_steps < 1:
        raise EvalError(f"--replan-steps must be >= 1, got {args.replan_steps}")
    if args.max_steps is not None and args.max_steps < 1:
        raise EvalError(f"--max-steps must be >= 1, got {args.max_steps}")
    if (alpha := getattr(args, "alpha", None)) is not None and not 0 <= alpha < float("inf"):  # NaN fails too
        raise EvalError(f"--alpha must be a finite number >= 0, got {alpha}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    num_envs = int(getattr(args, "num_envs", 1))
    if num_envs < 1:
        raise EvalError(f"--num-envs must be >= 1, got {num_envs}")
    info = describe_run(args.run)
    task = args.task or info.task
    if not task:
        raise EvalError(
            f"--task is required: {info.path} does not name a task (choose from {', '.join(sorted(TASKS))})"
        )
    if task not in TASKS:
        raise EvalError(f"--task {task!r}: unknown task; choose from {', '.join(sorted(TASKS))}")
    method = args.method or info.method
    if not method:
        raise EvalError(
            f"--method is required: {info.path} has no config.yaml naming its algorithm "
            f"(e.g. --method 'CP Base')"
        )
    objects = args.objects or info.object_set or "standard"
    t_start = time.time()
    residuals = residual_stack(info, args.residual)  # an online run without a residual: refused
    critic_dir = args.critic if args.critic is not None else (str(info.critic_dir) if info.critic_dir else "")
    if alpha is not None and not residuals:
        raise EvalError(f"--alpha {alpha}: {info.path} has no residual to scale (an online run or --residual)")
    run_cfg = PolicyRunnerConfig(
        residual_scale=args.residual_scale,
        alpha_override=alpha,
        num_inference_steps=args.num_inference_steps,
        deterministic=not args.stochastic,
        device=args.device,
    )
    try:
        runner = PolicyRunner.from_paths(
            str(info.policy_dir),
            residual_path=residuals[-1] if residuals else "",
            critic_path=critic_dir if not args.no_values else "",
            cfg=run_cfg,
            frozen_residual_paths=residuals[:-1],
        )
    except (FileNotFoundError, ValueError) as e:
        raise EvalError(f"cannot load the policy of {info.path}: {e}") from e
    online_critic = online_critic_of(Path(residuals[-1])) if args.residual else info.online_critic
    if online_critic is not None and args.critic is None and not args.no_values:
        load_online_critic(runner, info.critic_dir, online_critic)
    pc = runner.policy.cfg
    image_size = args.image_size or pc.image_size
    try:
        env = make_env(
            task, object_set=objects, image_size=image_size, control_hz=args.control_hz, hand=args.hand
        )
    except ObjectSetError as e:
        raise EvalError(f"--objects {objects}: {e}") from e
    except ValueError as e:
        raise EvalError(str(e)) from e
    try:
        n_cam = len(env.camera_names)
        if pc.n_cameras != n_cam or pc.action_dim != env.action_dim or pc.state_dim != env.action_dim:
            raise EvalError(
                f"the policy (n_cameras {pc.n_cameras}, state_dim {pc.state_dim}, "
                f"action_dim {pc.action_dim}) does not fit task {task} with the {args.hand} hand "
                f"({n_cam} cameras, state/action dim {env.action_dim})"
            )
        exec_cfg = ChunkExecutorConfig(
            control_hz=args.control_hz,
            chunk_hz=args.chunk_hz or args.control_hz,
            blend_steps=args.blend_steps,
        )
        try:  # within the ticks a chunk lasts, the policy node's own check (runtime/chunk_scheduler.py)
            check_replan_steps(args.replan_steps, pc.chunk_size, exec_cfg.control_hz, exec_cfg.chunk_hz)
        except ValueError as e:
            raise EvalError(f"--replan-steps: {e}") from None
        gen = torch.Generator(device=runner.device) if args.stochastic else None
        try:  # --record DIR: the episodes also go to an episode directory (bora_trainer.eval_record)
            recorder = make_recorder(getattr(args, "record", None), num_envs, env, task, info.path, runner)
        except ValueError as e:
            raise EvalError(str(e)) from e
        episodes = []
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=args.trials, desc=f"eval {method} {task}/{env.object_set.name}", unit="ep")
        n_vec = min(num_envs, args.trials) if not args.stochastic else 1
        if n_vec > 1:  # N robots in lockstep, one batched inference (bora_trainer.evaluate_vec)
            from bora_trainer.evaluate_vec import EnvProcess, rollout_vectorized

            kw = dict(task=task, object_set=objects, image_size=image_size, control_hz=args.control_hz, hand=args.hand)
            if getattr(args, "env_processes", False):
                envs = [env] + [EnvProcess(**kw) for _ in range(n_vec - 1)]
            else:
                envs = [env] + [make_env(**kw) for _ in range(n_vec - 1)]

            def _tick(ep):
                episodes.append(ep)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(success=f"{sum(e['success'] for e in episodes)}/{len(episodes)}")

            try:
                episodes = rollout_vectorized(
                    envs, runner, [args.seed0 + i for i in range(args.trials)], args.replan_steps, exec_cfg,
                    args.max_steps, record_values=not args.no_values, on_episode=_tick,
                )
            finally:
                for e in envs[1:]:
                    e.close()
        for i in range(args.trials if n_vec == 1 else 0):
            ep = rollout_episode(
                env,
                runner,
                args.seed0 + i,
                args.replan_steps,
                exec_cfg,
                args.max_steps,
                record_values=not args.no_values,
                generator=gen,
                recorder=recorder,
            )
            episodes.append(ep)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(success=f"{sum(e['success'] for e in episodes)}/{len(episodes)}")
        if bar is not None:
            bar.close()
        object_set = env.object_set.name
    finally:
        env.close()
    successes = sum(e["success"] for e in episodes)
    result = {
        "method": method,
        "run": str(args.run),
        "task": task,
        "object_set": object_set,
        "trials": len(episodes),
        "successes": int(successes),
        "episodes": episodes,
        "phase": info.phase,
        "algo": info.algo,
        "objects": str(objects),
        "policy_version": runner.policy_version,
        "critic_version": runner.critic_version,
        "residual_version": runner.residual_slot.snapshot()[1],
        "folded_residuals": _folded(runner),
        "settings": {
            "seed0": args.seed0,
            "replan_steps": args.replan_steps,
            "blend_steps": args.blend_steps,
            "control_hz": args.control_hz,
            "chunk_hz": exec_cfg.chunk_hz,
            "image_size": image_size,
            "max_steps": args.max_steps,
            "deterministic": not args.stochastic,
            "residual_scale": args.residual_scale,
            "alpha_override": alpha,
            "hand": args.hand,
            "num_envs": n_vec,
            "env_processes": bool(getattr(args, "env_processes", False)) and n_vec > 1,
        },
        "seconds": round(time.time() - t_start, 3),
    }
    _atomic_write_json(args.out, result)
    return result


def _folded(runner) -> int:
    """Frozen residuals folded into the base (start-up ones + a multi-round checkpoint's earlier rounds)."""
    cur = runner.residual_slot.snapshot()[0]
    return len(cur[0].frozen) if cur is not None else len(runner.frozen)


def summary_line(res: dict[str, Any], out: Path) -> str:
    n, s = res["trials"], res["successes"]
    from bora_trainer.report import wilson_interval

    lo, hi = wilson_interval(s, n)
    steps = sum(e["steps"] for e in res["episodes"]) / max(1, n)
    return (
        f"bora eval: {res['method']} on {res['task']}/{res['object_set']}: {s}/{n} successes "
        f"({100 * s / n:.0f}%, Wilson 95% {100 * lo:.0f}-{100 * hi:.0f}%), mean {steps:.1f} steps, "
        f"{res['seconds']:.1f} s -> {out}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        res = evaluate(args)
    except EvalError as e:
        print(f"bora eval: {e}", file=sys.stderr)
        return 2
    print(summary_line(res, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
