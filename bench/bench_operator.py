"""Scripted-operator benchmark: does the operator rescue the episodes it takes over?

For each task, seeded episodes of a weak policy watched by the scripted operator
(``bora_trainer.collect.run_episode(mode="operator")``, the in-process code path of ``bora sim collect
--mode operator``). The weak policy is not a trained VLA (none is trained here): it is a perturbed
scripted expert, ``weak`` = ``collect.WEAK_POLICY_KNOBS`` (heavy noise, hesitation, detours and
off-centre grasps, re-planned from the current state when the operator hands back), ``stall`` = a
policy that holds its initial joint targets (never makes progress), or ``trained`` = a trained offline run
(``--runs TASK=RUN``: its frozen VLM + action expert, the base policy of the online stage, each k-step chunk
executed open loop as ``bora eval --replan-steps k`` does). Episodes are drawn until
``--takeovers`` of them had a takeover (at most ``--max-episodes``). Per task it reports the
takeover episodes, how many of them ended in success (rescued), and the share of control steps under
the operator's control, over all episodes and over the takeover episodes.

Writes ``bench/results/NAME.json`` and ``bench/results/NAME_table.md`` (``--name``, default ``operator``;
``operator.md`` is the written reading of them).

    .venv/bin/python bench/bench_operator.py                       # 5 tasks x 20 takeover episodes (~3 min)
    .venv/bin/python bench/bench_operator.py --tasks open_box --takeovers 5
    .venv/bin/python bench/bench_operator.py --policies trained --tasks pick_and_place --takeovers 30 \
        --max-episodes 30 --runs pick_and_place=runs/demo/runs/pick_and_place/bora --name operator_trained \
        --op budget=2 grace_s=1.0 patience_s=1.5      # the online configs' operator (config/online_tiny.yaml)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bora_sim.experts import ExpertKnobs

POLICY_KNOBS = {
    # collect.WEAK_POLICY_KNOBS: about 10% autonomous success over the five tasks
    "weak": ExpertKnobs(noise=2.0, hesitation=2.0, suboptimal=1.0),
    # about 55% autonomous success, like the demo's offline policy at the start of the online stage
    "medium": ExpertKnobs(noise=1.0, hesitation=1.0, suboptimal=0.5),
}
TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (float(c - h), float(c + h))


class TrainedPolicy:
    """A trained offline run as the watched policy: its frozen VLA's mean chunk, k steps open loop."""

    def __init__(self, run: str):
        import torch

        from bora_policy.runtime.processor import ActionProcessor
        from bora_trainer.online.vla import FrozenVLA

        self.vla = FrozenVLA(run, torch.device("cpu"))
        self.actions = ActionProcessor(self.vla.normalizer)
        self.chunk = None

    def __call__(self, obs, t: int) -> np.ndarray:
        if t % self.vla.k == 0:
            state = self.vla.processor.state_of(obs)
            _, a_n, _ = self.vla.act(obs["color"][None], [obs["instruction"]], state[None])
            self.chunk = self.actions.denormalize(a_n[0].numpy())
        return np.asarray(self.chunk[t % self.vla.k], np.float32)


