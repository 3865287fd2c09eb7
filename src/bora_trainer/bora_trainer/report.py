"""``bora report``: the paper's comparison tables (Tables 1-2) and plots (Fig. 3, Fig. 11) from eval files.

Input: the JSON files written by ``bora eval`` (one per run x task x object set), schema::

    {"method": "BORA-Offline", "run": "runs/bora", "task": "press_button", "object_set": "standard",
     "trials": 20, "successes": 13,
     "episodes": [{"seed": 0, "success": true, "steps": 57, "values": [..per-step critic value..]}]}

Output: a Markdown report with one table per object set (counts and percentages per task and
method, an average row, Wilson 95% intervals), ``success_bars.png`` and ``value_profile.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bora_trainer.algorithms import registry

# Column order of the paper's Tables 1-2, then the related methods.
METHOD_ORDER = registry.labels()  # the paper's table order (algorithms/registry.py), then new methods
TASK_ORDER = ["pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button"]
TASK_TITLES = {
    "pick_plush_toy": "Pick the plush toy",
    "pick_and_place": "Pick and Place",
    "open_box": "Open the box",
    "pull_tissue": "Pull the tissue",
    "press_button": "Press the button",
}


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%).

    centre = (p + z^2/2n) / (1 + z^2/n), half-width = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
    """
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes}")
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # at 0 or n successes the bound is exactly 0 or 1 (in floating point centre + half can fall 1 ulp short
    # of 1, which made a plotted error bar negative for a 50/50 cell)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


@dataclass
class Cell:
    successes: int = 0
    trials: int = 0
    episodes: list[dict] = field(default_factory=list)
    # per result file added: {"file", "object_set", "seeds", "settings"} (what the evidence report compares)
    sources: list[dict] = field(default_factory=list)

    def add(self, res: dict, source: str | Path = "") -> None:
        self.successes += int(res["successes"])
        self.trials += int(res["trials"])
        self.episodes.extend(res.get("episodes", []))
        self.sources.append({"file": str(source), "object_set": res.get("object_set"),
                             "seeds": [e["seed"] for e in res.get("episodes", []) if "seed" in e],
                             "settings": res.get("settings") or {}})


def load_results(paths: list[Path]) -> dict[tuple[str, str, str], Cell]:
    """(object_set, task, method) -> aggregated cell. Directories are searched for ``*.json``."""
    cells: dict[tuple[str, str, str], Cell] = defaultdict(Cell)
    files: list[tuple[Path, bool]] = []
    for p in paths:
        files.extend([(f, True) for f in sorted(p.rglob("*.json"))] if p.is_dir() else [(p, False)])
    for f, found_in_dir in files:
        res = json.loads(f.read_text())
        missing = [k for k in ("method", "task", "object_set", "trials", "successes") if k not in res]
        if missing:
            if found_in_dir:  # other JSON files may live beside eval results
                continue
            raise ValueError(f"{f}: not a `bora eval` result, missing {missing}")
        cells[(res["object_set"], res["task"], res["method"])].add(res, f)
    return cells


def _ordered(items: set[str], order: list[str]) -> list[str]:
    return [x for x in order if x in items] + sorted(items - set(order))


def markdown_tables(cells: dict[tuple[str, str, str], Cell]) -> str:
    out = []
    for object_set in _ordered({k[0] for k in cells}, ["standard", "unseen"]):
        keys = [k for k in cells if k[0] == object_set]
        tasks = _ordered({k[1] for k in keys}, TASK_ORDER)
        methods = _ordered({k[2] for k in keys}, METHOD_ORDER)
        out.append(f"### Object set: {object_set}\n")
        out.append("| Task | " + " | ".join(methods) + " |")
        out.append("| --- |" + " --- |" * len(methods))
        totals = {m: [0, 0] for m in methods}
        for task in tasks:
            row = [TASK_TITLES.get(task, task)]
            for m in methods:
                c = cells.get((object_set, task, m))
                if c is None or c.trials == 0:
                    row.append("n/a")
                    continue
                lo, hi = wilson_interval(c.successes, c.trials)
                row.append(f"{c.successes}/{c.trials} ({100 * c.successes / c.trials:.0f}%) "
                           f"[{100 * lo:.0f}-{100 * hi:.0f}]")
                totals[m][0] += c.successes
                totals[m][1] += c.trials
            out.append("| " + " | ".join(row) + " |")
        avg = ["**Average**"]
        for m in methods:
            s, n = totals[m]
            if n == 0:
                avg.append("n/a")
            else:
                lo, hi = wilson_interval(s, n)
                avg.append(f"**{100 * s / n:.1f}%** [{100 * lo:.0f}-{100 * hi:.0f}]")
        out.append("| " + " | ".join(avg) + " |")
        out.append("\nCounts are successes/trials; brackets: Wilson 95% interval in percent.\n")
    return "\n".join(out)


