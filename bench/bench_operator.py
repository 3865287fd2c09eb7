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

``--shadow``: the operator only watches (:func:`shadow_episode`), ``--max-episodes`` autonomous episodes per task;
per task the autonomous successes, the would-be takeovers, how many of them fell in episodes the policy failed
alone (precision) and in successes (false takeovers), and the failures it never took over
(bench/results/operator_shadow.md).

Writes ``bench/results/NAME.json`` and ``bench/results/NAME_table.md`` (``--name``, default ``operator``;
``operator.md`` is the written reading of them).

    .venv/bin/python bench/bench_operator.py                       # 5 tasks x 20 takeover episodes (~3 min)
    .venv/bin/python bench/bench_operator.py --tasks open_box --takeovers 5
    .venv/bin/python bench/bench_operator.py --policies trained --tasks pick_and_place --takeovers 30 \
        --max-episodes 30 --runs pick_and_place=runs/demo/runs/pick_and_place/bora --name operator_trained \
        --op budget=2 grace_s=1.0 patience_s=1.5      # the online configs' operator (config/online_tiny.yaml)
    .venv/bin/python bench/bench_operator.py --shadow --policies trained --tasks pick_and_place --max-episodes 30 \
        --seed 1000 --runs pick_and_place=RUN --op budget=2 grace_s=1.0 patience_s=1.5 --name operator_shadow
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


SHADOW_FIELDS = ("object_height", "hand_contacts", "lid_angle", "extraction", "pinched", "depression")
"""Task signals recorded at a shadow takeover (those the task's info has)."""


def shadow_episode(env, seed: int, op_cfg, trained=None, knobs: ExpertKnobs | None = None) -> dict:
    """One autonomous episode watched by a *shadow* operator: it observes every step, as in an online episode, but
    its takeovers are never executed. Until its first takeover decision the watched trajectory is the one the
    operator would see online (the policy is deterministic given the seed), so the decision's step and reason say
    where the operator would have taken over; the episode then runs on alone and says whether that takeover
    was needed (autonomous failure) or interrupted an episode the policy would have finished (a false
    takeover). ``trained`` is a :class:`TrainedPolicy`; otherwise a scripted expert with ``knobs``."""
    from bora_sim.experts import ScriptedExpert
    from bora_sim.operator import ScriptedOperator

    obs, info = env.reset(seed=seed)
    op = ScriptedOperator(env, op_cfg, seed=seed + 104729)
    actor = None if trained is not None else ScriptedExpert(env, knobs=knobs or ExpertKnobs(), seed=seed + 7919)
    term = trunc = False
    T, first = 0, None
    first_progress = None
    while not (term or trunc):
        if first is None:
            dec = op.observe(info)
            if dec.takeover:
                first = (int(info["step"]), dec.reason, float(info.get("task_progress", 0.0)))
                at = {k: info[k] for k in SHADOW_FIELDS if k in info} | {"target_distance": op.target_distance()}
        a = trained(obs, T) if trained is not None else actor.act()
        obs, _, term, trunc, info = env.step(np.asarray(a, np.float32))
        if first_progress is None and float(info.get("task_progress", 0.0)) > 0:
            first_progress = int(info["step"])
        T += 1
    return {
        "seed": seed,
        "success": bool(info["success"]),
        "steps": T,
        "first_progress_step": first_progress,
        "shadow_takeover_step": None if first is None else first[0],
        "shadow_reason": None if first is None else first[1],
        "shadow_progress": None if first is None else first[2],
        "shadow_state": None if first is None else {k: float(v) for k, v in at.items()},
    }


