"""How far apart the recorded chunk starts of converted episodes are (issue 14: through the ROS graph, chunks planned
ahead used to start 7-10 steps apart instead of ``replan_steps``, so a replay row whose next chunk does not start
``k`` steps on has no bootstrap target for its last step).

Reads every ``transitions/episode_*.npz`` under the given directories (a live trainer's ``STATE/converted``, a
``bora bag convert`` output, a demo's online stage) and counts, per episode, the spacings between successive
chunk starts (the rows' ``step``, or the steps of a ``chunk_start`` array; runtime_latency.start_spacing); the
last chunk of an episode has no successor and is not counted.

    .venv/bin/python bench/chunk_starts.py DIR [DIR ...] [--replan-steps 8] [--out OUT]

``--out OUT`` writes OUT.json and OUT.md with the machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtime_latency  # noqa: E402


def lost_targets(root: Path) -> tuple[int, int]:
    """(rows, rows whose last step has no bootstrap target): transition rows with ``next_valid`` 0 and no
    terminal step (no chunk was planned from the observation k steps on); (0, 0) without transition rows."""
    rows = lost = 0
    for f in sorted(root.rglob("transitions/episode_*.npz")):
        with np.load(f) as z:
            if "next_valid" in z.files and "done" in z.files:
                nv, dn = z["next_valid"].astype(bool), z["done"].reshape(len(z["next_valid"]), -1).any(1)
                rows, lost = rows + len(nv), lost + int((~nv & ~dn).sum())
    return rows, lost


def episode_starts(root: Path) -> list[tuple[int, int]]:
    """(episode number, start step) of every chunk start in the converted episodes under ``root``; each file is
    its own episode (numbered in path order), so episodes of different sessions never mix."""
    files = sorted(root.rglob("transitions/episode_*.npz"))
    out: list[tuple[int, int]] = []
    for i, f in enumerate(files):
        with np.load(f) as z:
            if "step" in z.files:  # chunk transitions (one row per recorded chunk, its start step)
                steps = z["step"]
            elif "chunk_start" in z.files:  # per-step episode arrays
                steps = np.flatnonzero(z["chunk_start"])
            else:
                raise ValueError(f"{f}: neither a step nor a chunk_start array (expected converted transitions)")
            out += [(i, int(s)) for s in sorted(steps)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", type=Path, nargs="+", help="directories holding transitions/episode_*.npz (recursively)")
    ap.add_argument("--replan-steps", type=int, default=8, help="the spacing of the grid (default 8)")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    res = {}
    for d in args.dirs:
        if not d.is_dir():
            ap.error(f"dirs: {d} is not a directory")
        starts = episode_starts(d)
        if not starts:
            ap.error(f"dirs: no transitions/episode_*.npz with a chunk start under {d}")
        r = runtime_latency.start_spacing(starts, args.replan_steps)
        r["episodes"] = len({e for e, _ in starts})
        r["rows"], r["rows_without_target"] = lost_targets(d)
        res[str(d)] = r
        hist = ", ".join(f"{k}: {v}" for k, v in r["hist"].items())
        print(f"{d}: {r['episodes']} episodes, {r['exact']} of {r['n']} spacings = {args.replan_steps} ({hist}); "
              f"{r['rows_without_target']} of {r['rows']} rows without a last-step target")
    if args.out is not None:
        from machine_info import machine

        m = machine(calibrate=False)
        args.out.with_suffix(".json").write_text(json.dumps({"machine": m, "results": res}, indent=1))
        md = [
            "# Recorded chunk starts: spacings against replan_steps",
            "",
            f"Commit {m.get('commit', '?')}. Machine: {m['cpu']}, {m['logical_cpus']} cores. "
            f"`python bench/chunk_starts.py {' '.join(str(d) for d in args.dirs)} --replan-steps {args.replan_steps}`.",
            "",
            "| recordings | episodes | spacings = replan_steps | histogram | rows without a last-step target |",
            "| --- | --- | --- | --- | --- |",
            *[f"| {d} | {r['episodes']} | {r['exact']} of {r['n']} | "
              f"{', '.join(f'{k}: {v}' for k, v in r['hist'].items())} | {r['rows_without_target']} of {r['rows']} |"
              for d, r in res.items()],
            "",
        ]
        args.out.with_suffix(".md").write_text("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
