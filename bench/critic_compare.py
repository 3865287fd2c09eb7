"""The offline critic of several training runs, side by side, on their own evaluation rollouts (issue 14, Fig. 11).

For each ``LABEL=EVAL.json[,EVAL.json...]`` group (one training run, its ``bora eval`` files with per-step values,
e.g. the standard and unseen sets): the outcome AUROC of ``v(z_t, 0)`` at control steps 5, 10, ... up to the
shortest episode (``eval_critic.auroc_by_step``), reported as the window's MEAN (the estimate) and the
second half's MINIMUM (the issue's ">= 0.8 at every step" rule; with 3-8 steps and few failures the minimum of
an uninformative score is about 0.4, so it is not an estimate of the AUROC), and the calibration of V against
the Monte-Carlo returns in the simulator's reward units (``SIM_REWARD``): Pearson correlation and bias::

    python bench/critic_compare.py --out bench/results/critic_bootstrap_open_box \\
        "target s0=runs/ob_pairs/bora__standard.json,runs/ob_pairs/bora__unseen.json" "online s0=..."
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine  # noqa: E402

from bora_policy.common.rewards import SIM_REWARD  # noqa: E402
from bora_trainer.eval_critic import auroc_by_step, calibration, second_half_min  # noqa: E402


def summarise(files: list[Path], every: int, gamma: float) -> dict:
    out = {"files": [str(f) for f in files], "groups": []}
    for f in files:
        d = json.loads(f.read_text())
        eps = [e for e in d["episodes"] if e.get("values")]
        if not eps:
            raise ValueError(f"{f}: no per-step values (evaluate without --no-values)")
        rows = auroc_by_step(eps, every)
        vals = [r["auroc"] for r in rows if r["auroc"] is not None]
        cal = calibration(eps, gamma, SIM_REWARD)
        out["groups"].append({
            "file": str(f), "object_set": d.get("object_set"), "episodes": len(eps),
            "successes": sum(bool(e["success"]) for e in eps),
            "failures": sum(not e["success"] for e in eps),
            "window": [r["step"] for r in rows],
            "auroc": [r["auroc"] for r in rows],
            "auroc_mean": float(np.mean(vals)) if vals else None,
            "auroc_second_half_min": second_half_min(rows),
            "corr_v_g": cal.get("corr"), "bias_v_g": cal.get("bias"),
        })
    return out


def fmt(x, spec="{:.2f}") -> str:
    return "-" if x is None else spec.format(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("groups", nargs="+", metavar="LABEL=EVAL.json[,EVAL.json]")
    ap.add_argument("--out", required=True, help="OUT.json and OUT.md")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--title", default="Offline critic: outcome AUROC and calibration")
    ap.add_argument("--note", default="", help="a paragraph for the report (setup, commit of the runs)")
    args = ap.parse_args(argv)
    res = {"machine": machine(), "every": args.every, "gamma": args.gamma, "runs": {}}
    for g in args.groups:
        label, _, files = g.partition("=")
        if not files:
            ap.error(f"{g!r}: expected LABEL=EVAL.json[,EVAL.json]")
        paths = [Path(p) for p in files.split(",")]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            ap.error(f"{label}: not found: {', '.join(missing)}")
        res["runs"][label] = summarise(paths, args.every, args.gamma)
    lines = [f"# {args.title}", "", f"Machine: {res['machine'].get('cpu')}, {res['machine'].get('logical_cpus')} "
             f"logical CPUs. `python bench/critic_compare.py`: AUROC of v(z_t, 0) for the episode's outcome at steps "
             f"{args.every}, {2 * args.every}, ... up to the shortest episode (mean over that window, and the minimum "
             "over its second half, the issue's rule); corr / bias: V against the Monte-Carlo return (SIM_REWARD "
             f"units, gamma {args.gamma:g}) over every step of every episode.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["| run | set | successes / failures | window | AUROC mean | 2nd-half min | corr(V, G) | bias V - G |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, r in res["runs"].items():
        for g in r["groups"]:
            w = f"{g['window'][0]}-{g['window'][-1]}" if g["window"] else "-"
            lines.append(f"| {label} | {g['object_set']} | {g['successes']} / {g['failures']} | {w} | "
                         f"{fmt(g['auroc_mean'])} | {fmt(g['auroc_second_half_min'])} | {fmt(g['corr_v_g'])} | "
                         f"{fmt(g['bias_v_g'], '{:+.2f}')} |")
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