def run_task(
    task: str, policy: str, takeovers: int, max_episodes: int, seed0: int, op_over: dict | None = None,
    run: str | None = None,
) -> dict:
    from bora_policy.common.state import state_of
    from bora_sim.env import make_env
    from bora_sim.operator import OperatorConfig, ScriptedOperator
    from bora_trainer.collect import run_episode

    trained = None
    if policy == "trained":
        if not run:
            raise ValueError(f"--policies trained: no --runs entry for task {task!r} (expected {task}=RUN_DIR)")
        trained = TrainedPolicy(run)
        meta = Path(trained.vla.cfg.data_dir or "") / "meta.json"  # the training data's camera size
        size = tuple(json.loads(meta.read_text())["image_size"]) if trained.vla.cfg.data_dir and meta.exists() else None
        env = make_env(task, "standard", **({"image_size": size} if size else {}))
    else:
        env = make_env(task, "standard", render=False)
    op_cfg = OperatorConfig(**(op_over or {}))
    eps = []
    t0 = time.time()
    for i in range(max_episodes):
        seed = seed0 + i
        if policy in POLICY_KNOBS:
            res = run_episode(
                env, seed, mode="operator", knobs=ExpertKnobs(), operator_cfg=op_cfg, policy_knobs=POLICY_KNOBS[policy]
            )
            T = len(res.arrays["action"])
            iv_steps = int(res.arrays["is_intervention"].sum())
            ivs, success = res.info["interventions"], bool(res.info["success"])
        else:  # stall: repeat the last executed action (a policy frozen where it is); trained: the run's chunks
            obs, info = env.reset(seed=seed)
            hold = state_of(obs)  # joint targets = the measured joint positions
            op = ScriptedOperator(env, op_cfg, seed=seed + 104729)
            term = trunc = False
            T = iv_steps = 0
            while not (term or trunc):
                dec = op.observe(info)
                a = trained(obs, T) if trained is not None else hold
                a = (1 - dec.beta) * a + dec.beta * op.human_action() if dec.takeover else a
                iv_steps += int(dec.takeover)
                obs, _, term, trunc, info = env.step(np.asarray(a, np.float32))
                hold = np.asarray(env.last_action, np.float32)
                T += 1
            success = bool(info["success"])
            op.close_open_segment(success)
            ivs = op.interventions()
        eps.append(
            {
                "seed": seed,
                "success": success,
                "steps": T,
                "operator_steps": iv_steps,
                "takeovers": len(ivs),
                "reasons": [iv["reason"] for iv in ivs],
            }
        )
        if sum(e["takeovers"] > 0 for e in eps) >= takeovers:
            break
    env.close()
    tk = [e for e in eps if e["takeovers"] > 0]
    rescued = sum(e["success"] for e in tk)
    reasons: dict[str, int] = {}
    for e in tk:
        for r in e["reasons"]:
            reasons[r] = reasons.get(r, 0) + 1
    steps = sum(e["steps"] for e in eps)
    return {
        "task": task,
        "policy": policy,
        "episodes": len(eps),
        "takeover_episodes": len(tk),
        "rescued": int(rescued),
        "rescue_rate": rescued / len(tk) if tk else float("nan"),
        "rescue_ci95": wilson(int(rescued), len(tk)),
        "success_all": float(np.mean([e["success"] for e in eps])),
        "operator_share": sum(e["operator_steps"] for e in eps) / steps,
        "operator_share_takeover_eps": sum(e["operator_steps"] for e in tk) / max(1, sum(e["steps"] for e in tk)),
        "takeovers_per_takeover_ep": float(np.mean([e["takeovers"] for e in tk])) if tk else 0.0,
        "reasons": reasons,
        "seconds": time.time() - t0,
        "episodes_detail": eps,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--policies", nargs="+", default=["medium", "weak"], choices=["medium", "weak", "stall", "trained"])
    p.add_argument("--runs", nargs="*", default=[], help="trained policies: TASK=OFFLINE_RUN_DIR per task")
    p.add_argument("--name", default="operator", help="result files: OUT/NAME.json and OUT/NAME_table.md")
    p.add_argument("--takeovers", type=int, default=20, help="takeover episodes per task and policy")
    p.add_argument("--max-episodes", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--op", nargs="*", default=[], help="OperatorConfig overrides, name=value")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from machine_info import machine

    runs = {}
    for x in args.runs:
        if "=" not in x:
            p.error(f"--runs: expected TASK=RUN_DIR, got {x!r}")
        t, r = x.split("=", 1)
        runs[t] = r
    rows = []
    for policy in args.policies:
        for task in args.tasks:
            over = {k: float(v) for k, v in (x.split("=", 1) for x in args.op)}
            r = run_task(task, policy, args.takeovers, args.max_episodes, args.seed, over, runs.get(task))
            if policy == "trained":
                r["run"] = runs[task]
            rows.append(r)
            print(
                f"{policy:5s} {task:15s} takeover eps {r['takeover_episodes']:3d}/{r['episodes']:3d} "
                f"rescued {r['rescued']:3d} ({100 * r['rescue_rate']:5.1f}%) operator share "
                f"{100 * r['operator_share']:5.1f}% (takeover eps {100 * r['operator_share_takeover_eps']:5.1f}%) "
                f"reasons {r['reasons']} [{r['seconds']:.0f} s]",
                flush=True,
            )
    if args.no_write:
        return 0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"commit": commit, "machine": machine(), "argv": sys.argv[1:], "rows": rows}
    (out / f"{args.name}.json").write_text(json.dumps(doc, indent=1))
    lines = [
        "| policy | task | episodes | takeover episodes | rescued | rate (95% CI) "
        "| operator share (all / takeover eps) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["rescue_ci95"]
        lines.append(
            f"| {r['policy']} | {r['task']} | {r['episodes']} | {r['takeover_episodes']} | {r['rescued']} | "
            f"{100 * r['rescue_rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}) | "
            f"{100 * r['operator_share']:.1f}% / {100 * r['operator_share_takeover_eps']:.1f}% |"
        )
    (out / f"{args.name}_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
