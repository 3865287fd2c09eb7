"""Scripted-operator benchmark: does the operator rescue the episodes it takes over?

For each task, seeded episodes of a weak policy watched by the scripted operator
(``bora_trainer.collect.run_episode(mode="operator")``, the in-process code path of ``bora sim collect
--mode operator``). The weak policy is not a trained VLA (none is trained here): it is a perturbed
scripted expert, ``weak`` = ``collect.WEAK_POLICY_KNOBS`` (heavy noise, hesitation, detours and
off-centre grasps, re-planned from the current state when the operator hands back), or ``stall`` = a
policy that holds its initial joint targets (never makes progress). Episodes are drawn until
``--takeovers`` of them had a takeover (at most ``--max-episodes``). Per task it reports the
takeover episodes, how many of them ended in success (rescued), and the share of control steps under
the operator's control, over all episodes and over the takeover episodes.

Writes ``bench/results/operator.json`` and ``bench/results/operator.md``.

    .venv/bin/python bench/bench_operator.py                       # 5 tasks x 20 takeover episodes (~3 min)
    .venv/bin/python bench/bench_operator.py --tasks open_box --takeovers 5
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


def run_task(
    task: str, policy: str, takeovers: int, max_episodes: int, seed0: int, op_over: dict | None = None
) -> dict:
    from bora_policy.common.state import state_of
    from bora_sim.env import make_env
    from bora_sim.operator import OperatorConfig, ScriptedOperator
    from bora_trainer.collect import run_episode

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
        else:  # stall: repeat the last executed action (a policy frozen where it is)
            obs, info = env.reset(seed=seed)
            hold = state_of(obs)  # joint targets = the measured joint positions
            op = ScriptedOperator(env, op_cfg, seed=seed + 104729)
            term = trunc = False
            T = iv_steps = 0
            while not (term or trunc):
                dec = op.observe(info)
                a = (1 - dec.beta) * hold + dec.beta * op.human_action() if dec.takeover else hold
                iv_steps += int(dec.takeover)
                obs, _, term, trunc, info = env.step(a)
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
    p.add_argument("--policies", nargs="+", default=["medium", "weak"], choices=["medium", "weak", "stall"])
    p.add_argument("--takeovers", type=int, default=20, help="takeover episodes per task and policy")
    p.add_argument("--max-episodes", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--op", nargs="*", default=[], help="OperatorConfig overrides, name=value")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from machine_info import machine

    rows = []
    for policy in args.policies:
        for task in args.tasks:
            over = {k: float(v) for k, v in (x.split("=", 1) for x in args.op)}
            r = run_task(task, policy, args.takeovers, args.max_episodes, args.seed, over)
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
    (out / "operator.json").write_text(json.dumps(doc, indent=1))
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
    (out / "operator_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
