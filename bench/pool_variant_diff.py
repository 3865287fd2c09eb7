"""A variant against a control, pooled over several work dirs of ``bench_online_bc.py`` (issue 14).

Each work dir holds one evidence build's online runs (``TASK_full_NAME[@sN].json``, evaluated on the same
tuning seeds). A pair (variant@sN, control@sN) of one work dir is one "training seed" of
:func:`bora_trainer.stats.hierarchical_bootstrap_diff`: paired on the evaluation seeds, same offline run, same
online seed; builds and online seeds are both resampled as that seed level. Use it when one build's three
online seeds leave an interval through 0 and a second build repeats the comparison::

    python bench/pool_variant_diff.py --work /work/runs/online_null /work/runs/bcc --variant nohinge \
        --control default --json bench/results/nohinge_pooled.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_online_bc import successes  # noqa: E402

from bora_trainer.stats import hierarchical_bootstrap_diff  # noqa: E402

TASKS = ["pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button"]


def pairs(work: Path, variant: str, control: str, tasks: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per task the (variant run, control run) names of ``work`` at the online seeds both have on every task."""
    def seeds(name: str) -> set[int]:
        found = set()
        for p in work.glob(f"{tasks[0]}_full_{name}*.json"):
            tail = p.stem[len(f"{tasks[0]}_full_{name}"):]
            if tail == "" or (tail.startswith("@s") and tail[2:].isdigit()):
                found.add(int(tail[2:] or 0))
        return {s for s in found if all((work / f"{t}_full_{run(name, s)}.json").exists() for t in tasks)}

    common = sorted(seeds(variant) & seeds(control))
    return {t: [(run(variant, s), run(control, s)) for s in common] for t in tasks}


def run(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}@s{seed}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, nargs="+", required=True, help="bench_online_bc.py work dirs")
    p.add_argument("--variant", required=True)
    p.add_argument("--control", default="default")
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    a = p.parse_args(argv)
    strata: dict[str, list] = {t: [] for t in a.tasks}
    rows = []
    for w in a.work:
        if not w.is_dir():
            p.error(f"--work: {w} is not a directory")
        got = pairs(w, a.variant, a.control, a.tasks)
        if not got[a.tasks[0]]:
            p.error(f"--work {w}: no online seed with both {a.variant} and {a.control} on every task")
        for i, (v, c) in enumerate(got[a.tasks[0]]):
            one = {t: [(successes(w / f"{t}_full_{got[t][i][0]}.json"), successes(w / f"{t}_full_{got[t][i][1]}.json"))]
                   for t in a.tasks}
            for t in a.tasks:
                strata[t] += one[t]
            rows.append({"work": str(w), "variant": v, "control": c,
                         "pooled_diff": 100 * hierarchical_bootstrap_diff(one, n_boot=1)[0]})
    mean, lo, hi = hierarchical_bootstrap_diff(strata)
    out = {"variant": a.variant, "control": a.control, "tasks": a.tasks, "pairs": rows,
           "mean": 100 * mean, "lo": 100 * lo, "hi": 100 * hi}
    for r in rows:
        print(f"{r['work']}: {r['variant']} - {r['control']}: {r['pooled_diff']:+.1f} points")
    print(f"{a.variant} - {a.control} over {len(rows)} (build, online seed) pairs: {out['mean']:+.1f} "
          f"[{out['lo']:+.1f}, {out['hi']:+.1f}] points (95%, builds/seeds and trials resampled)")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
