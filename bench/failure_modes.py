"""Where evaluated episodes fail: each failure by the task's progress when it ended (issue 14).

Reads ``bora eval`` JSON files (episodes with ``final``, the task's state at the episode's end) and counts
each file's episodes as ``success``, ``not moved`` (final ``task_progress`` < 0.05), ``part way`` (< 0.7) or
``near the goal`` (>= 0.7, not a success). With ``--reference FILE`` (e.g. BORA-Offline's evaluation on the
same seeds) it also counts, per category, the reference's successes that the file lost. The thresholds are
ours. Prints a markdown table; ``--json`` writes the counts.

    .venv/bin/python bench/failure_modes.py offline=OFF.json full=FULL.json [--reference OFF.json] [--json F]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CATEGORIES = ("success", "not moved", "part way", "near the goal")


def category(episode: dict, moved: float = 0.05, near: float = 0.7) -> str:
    """One episode's category from its ``success`` and ``final.task_progress`` (module docstring)."""
    if episode["success"]:
        return "success"
    if "final" not in episode or "task_progress" not in episode["final"]:
        raise ValueError(f"episode of seed {episode.get('seed')}: no final.task_progress (evaluated before "
                         "bora eval recorded the final state: evaluate again)")
    p = float(episode["final"]["task_progress"])
    return "not moved" if p < moved else ("part way" if p < near else "near the goal")


def counts(episodes: list[dict], reference: list[dict] | None = None) -> dict:
    """``{"all": {category: n}, "lost": {category: n}}``; ``lost`` counts the episodes whose seed succeeded in
    ``reference`` and failed here (absent without a reference)."""
    out: dict = {"all": {c: 0 for c in CATEGORIES}}
    for e in episodes:
        out["all"][category(e)] += 1
    if reference is not None:
        ok = {e["seed"] for e in reference if e["success"]}
        out["lost"] = {c: 0 for c in CATEGORIES[1:]}
        for e in episodes:
            if e["seed"] in ok and not e["success"]:
                out["lost"][category(e)] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help="NAME=EVAL.json (bora eval output)")
    p.add_argument("--reference", type=Path, help="an evaluation on the same seeds whose lost successes to count")
    p.add_argument("--json", type=Path, help="also write the counts here")
    a = p.parse_args(argv)
    ref = json.loads(a.reference.read_text())["episodes"] if a.reference else None
    res = {}
    for spec in a.files:
        name, sep, path = spec.partition("=")
        if not sep:
            p.error(f"files: {spec!r}: expected NAME=EVAL.json")
        res[name] = counts(json.loads(Path(path).read_text())["episodes"], ref)
    head = list(CATEGORIES) + ([f"lost: {c}" for c in CATEGORIES[1:]] if ref is not None else [])
    print("| run | " + " | ".join(head) + " |\n|---|" + "---|" * len(head))
    for name, c in res.items():
        cells = [c["all"][k] for k in CATEGORIES] + ([c["lost"][k] for k in CATEGORIES[1:]] if ref is not None else [])
        print(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
