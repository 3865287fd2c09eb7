"""Does choosing each offline row's checkpoint on tuning seeds make the offline comparison tell? (issue 14)

bench/results/finetune_drift.md measured that one training run's success moves 15-20 points pooled between
checkpoints 500 updates apart, so the evidence table's offline rows (the LAST checkpoint of one run each)
compare where each trajectory stopped. ``bora select`` (bora_trainer/select.py; ``offline.select`` in a demo
config) is the remedy this bench measures: the evidence run's CP Base and BORA-Offline rows are retrained
with the same command and config from the same warm-up (keeping a checkpoint every ``--every`` updates),
every checkpoint is rolled out on ``--tune-trials`` TUNING seeds ``--tune-seed0 ..`` (the same budget for
both rows) and the best is deployed. Then, on the fixed EVALUATION seeds ``--eval-seed0 ..`` (``--trials``
standard episodes, as the evidence table), the shared warm-up and each row's last and selected checkpoint
are evaluated, paired on the same seeds.

A by-product with more power: every candidate's tuning-seed rollouts, averaged per seed over a row's
candidates, compare the two methods with the checkpoint noise averaged out (paired by tuning seed).

Also checked: whether the retrained last checkpoint reproduces the evidence run's row bit for bit (same
machine, same command, same threads) and its evaluation the evidence table's.

Writes ``bench/results/<--report>.{json,md}`` (default ``checkpoint_select``): the tuning-seed successes of
every candidate, the evaluation-seed table, the mean over candidates, and paired differences (Newcombe 95%
interval, McNemar exact p) per task and pooled. Existing outputs in ``--work`` are reused (an interrupted
run resumes). Jobs run ``--jobs`` at a time with one torch thread each (the evidence run's setting).

    .venv/bin/python bench/bench_checkpoint_select.py --evidence runs/evidence [--tasks ...] [--every 100]
        [--tune-trials 30] [--trials 50] [--work /tmp/select]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from bench_offline_rollouts import paired_lines
from bench_online_bc import successes, write_keeping_findings  # the evidence benches' outcome reader, writer
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "bora_trainer"))
from bora_trainer.algorithms.bora.config import OfflineConfig  # noqa: E402
from bora_trainer.algorithms.losses import ppo_start_step  # noqa: E402
from bora_trainer.stats import paired_bootstrap_diff  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
ROWS = {"cp-bc": "CP Base", "bora": "BORA-Offline"}
POLICIES = ("Warm-up", "CP Base", "CP Base (selected)", "BORA-Offline", "BORA-Offline (selected)")
PAIRS = (("BORA-Offline", "CP Base"), ("BORA-Offline (selected)", "CP Base (selected)"),
         ("CP Base (selected)", "CP Base"), ("BORA-Offline (selected)", "BORA-Offline"),
         ("CP Base (selected)", "Warm-up"), ("BORA-Offline (selected)", "Warm-up"))


def bora(argv: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", BORA_NUM_THREADS="1")
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, "-m", "bora_trainer.cli", *argv], stdout=f, stderr=subprocess.STDOUT,
                             env=env)
    if rc:
        raise RuntimeError(f"bora {' '.join(argv)} failed ({rc}); log {log}")


def evaluate(run: Path, task: str, out: Path, a: argparse.Namespace, method: str) -> Path:
    if not out.is_file():
        bora(["eval", "--run", str(run), "--task", task, "--objects", "standard", "--trials", str(a.trials),
              "--seed0", str(a.eval_seed0), "--replan-steps", "8", "--threads", "1", "--no-values", "--method",
              method, "--out", str(out), "--no-progress"], out.with_suffix(".log"))
    return out


def row_chain(task: str, algo: str, a: argparse.Namespace) -> dict:
    """Train (keeping candidates) -> select on the tuning seeds -> evaluate last and selected."""
    ev, w = Path(a.evidence), a.work / task
    run = w / algo
    if not (run / "policy").is_dir():
        row = json.loads((ev / "stages" / f"offline-{task}-{algo}.done").read_text())["argv"]
        row = [x if x != str(ev / "runs" / task / algo) else str(run) for x in row]
        row[row.index("--config") + 1] = str(a.work / "offline_select.yaml")
        bora(row, w / f"train_{algo}.log")
    if not (run / "selection.json").is_file():
        bora(["select", "--run", str(run), "--task", task, "--trials", str(a.tune_trials), "--seed0",
              str(a.tune_seed0), "--objects", "standard", "--replan-steps", "8", "--threads", "1", "--no-progress"],
             w / f"select_{algo}.log")
    sel = json.loads((run / "selection.json").read_text())
    last = run / "select" / f"step_{sel['last_step']:07d}" / "policy"
    ev_last = evaluate(last, task, w / f"eval_{algo}_last.json", a, ROWS[algo])
    ev_sel = evaluate(run, task, w / f"eval_{algo}_selected.json", a, ROWS[algo] + " (selected)")
    ours = json.loads((run / "checkpoints" / f"step_{sel['last_step']:07d}" / "meta.json").read_text())["files"]
    theirs = ev / "runs" / task / algo / "checkpoints" / f"step_{sel['last_step']:07d}" / "meta.json"
    same = theirs.is_file() and {k: v for k, v in ours.items() if k.endswith(".safetensors")} == {
        k: v for k, v in json.loads(theirs.read_text())["files"].items() if k.endswith(".safetensors")}
    table_eval = ev / "eval" / f"{task}__{algo}__standard.json"
    print(f"{task} {algo} done {time.strftime('%H:%M:%S')}", flush=True)
    tuning = {c["step"]: successes(run / "select" / f"{c['checkpoint']}.json") for c in sel["candidates"]}
    return {"selection": sel, "last": successes(ev_last), "selected": successes(ev_sel), "tuning": tuning,
            "reproduces_weights": bool(same),
            "reproduces_eval": table_eval.is_file() and successes(table_eval) == successes(ev_last)}


def candidates_table(rows: dict) -> list[str]:
    lines = ["", "Tuning-seed successes of every candidate checkpoint (the chosen one in bold):", "",
             "| task | row | " + " | ".join(f"@{c['step']}" for c in next(iter(rows.values()))["selection"]
                                            ["candidates"]) + " |",
             "|" + " --- |" * (2 + len(next(iter(rows.values()))["selection"]["candidates"]))]
    for (task, algo), r in rows.items():
        sel = r["selection"]
        cells = [(f"**{c['successes']}/{c['trials']}**" if c["step"] == sel["chosen_step"]
                  else f"{c['successes']}/{c['trials']}") for c in sel["candidates"]]
        lines.append(f"| {task} | {ROWS[algo]} | " + " | ".join(cells) + " |")
    return lines


def ppo_start(cfg: dict) -> int:
    """The update BORA's PPO term starts at (``OfflineConfig.ppo_start``); before it BORA-Offline's actor is
    trained exactly as CP Base's."""
    return ppo_start_step(int(cfg["total_updates"]), cfg.get("ppo_start_step"), float(cfg["ppo_start_fraction"]))


