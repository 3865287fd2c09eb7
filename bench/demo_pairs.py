"""The rows of one `make demo` build on many fresh paired seeds (issue 14: does `make demo` show the paper's order?).

`make demo` evaluates every row on 10 trials per object set, where almost every difference lies inside the
intervals. This re-evaluates the SAME trained runs of a finished demo (no training) on ``--trials`` new seeds per
object set, every row on the same seeds, and reports per object set the paired difference (Newcombe interval, exact
McNemar p) and over both sets a paired bootstrap stratified by object set::

    python bench/demo_pairs.py --demo-out demo_out --out bench/results/demo_pairs

Each evaluation is `bora eval --run RUN --task T --objects O --trials N --seed0 S --replan-steps K --threads 1
--num-envs 2 --no-values` (the same episodes as one at a time, bora_trainer/evaluate_vec.py; outcomes only: the
critic's per-step values make every step render, about 4x the time on open_box, for the same outcomes,
test_evaluate_vec.py); a result JSON already in ``--work`` is read, not recomputed.
The seeds (default 800000..) are outside the demo's evaluation (100000..) and
tuning ranges. One build = one training run per row on this machine's float kernels: the intervals cover the
evaluation seeds, not the training randomness (README, issue 14).

``--extra-online RUN...``: more online stages retrained from the same BORA-Offline run (e.g. `bora train online
--env ros` with the demo's command line and another ``--out``: through the graph every run differs); BORA-Full -
BORA-Offline is then also given per online run and over all of them with a bootstrap of runs and seeds (crossed:
the runs share the seeds; stratified by object set: :func:`bora_trainer.stats.hierarchical_bootstrap_diff`), which
covers the online stage's randomness but not the offline stage's. Per online run the report also gives the ingested
online episodes' successes and how many of those the operator took over ended in success (``trainer/ingested.json``).

The JSON keeps every row's per-seed outcomes: ``bench/demo_pairs_pooled.py`` pools several tasks' results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine  # noqa: E402

from bora_trainer.online.rounds import round_table  # noqa: E402
from bora_trainer.stats import (  # noqa: E402
    hierarchical_bootstrap_diff,
    mcnemar_exact_p,
    newcombe_paired_diff,
    paired_bootstrap_diff,
)

ROWS = {  # run directory under DEMO/runs/TASK -> label (config/demo.yaml's rows)
    "warmup": "Warm-up (the shared start)",
    "cp-bc": "CP Base",
    "bora": "BORA-Offline",
    "bora-residual-online": "BORA-Full",
}
PAIRS = [("bora-residual-online", "bora"), ("bora", "cp-bc"), ("cp-bc", "warmup"), ("bora-residual-online", "warmup")]
SETS = ("standard", "unseen")


def evaluate(run: Path, task: str, obj: str, trials: int, seed0: int, replan: int, out: Path) -> dict:
    if not out.is_file():
        cmd = ["bora", "eval", "--run", str(run), "--task", task, "--objects", obj, "--trials", str(trials),
               "--seed0", str(seed0), "--replan-steps", str(replan), "--threads", "1", "--num-envs", "2",
               "--no-values", "--no-progress", "--out", str(out)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    res = json.loads(out.read_text())
    if res["trials"] != trials or min(e["seed"] for e in res["episodes"]) != seed0:
        raise SystemExit(f"{out}: trials {res['trials']} from seed {min(e['seed'] for e in res['episodes'])}, "
                         f"expected {trials} from {seed0} (delete it to recompute)")
    return res


def outcomes(res: dict) -> list[bool]:
    return [bool(e["success"]) for e in sorted(res["episodes"], key=lambda e: e["seed"])]


def rescue(ingested: Path) -> dict | None:
    """Over all rounds of a trainer's ledger (``trainer/ingested.json``, :func:`round_table`): episodes, successes,
    episodes the operator took over and how many of those ended in success (issue 14's rescue rate)."""
    if not ingested.is_file():
        return None
    rows = round_table(json.loads(ingested.read_text()))
    if any(r["rescued"] is None for r in rows):
        return None
    return {k: sum(r[k] for r in rows) for k in ("episodes", "successes", "taken_over", "rescued")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-out", type=Path, required=True, help="a finished `bora demo` output directory")
    ap.add_argument("--task", default="press_button")
    ap.add_argument("--trials", type=int, default=50, help="seeds per object set (default 50)")
    ap.add_argument("--seed0", type=int, default=800_000)
    ap.add_argument("--replan-steps", type=int, default=8, help="as the demo's evaluation (config/demo.yaml)")
    ap.add_argument("--work", type=Path, default=None, help="evaluation JSONs (default: DEMO_OUT/pairs)")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    ap.add_argument("--extra-online", type=Path, nargs="*", default=[],
                    help="more online runs of the same build (BORA-Full retrained): a row each + a runs x seeds "
                         "bootstrap")
    ap.add_argument("--built-at", default="", help="the commit the demo was built at (named in the report)")
    a = ap.parse_args(argv)
    runs = a.demo_out / "runs" / a.task
    missing = [r for r in ROWS if not (runs / r).is_dir()]
    if missing:
        raise SystemExit(f"--demo-out: {runs} has no run {missing[0]!r} (expected the rows {list(ROWS)})")
    work = a.work or a.demo_out / "pairs"
    work.mkdir(parents=True, exist_ok=True)
    x = {(r, o): outcomes(evaluate(runs / r, a.task, o, a.trials, a.seed0, a.replan_steps, work / f"{r}__{o}.json"))
         for r in ROWS for o in SETS}
    m = machine(calibrate=False)
    built = f" (built at {a.built_at})" if a.built_at else ""
    res = {"machine": m, "demo_out": str(a.demo_out), "built_at": a.built_at, "task": a.task,
           "seeds": [a.seed0, a.seed0 + a.trials - 1],
           "successes": {f"{r}/{o}": sum(v) for (r, o), v in x.items()},
           "outcomes": {f"{r}/{o}": [int(s) for s in v] for (r, o), v in x.items()},  # per seed, seed0 first
           "pairs": []}
    md = [f"# `make demo` rows on {a.trials} fresh paired seeds per object set ({a.task})", "",
          f"Evaluated at {m['commit']} on {m['cpu']} ({m.get('logical_cpus', '?')} logical CPUs), torch {m['torch']}; "
          f"the runs of `{a.demo_out}`{built}; seeds {a.seed0}..{a.seed0 + a.trials - 1} on each object set, "
          "every row on the same seeds. One training run per row: the intervals cover the evaluation seeds only.", "",
          "| row | " + " | ".join(SETS) + " |", "| --- | " + " | ".join("---" for _ in SETS) + " |"]
    md += [f"| {ROWS[r]} | " + " | ".join(f"{sum(x[r, o])}/{a.trials}" for o in SETS) + " |" for r in ROWS]
    md += ["", "| paired difference (points) | " + " | ".join(f"{o} (Newcombe 95%, McNemar p)" for o in SETS)
           + " | both sets (bootstrap 95%, stratified by set) |", "| --- | --- | --- | --- |"]
    for r1, r2 in PAIRS:
        cells, row = [], {"row": ROWS[r1], "minus": ROWS[r2]}
        for o in SETS:
            d, lo, hi = newcombe_paired_diff(x[r1, o], x[r2, o])
            p = mcnemar_exact_p(x[r1, o], x[r2, o])
            row[o] = {"diff": 100 * d, "lo": 100 * lo, "hi": 100 * hi, "mcnemar_p": p}
            cells.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}], p {p:.3f}")
        d, lo, hi = paired_bootstrap_diff({o: (x[r1, o], x[r2, o]) for o in SETS})
        row["both"] = {"diff": 100 * d, "lo": 100 * lo, "hi": 100 * hi}
        cells.append(f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
        res["pairs"].append(row)
        md.append(f"| {ROWS[r1]} - {ROWS[r2]} | " + " | ".join(cells) + " |")
    if a.extra_online:
        runs_on = [("the demo's", None)] + [(str(r), r) for r in a.extra_online]
        per_set = {o: [] for o in SETS}
        md += ["", "BORA-Full retrained (the online stage only, same BORA-Offline run) - BORA-Offline, same seeds:", "",
               "| online run | " + " | ".join(f"{o}: BORA-Full, difference" for o in SETS)
               + " | operator share per round (takeovers) | online episodes: successes; rescued of those taken over |",
               "| --- | --- | --- | --- | --- |"]
        res["online_runs"] = []
        for name, run in runs_on:
            cells, entry = [], {"run": name}
            for o in SETS:
                if run is None:
                    xo = x["bora-residual-online", o]
                else:
                    xo = outcomes(evaluate(run, a.task, o, a.trials, a.seed0, a.replan_steps,
                                           work / f"online_{run.name}__{o}.json"))
                per_set[o].append((xo, x["bora", o]))
                d = 100 * (sum(xo) - sum(x["bora", o])) / a.trials
                entry[o] = {"successes": sum(xo), "diff": d, "outcomes": [int(s) for s in xo]}
                cells.append(f"{sum(xo)}/{a.trials}, {d:+.1f}")
            status = (run or runs / "bora-residual-online") / "trainer" / "status.json"
            rounds = json.loads(status.read_text()).get("rounds", []) if status.is_file() else []
            entry["rounds"] = rounds
            cells.append(", ".join(f"{100 * r['intervened_share']:.1f}% ({r['takeovers']})" for r in rounds) or "n/a")
            entry["rescue"] = rescue((run or runs / "bora-residual-online") / "trainer" / "ingested.json")
            cells.append("n/a" if entry["rescue"] is None else "{successes}/{episodes}; {rescued}/{taken_over}".format(
                **entry["rescue"]))
            res["online_runs"].append(entry)
            md.append(f"| {name} | " + " | ".join(cells) + " |")
        d, lo, hi = hierarchical_bootstrap_diff(per_set)
        res["online_pooled"] = {"diff": 100 * d, "lo": 100 * lo, "hi": 100 * hi, "runs": len(runs_on)}
        done = a.demo_out / "stages" / f"online-{a.task}-bora-residual.done"
        if done.is_file():
            argv = json.loads(done.read_text())["argv"]
            md += ["", "The demo's online stage (every other online run: the same command with its own `--out`): `bora "
                   + " ".join(argv) + "`"]
        md += ["", f"Over the {len(runs_on)} online runs and both object sets (runs x seeds bootstrap, 95%): "
               f"BORA-Full - BORA-Offline {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points."]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    a.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
