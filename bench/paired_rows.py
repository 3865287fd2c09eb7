"""Paired differences between rows of two evaluation directories on the same seeds (issue 14: a row re-run with
new code against a row of the evidence run; each is a ``bora eval`` result ``TASK__ROW__OBJECTS.json``).

For every comparison ``A_DIR:A_ROW - B_DIR:B_ROW`` and object set, per task: successes, the paired difference with
Newcombe's interval (stats.newcombe_paired_diff) and McNemar's exact p; pooled: the mean over tasks of the paired
differences with a paired bootstrap stratified by task (stats.paired_bootstrap_diff), as ``bora report evidence``
computes them. Cells are checked alike first (evidence_runs.check_pair: settings, trials, seeds): a mismatch is a
one-line error.

    .venv/bin/python bench/paired_rows.py --compare NEW_EVAL:bora-residual-online=OLD_EVAL:bora \\
        [--compare ...] [--tasks press_button ...] [--out OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bora_trainer.evidence_runs import check_pair, paired_outcomes
from bora_trainer.report import TASK_ORDER, Cell
from bora_trainer.stats import mcnemar_exact_p, newcombe_paired_diff, paired_bootstrap_diff

sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = tuple(TASK_ORDER)  # the evidence report's order: the stratified bootstrap draws per task in this order


def load(d: Path, task: str, row: str, oset: str) -> Cell | None:
    """The ``bora eval`` result ``d/TASK__ROW__OSET.json`` as the evidence report's cell, None if absent."""
    f = d / f"{task}__{row}__{oset}.json"
    if not f.is_file():
        return None
    c = Cell()
    c.add(json.loads(f.read_text()), f)
    return c


def outcomes(a: Cell, b: Cell) -> tuple[list[int], list[int]]:
    """The two cells' outcomes seed by seed, after the evidence report's check that they were evaluated alike
    (evidence_runs.check_pair: settings, trials, seeds; a one-line ValueError)."""
    check_pair(a, b)
    _, x, y = paired_outcomes(a, b)
    return x, y


def compare(spec: str, tasks: list[str], n_boot: int) -> list[dict]:
    try:
        left, right = spec.split("=")
        (ad, ar), (bd, br) = (s.rsplit(":", 1) for s in (left, right))
    except ValueError:
        raise SystemExit(f"--compare {spec!r}: expected A_DIR:A_ROW=B_DIR:B_ROW") from None
    out = []
    for oset in ("standard", "unseen"):
        rows, strata = [], {}
        for t in tasks:
            a, b = load(Path(ad), t, ar, oset), load(Path(bd), t, br, oset)
            if a is None or b is None:
                continue
            x, y = outcomes(a, b)
            d, lo, hi = newcombe_paired_diff(x, y)
            rows.append({"task": t, "n": len(x), "a": sum(x), "b": sum(y), "diff": d, "newcombe95": [lo, hi],
                         "mcnemar_p": mcnemar_exact_p(x, y)})
            strata[t] = (x, y)
        if rows:
            est, lo, hi = paired_bootstrap_diff(strata, n_boot=n_boot)
            out.append({"compare": spec, "object_set": oset, "tasks": rows,
                        "pooled": {"diff": est, "bootstrap95": [lo, hi], "tasks": len(rows)}})
    return out


def budget(out: Path, row: str = "bora-residual-online", rounds: int = 2) -> list[dict]:
    """Per task, the first ``rounds`` rounds of ``OUT/runs/<task>/<row>/summary.json`` (a run through the ROS graph):
    episodes, successes, takeovers, rescued / taken-over episodes and the share of control steps under the
    operator (issue 14's operator targets: rescues >= 80%, share about 20%)."""
    res = []
    for t in TASK_ORDER:
        f = out / "runs" / t / row / "summary.json"
        if not f.is_file():
            continue
        rs = [r for r in json.loads(f.read_text()).get("per_round", []) if int(r["round"]) <= rounds]
        tot = {k: sum(int(r.get(k, 0)) for r in rs) for k in
               ("episodes", "successes", "steps", "intervened_steps", "takeovers", "taken_over", "rescued")}
        res.append({"task": t, "rounds": len(rs), **tot,
                    "share": tot["intervened_steps"] / tot["steps"] if tot["steps"] else 0.0})
    return res


def budget_md(label: str, rows: list[dict]) -> list[str]:
    md = [f"### Operator in {label}", "", "| task | rounds | episodes | successes | takeovers | rescued / taken over |"
          " steps under the operator |", "| --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['task']} | {r['rounds']} | {r['episodes']} | {r['successes']} | {r['takeovers']} | "
           f"{r['rescued']} / {r['taken_over']} | {r['intervened_steps']} of {r['steps']} ({100 * r['share']:.1f}%) |"
           for r in rows]
    steps, held = sum(r["steps"] for r in rows), sum(r["intervened_steps"] for r in rows)
    return md + [f"| all | | | | | | {held} of {steps} ({100 * held / max(steps, 1):.1f}%) |", ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", action="append", required=True, metavar="A_DIR:A_ROW=B_DIR:B_ROW")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--n-boot", type=int, default=10_000)
    ap.add_argument("--budget", action="append", default=[], metavar="OUT",
                    help="also tabulate the operator in OUT/runs/<task>/bora-residual-online (rounds 1-2)")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    res = [r for spec in args.compare for r in compare(spec, args.tasks, args.n_boot)]
    budgets = {b: budget(Path(b)) for b in args.budget}
    md = [line for b, rows in budgets.items() for line in budget_md(b, rows)]
    for r in res:
        p = r["pooled"]
        md += [f"### {r['compare']} ({r['object_set']})", "",
               "| task | n | A | B | A - B (points) | Newcombe 95% | McNemar p |",
               "| --- | --- | --- | --- | --- | --- | --- |"]
        md += [f"| {t['task']} | {t['n']} | {t['a']} | {t['b']} | {100 * t['diff']:+.1f} | "
               f"[{100 * t['newcombe95'][0]:+.1f}, {100 * t['newcombe95'][1]:+.1f}] | {t['mcnemar_p']:.3f} |"
               for t in r["tasks"]]
        md += [f"| pooled ({p['tasks']} tasks) | | | | **{100 * p['diff']:+.1f}** | bootstrap "
               f"[{100 * p['bootstrap95'][0]:+.1f}, {100 * p['bootstrap95'][1]:+.1f}] | |", ""]
    print("\n".join(md))
    if args.out is not None:
        from machine_info import machine

        args.out.with_suffix(".json").write_text(json.dumps({"machine": machine(calibrate=False), "results": res,
                                                             "budgets": budgets}, indent=1))
        args.out.with_suffix(".md").write_text("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
