"""Compare two ``bora demo`` output directories: same results, same speed? (issue 15)

    python bench/compare_demo.py BEFORE_DIR AFTER_DIR [--labels before after] [--json OUT.json]

What it reads (every file ``bora demo`` writes; nothing is re-run):

* ``summary.json``: the wall time of each stage, each row's success counts per object set, and the
  machine where the demo recorded it;
* ``data/<task>/episodes/*``: the collected episodes, file by file (SHA-256 of the bytes);
* ``runs/<task>/<row>/**/*.safetensors``: every tensor of every checkpoint and export present in both,
  compared by value (max |a - b|; the order of tensors inside a file does not matter);
* ``eval/*.json``: per evaluation seed, the episode's outcome and length (paired: same seed, same row).

The Markdown table goes to stdout. Rows trained through the ROS 2 graph (the demo's online stage) are
paced by wall clock and DDS delivery, so two runs of the SAME code differ there; the report says which
rows are bit-comparable (everything upstream of the graph) and which are not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_summary(root: Path) -> dict:
    p = root / "summary.json"
    if not p.is_file():
        raise FileNotFoundError(f"{root}: no summary.json (not a finished `bora demo` output directory)")
    return json.loads(p.read_text())


def compare_files(a: Path, b: Path, pattern: str) -> dict:
    """Files matching ``pattern`` under ``a`` and ``b`` (relative paths): identical / different / one-sided."""
    fa = {p.relative_to(a).as_posix(): p for p in sorted(a.glob(pattern)) if p.is_file()}
    fb = {p.relative_to(b).as_posix(): p for p in sorted(b.glob(pattern)) if p.is_file()}
    both = sorted(fa.keys() & fb.keys())
    diff = [k for k in both if _sha(fa[k]) != _sha(fb[k])]
    return {"identical": len(both) - len(diff), "different": diff, "only_a": sorted(fa.keys() - fb.keys()),
            "only_b": sorted(fb.keys() - fa.keys())}


def compare_tensors(fa: Path, fb: Path) -> dict:
    """Two safetensors files: tensor names in both, and the largest absolute difference over them."""
    from safetensors.numpy import load_file

    ta, tb = load_file(str(fa)), load_file(str(fb))
    common = sorted(ta.keys() & tb.keys())
    worst = 0.0
    for k in common:
        if ta[k].shape != tb[k].shape:
            return {"tensors": len(common), "max_abs_diff": float("inf"), "mismatch": f"{k}: shape "
                    f"{ta[k].shape} vs {tb[k].shape}", "only_a": [], "only_b": []}
        if ta[k].size:
            d = np.abs(ta[k].astype(np.float64) - tb[k].astype(np.float64))
            worst = max(worst, float(np.nan_to_num(d, nan=np.inf).max()))
    return {"tensors": len(common), "max_abs_diff": worst, "only_a": sorted(ta.keys() - tb.keys()),
            "only_b": sorted(tb.keys() - ta.keys())}


def compare_runs(a: Path, b: Path) -> dict[str, dict]:
    """Per row directory ``runs/<task>/<row>``: files compared, tensors, the largest |diff| of any tensor."""
    out: dict[str, dict] = {}
    for fa in sorted((a / "runs").glob("*/*/**/*.safetensors")):
        rel = fa.relative_to(a)
        fb = b / rel
        row = "/".join(rel.parts[1:3])
        r = out.setdefault(row, {"files": 0, "tensors": 0, "max_abs_diff": 0.0, "missing_in_b": 0})
        if not fb.is_file():
            r["missing_in_b"] += 1
            continue
        c = compare_tensors(fa, fb)
        r["files"] += 1
        r["tensors"] += c["tensors"]
        r["max_abs_diff"] = max(r["max_abs_diff"], c["max_abs_diff"])
    return out


def compare_eval(a: Path, b: Path) -> dict[str, dict]:
    """Per eval file present in both: seeds, successes each side, and seeds whose (success, steps) differ."""
    out: dict[str, dict] = {}
    for fa in sorted((a / "eval").glob("*.json")):
        fb = b / "eval" / fa.name
        if not fb.is_file():
            continue
        ra, rb = json.loads(fa.read_text()), json.loads(fb.read_text())
        ea = {e["seed"]: (bool(e["success"]), int(e["steps"])) for e in ra.get("episodes", [])}
        eb = {e["seed"]: (bool(e["success"]), int(e["steps"])) for e in rb.get("episodes", [])}
        seeds = sorted(ea.keys() & eb.keys())
        out[fa.stem] = {
            "seeds": len(seeds),
            "success_a": sum(ea[s][0] for s in seeds),
            "success_b": sum(eb[s][0] for s in seeds),
            "outcome_differs": sum(ea[s][0] != eb[s][0] for s in seeds),
            "episode_differs": sum(ea[s] != eb[s] for s in seeds),
        }
    return out


def stage_seconds(summary: dict) -> dict[str, float]:
    return {k: float(v.get("seconds", 0.0)) for k, v in summary.get("stages", {}).items()}


def common_jobs(sa: dict, sb: dict) -> dict[str, list]:
    """Per stage: ``[jobs in both, their summed job seconds in a, in b, jobs only in a, jobs only in b]``
    (a stage's wall time also counts jobs that only one side runs, e.g. a row added later)."""
    out = {}
    for stage in dict.fromkeys([*sa.get("stages", {}), *sb.get("stages", {})]):
        ja = sa.get("stages", {}).get(stage, {}).get("job_seconds", {}) or {}
        jb = sb.get("stages", {}).get(stage, {}).get("job_seconds", {}) or {}
        both = sorted(ja.keys() & jb.keys())
        out[stage] = [len(both), round(sum(float(ja[j]) for j in both), 1), round(sum(float(jb[j]) for j in both), 1),
                      sorted(ja.keys() - jb.keys()), sorted(jb.keys() - ja.keys())]
    return out


def compare(a: Path, b: Path) -> dict:
    sa, sb = load_summary(a), load_summary(b)
    return {
        "total_seconds": [float(sa.get("total_seconds", 0.0)), float(sb.get("total_seconds", 0.0))],
        "machine": [sa.get("machine"), sb.get("machine")],
        "common_jobs": common_jobs(sa, sb),
        "stages": {k: [stage_seconds(sa).get(k), stage_seconds(sb).get(k)]
                   for k in dict.fromkeys([*stage_seconds(sa), *stage_seconds(sb)])},
        "success": {"a": sa.get("success", {}), "b": sb.get("success", {})},
        "data": compare_files(a, b, "data/*/episodes/*"),
        "runs": compare_runs(a, b),
        "eval": compare_eval(a, b),
    }


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def to_markdown(res: dict, labels: tuple[str, str]) -> str:
    la, lb = labels
    lines = [f"- machine ({lab}): {m or 'not recorded in summary.json'}" for lab, m in zip(labels, res["machine"])]
    lines += ["", f"| stage | {la} (s) | {lb} (s) |", "| --- | --- | --- |"]
    for k, (x, y) in res["stages"].items():
        lines.append(f"| {k} | {_fmt_s(x)} | {_fmt_s(y)} |")
    ta, tb = res["total_seconds"]
    lines += [f"| **total** | **{ta:.0f}** | **{tb:.0f}** |", ""]
    lines += [f"| stage | jobs in both | their job seconds, {la} | {lb} | jobs only in {la} | only in {lb} |",
              "| --- | --- | --- | --- | --- | --- |"]
    for k, (n, xa, xb, oa, ob) in res["common_jobs"].items():
        lines.append(f"| {k} | {n} | {xa:.0f} | {xb:.0f} | {', '.join(oa) or '-'} | {', '.join(ob) or '-'} |")
    lines.append("")
    lines += [f"| row | object set | {la} | {lb} |", "| --- | --- | --- | --- |"]
    sa, sb = res["success"]["a"], res["success"]["b"]
    for row in dict.fromkeys([*sa, *sb]):
        for oset in dict.fromkeys([*sa.get(row, {}), *sb.get(row, {})]):
            ca, cb = sa.get(row, {}).get(oset), sb.get(row, {}).get(oset)
            fa = f"{ca['successes']}/{ca['trials']}" if ca else "-"
            fb = f"{cb['successes']}/{cb['trials']}" if cb else "-"
            lines.append(f"| {row} | {oset} | {fa} | {fb} |")
    d = res["data"]
    lines += ["", f"Collected episode files: {d['identical']} identical, {len(d['different'])} different, "
              f"{len(d['only_a'])} only in {la}, {len(d['only_b'])} only in {lb}.", ""]
    lines += ["| run | safetensors files | tensors | max abs diff |", "| --- | --- | --- | --- |"]
    for row, r in res["runs"].items():
        miss = f" ({r['missing_in_b']} missing in {lb})" if r["missing_in_b"] else ""
        lines.append(f"| {row} | {r['files']}{miss} | {r['tensors']} | {r['max_abs_diff']:.3g} |")
    lines += ["", "| eval file | seeds | successes " + la + " | successes " + lb + " | seeds with another outcome "
              "| seeds with another episode length or outcome |", "| --- | --- | --- | --- | --- | --- |"]
    for name, e in res["eval"].items():
        lines.append(f"| {name} | {e['seeds']} | {e['success_a']} | {e['success_b']} | {e['outcome_differs']} "
                     f"| {e['episode_differs']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path, help="first `bora demo` output directory (e.g. before a change)")
    ap.add_argument("b", type=Path, help="second `bora demo` output directory (e.g. after it)")
    ap.add_argument("--labels", nargs=2, default=["before", "after"], metavar=("A", "B"))
    ap.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON here")
    args = ap.parse_args(argv)
    try:
        res = compare(args.a, args.b)
    except (FileNotFoundError, ValueError) as e:
        print(f"compare_demo: {e}", file=sys.stderr)
        return 2
    print(to_markdown(res, tuple(args.labels)), end="")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