def checkpoint_means(run: Path, first: int) -> list[float]:
    """Per tuning seed, the success averaged over the candidate checkpoints of ``run`` from update ``first`` on."""
    sel = json.loads((run / "selection.json").read_text())
    per = np.array([successes(run / "select" / f"{c['checkpoint']}.json") for c in sel["candidates"]
                    if c["step"] >= first], dtype=float)
    return per.mean(axis=0).tolist()


def mean_over_checkpoints(a: argparse.Namespace) -> list[str]:
    """BORA-Offline - CP Base with each row's success averaged over its candidate checkpoints (all of them, and
    those after BORA's PPO start), paired by tuning seed (seeds resampled, tasks as strata:
    ``stats.paired_bootstrap_diff``)."""
    start = ppo_start(yaml.safe_load((a.work / a.tasks[0] / "bora" / "config.yaml").read_text()))
    lines = ["", f"Candidate checkpoints averaged (tuning seeds; per seed the success averaged over a row's "
             f"candidates; paired bootstrap over seeds, tasks as strata, 95% interval). BORA's PPO term starts "
             f"at update {start}: before it both rows train the actor identically.", "",
             "| candidates | task | CP Base | BORA-Offline | BORA-Offline - CP Base |",
             "| --- | --- | --- | --- | --- |"]
    for label, first in (("all", 0), (f"after update {start}", start + 1)):
        strata = {t: (checkpoint_means(a.work / t / "bora", first), checkpoint_means(a.work / t / "cp-bc", first))
                  for t in a.tasks}
        for t in list(strata) + (["**pooled**"] if len(strata) > 1 else []):
            sub = strata if t == "**pooled**" else {t: strata[t]}
            d, lo, hi = paired_bootstrap_diff(sub)
            mb = np.mean([np.mean(x) for x, _ in sub.values()])
            mc = np.mean([np.mean(y) for _, y in sub.values()])
            lines.append(f"| {label} | {t} | {100 * mc:.1f}% | {100 * mb:.1f}% | "
                         f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evidence", required=True, help="an evidence run directory (bora demo --out)")
    p.add_argument("--tasks", nargs="*", default=["press_button", "pick_plush_toy", "pick_and_place"], choices=TASKS)
    p.add_argument("--every", type=int, default=100, help="updates between candidate checkpoints")
    p.add_argument("--tune-trials", type=int, default=30)
    p.add_argument("--tune-seed0", type=int, default=200_000, help="tuning seeds (never the evaluation seeds)")
    p.add_argument("--trials", type=int, default=50, help="evaluation episodes per policy (standard objects)")
    p.add_argument("--eval-seed0", type=int, default=300_000, help="the evidence protocol's evaluation seeds")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/select"))
    p.add_argument("--report", default="checkpoint_select")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="OfflineConfig fields changed for the retrained rows (YAML values), e.g. lr_decay=cosine")
    a = p.parse_args(argv)
    if a.tune_seed0 < a.eval_seed0 + a.trials and a.eval_seed0 < a.tune_seed0 + a.tune_trials:
        p.error(f"--tune-seed0 {a.tune_seed0}: the tuning seeds overlap the evaluation seeds {a.eval_seed0}..")
    ev = Path(a.evidence)
    cfg = yaml.safe_load((ev / "configs" / "offline.yaml").read_text())
    changes = {}
    for item in a.set:
        if "=" not in item:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        key, val = item.split("=", 1)
        if key not in {f.name for f in dataclasses.fields(OfflineConfig)}:
            p.error(f"--set {key}: not an OfflineConfig field")
        changes[key] = yaml.safe_load(val)
    cfg.update(ckpt_every=a.every, keep_last=0, **changes)
    for t in a.tasks:
        (a.work / t).mkdir(parents=True, exist_ok=True)
    (a.work / "offline_select.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with ThreadPoolExecutor(a.jobs) as pool:
        futs = {(t, algo): pool.submit(row_chain, t, algo, a) for t in a.tasks for algo in ROWS}
        warm = {t: pool.submit(evaluate, ev / "runs" / t / "warmup", t, a.work / t / "eval_warmup.json", a, "Warm-up")
                for t in a.tasks}
        rows = {k: f.result() for k, f in futs.items()}
        warm = {t: successes(f.result()) for t, f in warm.items()}
    results = {t: {"Warm-up": warm[t], "CP Base": rows[(t, "cp-bc")]["last"],
                   "CP Base (selected)": rows[(t, "cp-bc")]["selected"], "BORA-Offline": rows[(t, "bora")]["last"],
                   "BORA-Offline (selected)": rows[(t, "bora")]["selected"]} for t in a.tasks}
    lines = [f"| task | {' | '.join(POLICIES)} |", "|" + " --- |" * (len(POLICIES) + 1)]
    for t, r in results.items():
        chosen = {algo: rows[(t, algo)]["selection"]["chosen_step"] for algo in ROWS}
        cells = [f"{sum(r[x])}/{len(r[x])}" + (f" (@{chosen['cp-bc' if 'CP' in x else 'bora']})"
                                                if "selected" in x else "") for x in POLICIES]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    if len(results) > 1:
        pooled = {x: [v for r in results.values() for v in r[x]] for x in POLICIES}
        lines.append("| **pooled** | " + " | ".join(f"{sum(v)}/{len(v)}" for v in pooled.values()) + " |")
    repro = [f"{t} {ROWS[algo]}: weights {'identical' if r['reproduces_weights'] else 'DIFFER'}, evaluation "
             f"{'identical' if r['reproduces_eval'] else 'DIFFERS'}" for (t, algo), r in rows.items()]
    body = "\n".join(lines + paired_lines(results, PAIRS) + candidates_table(rows) + mean_over_checkpoints(a)
                     + ["", "Retrained last checkpoint against the evidence run's row"
                        + (f" (a different config, {changes}: they differ by design)" if changes else "") + ": "
                        + "; ".join(repro) + "."])
    m = machine(calibrate=False)
    (RESULTS / f"{a.report}.json").write_text(json.dumps(
        {"evidence": a.evidence, "every": a.every, "tune_trials": a.tune_trials, "tune_seed0": a.tune_seed0,
         "trials": a.trials, "eval_seed0": a.eval_seed0, "set": changes, "results": results,
         "rows": {f"{t}/{algo}": r for (t, algo), r in rows.items()}, "machine": m}, indent=1))
    head = (f"# Checkpoints chosen on tuning seeds (`bora select`, issue 14)\n\nMachine: {m.get('cpu', '')}; commit "
            f"{m.get('commit', '')}. `bench/bench_checkpoint_select.py --evidence {a.evidence} --every {a.every}"
            f"{' --set ' + ' '.join(a.set) if a.set else ''}`: "
            f"candidates every {a.every} updates, {a.tune_trials} standard trials each on the tuning seeds "
            f"{a.tune_seed0}..; the table: {a.trials} standard trials per policy on the evaluation seeds "
            f"{a.eval_seed0}.. (paired; (@N): the chosen checkpoint).\n\n")
    write_keeping_findings(RESULTS / f"{a.report}.md", head + body + "\n")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