def shadow_summary(task: str, policy: str, eps: list[dict], seconds: float) -> dict:
    """Takeover precision of the shadow episodes: ``needed`` = shadow takeovers in autonomous failures / all
    shadow takeovers; ``false_takeover_rate`` = autonomous successes the operator would have interrupted /
    autonomous successes; ``missed`` = autonomous failures it never took over."""
    succ = [e for e in eps if e["success"]]
    fail = [e for e in eps if not e["success"]]
    tk = [e for e in eps if e["shadow_takeover_step"] is not None]
    false_tk = [e for e in succ if e["shadow_takeover_step"] is not None]
    needed = [e for e in fail if e["shadow_takeover_step"] is not None]
    reasons: dict[str, list[int]] = {}
    for e in tk:
        r = reasons.setdefault(e["shadow_reason"], [0, 0])
        r[0 if e["success"] else 1] += 1
    return {
        "task": task,
        "policy": policy,
        "shadow": True,
        "episodes": len(eps),
        "autonomous_successes": len(succ),
        "success_ci95": wilson(len(succ), len(eps)),
        "shadow_takeovers": len(tk),
        "needed": len(needed),
        "precision": len(needed) / len(tk) if tk else float("nan"),
        "false_takeovers": len(false_tk),
        "false_takeover_rate": len(false_tk) / len(succ) if succ else float("nan"),
        "false_takeover_ci95": wilson(len(false_tk), len(succ)),
        "missed_failures": len(fail) - len(needed),
        "success_steps": sorted(e["steps"] for e in succ),
        "false_takeover_steps": sorted(e["shadow_takeover_step"] for e in false_tk),
        "reasons_success_failure": reasons,
        "seconds": seconds,
        "episodes_detail": eps,
    }


def run_task(
    task: str, policy: str, takeovers: int, max_episodes: int, seed0: int, op_over: dict | None = None,
    run: str | None = None, shadow: bool = False,
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
        if shadow:
            eps.append(shadow_episode(env, seed, op_cfg, trained, POLICY_KNOBS.get(policy)))
            continue
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
    if shadow:
        return shadow_summary(task, policy, eps, time.time() - t0)
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


def shadow_table(rows: list[dict]) -> list[str]:
    """Markdown table of shadow rows (:func:`shadow_summary`)."""
    lines = [
        "| policy | task | episodes | autonomous success | shadow takeovers | needed (precision) "
        "| false takeovers / successes (95% CI) | missed failures | success steps (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["false_takeover_ci95"]
        med = int(np.median(r["success_steps"])) if r["success_steps"] else "-"
        lines.append(
            f"| {r['policy']} | {r['task']} | {r['episodes']} | {r['autonomous_successes']} | "
            f"{r['shadow_takeovers']} | {r['needed']} ({100 * r['precision']:.0f}%) | {r['false_takeovers']} / "
            f"{r['autonomous_successes']} ({100 * lo:.0f}-{100 * hi:.0f}%) | {r['missed_failures']} | {med} |"
        )
    return lines


def _op_value(v: str):
    """An ``--op`` value: a number, or JSON (``task_overrides={"pull_tissue": {"patience_s": 2.5}}``)."""
    try:
        return float(v)
    except ValueError:
        return json.loads(v)


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
    p.add_argument(
        "--op", nargs="*", default=[], help="OperatorConfig overrides, name=value (a number, or JSON for a mapping)"
    )
    p.add_argument(
        "--shadow",
        action="store_true",
        help="the operator only watches (its takeovers are not executed): --max-episodes autonomous episodes per "
        "task, reporting where it would have taken over and whether the policy would have failed there",
    )
    args = p.parse_args(argv)
    if args.shadow and "stall" in args.policies:
        p.error("--shadow: the stall policy never succeeds, so it has no false takeovers; expected trained/medium/weak")
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
            over = {k: _op_value(v) for k, v in (x.split("=", 1) for x in args.op)}
            r = run_task(
                task, policy, args.takeovers, args.max_episodes, args.seed, over, runs.get(task), args.shadow
            )
            if policy == "trained":
                r["run"] = runs[task]
            rows.append(r)
            if args.shadow:
                print(
                    f"{policy:5s} {task:15s} autonomous {r['autonomous_successes']}/{r['episodes']} shadow takeovers "
                    f"{r['shadow_takeovers']} (needed {r['needed']}, false {r['false_takeovers']}, "
                    f"missed failures {r['missed_failures']}) success steps {r['success_steps']} false-takeover "
                    f"steps {r['false_takeover_steps']} reasons [succ, fail] {r['reasons_success_failure']} "
                    f"[{r['seconds']:.0f} s]",
                    flush=True,
                )
                continue
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
    if args.shadow:
        lines = shadow_table(rows)
        (out / f"{args.name}_table.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
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
