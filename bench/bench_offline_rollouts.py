"""Does the offline stage improve the policy when it also learns from the warm-up's own rollouts? (issue 14)

For each task of an evidence run in progress or finished (``bora demo --config config/evidence.yaml``: its
data, its shared cp-bc warm-up and its offline rows trained WITHOUT rollouts, ``offline.rollouts.episodes``
0), on the TUNING seeds only:

1. ``bora eval --record``: ``--rollout-episodes`` autonomous episodes of the warm-up on seeds 400000..
   (``RolloutSpec.seed0``: disjoint from the tuning and evaluation seeds), successes and failures;
2. ``bora train offline --algo A --rollouts`` those episodes, A = cp-bc and bora, from the same warm-up with the
   run's own offline config and update count (the critic and PPO see every rollout step, BC only the
   successful rollouts: ``ChunkDataset`` ``bc_mask``);
3. a control without rollouts: ``cp-bc-clean``, CP Base fine-tuned like the row but on the CLEAN demonstrations
   only (``--episodes clean``, the warm-up's own data): does the fine-tuning lose against the warm-up because
   of the mixed-quality demonstrations or by itself?
4. ``bora eval`` on the tuning seeds ``--seed0`` .. (default 200000, 30 standard trials) of the warm-up, the
   run's CP Base and BORA-Offline rows, and the three rows trained here: every policy on the same seeds
   (paired).

Writes ``bench/results/<--report>.{json,md}`` (default ``offline_rollouts``): successes per task and policy,
paired differences (Newcombe 95% interval, McNemar exact p) per task and pooled. Existing outputs in
``--work`` are reused, so an interrupted run resumes.

    .venv/bin/python bench/bench_offline_rollouts.py --evidence runs/evidence [--tasks ...] [--trials 30]
        [--rollout-episodes 40] [--work /tmp/offline_rollouts]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_online_bc import bora, successes, write_keeping_findings  # the evidence benches' runner, readers
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "bora_trainer"))
from bora_trainer.stats import mcnemar_exact_p, newcombe_paired_diff  # noqa: E402

TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
POLICIES = ("warmup", "cp-bc", "bora", "cp-bc+rollouts", "bora+rollouts", "cp-bc-clean", "cp-bc-clean-lrwarm")
PAIRS = (("cp-bc+rollouts", "cp-bc"), ("bora+rollouts", "bora"), ("bora+rollouts", "cp-bc+rollouts"),
         ("bora", "cp-bc"), ("cp-bc", "warmup"), ("bora+rollouts", "warmup"), ("cp-bc-clean", "warmup"),
         ("cp-bc", "cp-bc-clean"), ("cp-bc-clean-lrwarm", "warmup"))
LR_WARMUP = 100  # cp-bc-clean-lrwarm: the learning rate ramps up linearly over the first updates


def run_task(task: str, a: argparse.Namespace) -> dict[str, list[bool]]:
    ev, w = Path(a.evidence), a.work / task
    w.mkdir(parents=True, exist_ok=True)
    warm = ev / "runs" / task / "warmup"
    roll = w / "rollouts"
    if not (w / "rollouts.json").is_file():
        bora(["eval", "--run", str(warm), "--task", task, "--objects", "standard", "--trials",
              str(a.rollout_episodes), "--seed0", str(a.rollout_seed0), "--record", str(roll), "--no-values",
              "--threads", "1", "--method", "warm-up", "--out", str(w / "rollouts.json"), "--no-progress"],
             w / "rollouts.log")
    base_cfg = ev / "configs" / "offline.yaml"
    lrwarm_cfg = a.work / "offline_lrwarm.yaml"
    lrwarm_cfg.write_text(base_cfg.read_text() + f"\nwarmup_updates: {LR_WARMUP}\n")
    for algo, run, extra, cfg in (("cp-bc", w / "cp-bc_roll", ["--rollouts", str(roll)], base_cfg),
                                  ("bora", w / "bora_roll", ["--rollouts", str(roll)], base_cfg),
                                  ("cp-bc", w / "cp-bc_clean", ["--episodes", "clean"], base_cfg),
                                  ("cp-bc", w / "cp-bc_clean_lrwarm", ["--episodes", "clean"], lrwarm_cfg)):
        if not (run / "policy").is_dir():
            done = json.loads((ev / "stages" / f"offline-{task}-{algo}.done").read_text())["argv"]
            updates = done[done.index("--updates") + 1]
            bora(["train", "offline", "--algo", algo, "--data", str(ev / "data" / task), *extra,
                  "--config", str(cfg), "--out", str(run), "--updates", updates,
                  "--init-from", str(warm), "--no-progress"], run.with_suffix(".log"))
    runs = {"warmup": warm, "cp-bc": ev / "runs" / task / "cp-bc", "bora": ev / "runs" / task / "bora",
            "cp-bc+rollouts": w / "cp-bc_roll", "bora+rollouts": w / "bora_roll", "cp-bc-clean": w / "cp-bc_clean",
            "cp-bc-clean-lrwarm": w / "cp-bc_clean_lrwarm"}
    out: dict[str, list[bool]] = {}
    for name, run in runs.items():
        path = w / f"eval_{name}.json"
        if not path.is_file():
            extra = ["--method", "warm-up"] if name == "warmup" else []
            bora(["eval", "--run", str(run), "--task", task, "--objects", "standard", "--trials", str(a.trials),
                  "--seed0", str(a.seed0), "--no-values", "--threads", "1", "--out", str(path), "--no-progress",
                  *extra], path.with_suffix(".log"))
        out[name] = successes(path)
    rollouts = json.loads((w / "rollouts.json").read_text())["episodes"]
    out["_rollouts"] = [sum(e["success"] for e in rollouts), len(rollouts)]  # type: ignore[list-item]
    print(f"{task} done {time.strftime('%H:%M:%S')}", flush=True)
    return out


def diff_cell(x: list[bool], y: list[bool]) -> str:
    d, lo, hi = newcombe_paired_diff(x, y)
    return f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] p={mcnemar_exact_p(x, y):.3f}"


def paired_lines(results: dict[str, dict], pairs) -> list[str]:
    """The paired-differences table (per task and pooled) of ``results`` {task: {policy: [success per seed]}}."""
    lines = ["", "Paired differences (percentage points, Newcombe 95% interval, McNemar exact p):", "",
             "| task | " + " | ".join(f"{x} - {y}" for x, y in pairs) + " |", "|" + " --- |" * (len(pairs) + 1)]
    for task, r in results.items():
        lines.append(f"| {task} | " + " | ".join(diff_cell(r[x], r[y]) for x, y in pairs) + " |")
    if len(results) > 1:
        lines.append("| **pooled** | " + " | ".join(
            diff_cell([v for r in results.values() for v in r[x]], [v for r in results.values() for v in r[y]])
            for x, y in pairs) + " |")
    return lines


def report(results: dict[str, dict], a: argparse.Namespace) -> str:
    lines = [f"| task | warm-up rollouts (successes / episodes) | {' | '.join(POLICIES)} |",
             "|" + " --- |" * (len(POLICIES) + 2)]
    for task, r in results.items():
        s, n = r["_rollouts"]
        lines.append(f"| {task} | {s}/{n} | " + " | ".join(f"{sum(r[p])}/{len(r[p])}" for p in POLICIES) + " |")
    if len(results) > 1:
        pooled = {p: [x for r in results.values() for x in r[p]] for p in POLICIES}
        lines.append("| **pooled** | | " + " | ".join(f"{sum(v)}/{len(v)}" for v in pooled.values()) + " |")
    return "\n".join(lines + paired_lines(results, PAIRS))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evidence", required=True, help="an evidence run directory (bora demo --out)")
    p.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seed0", type=int, default=200_000, help="tuning seeds (never the evaluation seeds)")
    p.add_argument("--rollout-episodes", type=int, default=40)
    p.add_argument("--rollout-seed0", type=int, default=400_000)
    p.add_argument("--work", type=Path, default=Path("/tmp/offline_rollouts"))
    p.add_argument("--report", default="offline_rollouts")
    a = p.parse_args(argv)
    if 300_000 <= a.seed0 < 400_000:
        p.error(f"--seed0 {a.seed0}: that is the evaluation seed range; tune on 200000..")
    results = {t: run_task(t, a) for t in a.tasks}
    table = report(results, a)
    m = machine(calibrate=False)
    (RESULTS / f"{a.report}.json").write_text(json.dumps(
        {"evidence": a.evidence, "trials": a.trials, "seed0": a.seed0, "rollout_episodes": a.rollout_episodes,
         "rollout_seed0": a.rollout_seed0, "results": results, "machine": m}, indent=1))
    head = (f"# Offline rows with the warm-up's own rollouts (issue 14)\n\nMachine: {m.get('cpu', '')}; commit "
            f"{m.get('commit', '')}. `bench/bench_offline_rollouts.py --evidence {a.evidence}` ({a.trials} standard "
            f"trials per policy on the tuning seeds {a.seed0}..; rollouts: {a.rollout_episodes} warm-up episodes "
            f"on seeds {a.rollout_seed0}..).\n\n")
    write_keeping_findings(RESULTS / f"{a.report}.md", head + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
