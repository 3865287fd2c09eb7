"""Pool `bench/demo_pairs.py` results over tasks (issue 14: the paper's orderings pooled, on `make demo` builds).

Each input is one task's ``demo_pairs`` JSON (the same trained runs re-evaluated on fresh paired seeds, with the
per-seed ``outcomes`` that demo_pairs.py stores). Pooled over tasks, every paired difference is the mean over
strata of the per-stratum mean difference, tasks weighing equally as in the paper's "Average" rows
(:func:`bora_trainer.stats.paired_bootstrap_diff`): per object set the strata are the tasks; over both sets they
are (task, object set). BORA-Full - BORA-Offline is also pooled over every online run of every task with the
bootstrap of runs and seeds (crossed: the runs share the evaluation seeds; within each task:
:func:`bora_trainer.stats.hierarchical_bootstrap_diff`); over both sets an online run's two object sets are
resampled together (one run made both). One offline build per task: the intervals cover the
evaluation seeds (and the online runs where named), not the offline training's randomness::

    python bench/demo_pairs_pooled.py bench/results/demo_pairs.json bench/results/demo_pairs_pick_plush_toy.json \\
        --out bench/results/demo_pairs_pooled
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_pairs import PAIRS, ROWS, SETS  # noqa: E402

from bora_trainer.stats import hierarchical_bootstrap_diff, paired_bootstrap_diff  # noqa: E402


def load(path: Path) -> dict:
    """One task's demo_pairs JSON, checked for what pooling needs (one-line errors)."""
    try:
        res = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: cannot read a demo_pairs JSON ({e})") from None
    if "outcomes" not in res:
        raise SystemExit(f"{path}: field 'outcomes' missing (expected the per-seed outcomes that bench/demo_pairs.py "
                         "writes since it stores them; run it again on its --work folder, nothing is recomputed)")
    for r in ROWS:
        for o in SETS:
            if f"{r}/{o}" not in res["outcomes"]:
                raise SystemExit(f"{path}: outcomes['{r}/{o}'] missing (expected every row of {list(ROWS)} on {SETS})")
    return res


def pool(results: list[dict]) -> dict:
    """Pooled differences over the tasks of ``results`` (fractions, not points)."""
    tasks = [r["task"] for r in results]
    if len(set(tasks)) != len(tasks):
        raise SystemExit(f"tasks {tasks}: each task once (one demo_pairs JSON per task)")
    out = {"tasks": tasks, "pairs": []}
    for r1, r2 in PAIRS:
        row = {"row": ROWS[r1], "minus": ROWS[r2]}
        for name, sets in [(o, [o]) for o in SETS] + [("both", list(SETS))]:
            strata = {f"{res['task']}/{o}": (res["outcomes"][f"{r1}/{o}"], res["outcomes"][f"{r2}/{o}"])
                      for res in results for o in sets}
            d, lo, hi = paired_bootstrap_diff(strata)
            row[name] = {"diff": d, "lo": lo, "hi": hi}
        out["pairs"].append(row)
    if all("online_runs" in res for res in results):
        online = {}
        for name, sets in [(o, [o]) for o in SETS] + [("both", list(SETS))]:
            # an online run's object sets are one cluster: resampled together (their outcomes concatenated)
            strata = {res["task"]: [(sum((list(run[o]["outcomes"]) for o in sets), []),
                                     sum((list(res["outcomes"][f"bora/{o}"]) for o in sets), []))
                                    for run in res["online_runs"]]
                      for res in results}
            d, lo, hi = hierarchical_bootstrap_diff(strata)
            online[name] = {"diff": d, "lo": lo, "hi": hi}
        online["runs_per_task"] = {res["task"]: len(res["online_runs"]) for res in results}
        out["online_pooled"] = online
    return out


def fmt(c: dict) -> str:
    return f"{100 * c['diff']:+.1f} [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}]"


def report(paths: list[Path], results: list[dict], pooled: dict) -> str:
    n = {res["task"]: res["seeds"][1] - res["seeds"][0] + 1 for res in results}
    md = [f"# `make demo` builds on fresh paired seeds, pooled over {len(results)} tasks", "",
          "Inputs (one demo build per task, bench/demo_pairs.py): " + ", ".join(f"`{p.name}`" for p in paths) + ". "
          "Tasks weigh equally; every interval is a paired percentile bootstrap (95%) stratified by task (and object "
          "set under 'both'; an online run's two sets are resampled together). One offline build per task: the "
          "intervals cover evaluation seeds, and online runs where named, not the offline training's randomness.", "",
          "| task | built at | seeds | " + " | ".join(f"{ROWS[r]} ({'/'.join(SETS)})" for r in ROWS) + " |",
          "| --- | --- | --- | " + " | ".join("---" for _ in ROWS) + " |"]
    for res in results:
        cells = [" / ".join(f"{res['successes'][f'{r}/{o}']}" for o in SETS) + f" of {n[res['task']]}" for r in ROWS]
        md.append(f"| {res['task']} | {res.get('built_at') or '?'} | {res['seeds'][0]}.. | " + " | ".join(cells) + " |")
    md += ["", "| paired difference (points), pooled | " + " | ".join(SETS) + " | both sets |",
           "| --- | --- | --- | --- |"]
    for row in pooled["pairs"]:
        which = " (the demo's online run)" if "BORA-Full" in (row["row"], row["minus"]) else ""
        md.append(f"| {row['row']} - {row['minus']}{which} | "
                  + " | ".join(fmt(row[k]) for k in (*SETS, "both")) + " |")
    if "online_pooled" in pooled:
        op = pooled["online_pooled"]
        runs = ", ".join(f"{t} {k}" for t, k in op["runs_per_task"].items())
        md.append(f"| BORA-Full - BORA-Offline over every online run (runs x seeds bootstrap; runs: {runs}) | "
                  + " | ".join(fmt(op[k]) for k in (*SETS, "both")) + " |")
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+", help="demo_pairs JSONs, one per task")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    a = ap.parse_args(argv)
    results = [load(p) for p in a.inputs]
    pooled = pool(results)
    pooled["inputs"] = [str(p) for p in a.inputs]
    md = report(a.inputs, results, pooled)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(pooled, indent=1))
    a.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