def plot_success_bars(cells: dict[tuple[str, str, str], Cell], path: Path) -> None:
    """Fig. 3 style: grouped success-rate bars per task and method, one panel per object set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sets = _ordered({k[0] for k in cells}, ["standard", "unseen"])
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for ax, object_set in zip(axes[0], sets):
        keys = [k for k in cells if k[0] == object_set]
        tasks = _ordered({k[1] for k in keys}, TASK_ORDER)
        methods = _ordered({k[2] for k in keys}, METHOD_ORDER)
        width = 0.8 / max(1, len(methods))
        x = np.arange(len(tasks))
        for j, m in enumerate(methods):
            rates, errs = [], [[], []]
            for t in tasks:
                c = cells.get((object_set, t, m))
                if c is None or c.trials == 0:
                    rates.append(0.0)
                    errs[0].append(0.0)
                    errs[1].append(0.0)
                    continue
                r = c.successes / c.trials
                lo, hi = wilson_interval(c.successes, c.trials)
                rates.append(100 * r)
                errs[0].append(100 * (r - lo))
                errs[1].append(100 * (hi - r))
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, rates, width, yerr=errs, capsize=2, label=m)
        ax.set_xticks(x, [TASK_TITLES.get(t, t) for t in tasks], rotation=15, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("success rate (%)")
        ax.set_title(f"{object_set} objects")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_value_profile(cells: dict[tuple[str, str, str], Cell], path: Path, method: str | None = None) -> bool:
    """Fig. 11 style: the critic's per-step value over one successful and one failed episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    candidates = [(k, c) for k, c in cells.items() if method is None or k[2] == method]
    success = failure = None
    for (_object_set, task, m), c in candidates:
        for ep in c.episodes:
            if not ep.get("values"):
                continue
            if ep.get("success") and success is None:
                success = (task, m, ep)
            if not ep.get("success") and failure is None:
                failure = (task, m, ep)
    if success is None and failure is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for ax, item, title in ((axes[0], success, "successful episode"), (axes[1], failure, "failed episode")):
        if item is None:
            ax.text(0.5, 0.5, "none recorded", ha="center", transform=ax.transAxes)
        else:
            task, m, ep = item
            ax.plot(ep["values"], color="tab:green" if ep.get("success") else "tab:red")
            ax.set_title(f"{title}: {TASK_TITLES.get(task, task)} ({m})", fontsize=9)
        ax.set_xlabel("control step")
    axes[0].set_ylabel("critic value v(z_t, 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def viewer_section(cells, out: Path, runs: Path | None) -> list[str]:
    """Links to the viewer files (``bora viz``, Rerun .rrd) and the TensorBoard logs."""
    from bora_trainer.viz.links import eval_values_rrd, online_rollout_rrds, tensorboard_dirs

    lines = ["## Viewer and training logs\n"]
    values = eval_values_rrd(cells, out / "viz" / "eval_values.rrd")
    if values is not None:
        lines.append(f"- per-step critic values of every evaluated episode: [{values.relative_to(out)}]"
                     f"({values.relative_to(out)}) (open: `rerun {values}`)")
    if runs is not None and runs.is_dir():
        for p, roll, eid in online_rollout_rrds(runs, out / "viz"):
            lines.append(f"- online episode {eid}: [{p.relative_to(out)}]({p.relative_to(out)}) (open: `rerun {p}`,"
                         f" or in the browser: `bora viz --dataset {roll} --episode {eid} --serve`)")
        tbs = tensorboard_dirs(runs)
        if tbs:
            lines.append(f"- TensorBoard: `tensorboard --logdir {runs}` ({len(tbs)} runs: "
                         + ", ".join(str(t.parent.relative_to(runs)) for t in tbs) + ")")
    return lines + [""] if len(lines) > 1 else []


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bora report", description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="eval JSON files or directories of them")
    ap.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: report)")
    ap.add_argument("--title", default="BORA on the simulated robot")
    ap.add_argument("--runs", type=Path, default=None,
                    help="runs directory: link its TensorBoard logs and write viewer files (.rrd) of the "
                         "online runs' last episodes and of the evaluated episodes' values")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.results if not p.exists()]
    if missing:
        print(f"bora report: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    cells = load_results(args.results)
    if not cells:
        print("bora report: no `bora eval` results found in the given paths", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    plot_success_bars(cells, args.out / "success_bars.png")
    has_values = plot_value_profile(cells, args.out / "value_profile.png")
    md = [f"# {args.title}\n", markdown_tables(cells), "![success rates](success_bars.png)\n"]
    if has_values:
        md.append("![critic value profile](value_profile.png)\n")
    md += viewer_section(cells, args.out, args.runs)
    (args.out / "report.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nwrote {args.out / 'report.md'}")
    return 0
