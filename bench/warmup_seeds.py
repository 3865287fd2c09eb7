"""The shared warm-up over training seeds, and on which episodes it is trained (issue 14, "train the shared
warm-up ... with >= 3 training seeds").

Every offline row fine-tunes ONE warm-up per task (``bora demo``'s stage 2: cp-bc on the clean demonstrations), so
every row inherits that run's draw. This script reads two kinds of warm-up, A and B, trained with training seeds
S = 0.. (``bora train offline --algo cp-bc --config warmup_sS.yaml --updates 1500 --episodes {clean,all}``) and
evaluated like the demo pairs (``bora eval --trials 50 --seed0 800000 --replan-steps 8 --num-envs 2``, both object
sets), and reports each run's successes and A - B per training seed and over them (the two-level bootstrap and the
t interval of ``offline_seed_spread``: a training seed's two object sets are one cluster)::

    python bench/warmup_seeds.py --a all="warm-up on all episodes"=runs/wall/eval_wall_s{seed}_{set}.json \\
        --b clean="warm-up on the clean demonstrations"=runs/wall/eval_wclean_s{seed}_{set}.json \\
        --seeds 0 1 2 --out bench/results/warmup_seeds_open_box
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine  # noqa: E402
from offline_seed_spread import SETS, fmt_ci, outcomes_of, over_seeds  # noqa: E402


def _spec(text: str) -> tuple[str, str, str]:
    parts = text.split("=", 2)
    if len(parts) != 3 or "{seed}" not in parts[2] or "{set}" not in parts[2]:
        raise argparse.ArgumentTypeError(
            f"expected NAME=LABEL=PATTERN with {{seed}} and {{set}} in PATTERN, got {text!r}"
        )
    return parts[0], parts[1], parts[2]


def table(specs, train_seeds: list[int], eval_seeds: list[int]) -> tuple[dict, list[str]]:
    """``(outcomes keyed (name, seed, set), markdown lines)`` of the runs named by ``specs``."""
    x = {(n, s, o): outcomes_of(Path(p.format(seed=s, set=o)), eval_seeds)
         for n, _, p in specs for s in train_seeds for o in SETS}
    lines = ["| training seed | " + " | ".join(f"{label} (standard / unseen of {len(eval_seeds)})"
                                              for _, label, _ in specs) + " |",
             "| --- | " + " | ".join("---" for _ in specs) + " |"]
    for s in train_seeds:
        lines.append(f"| {s} | " + " | ".join(" / ".join(str(sum(x[(n, s, o)])) for o in SETS) for n, _, _ in specs)
                     + " |")
    return x, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, type=_spec, help="NAME=LABEL=PATTERN of the first kind of warm-up")
    ap.add_argument("--b", required=True, type=_spec, help="NAME=LABEL=PATTERN of the second kind")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="training seeds")
    ap.add_argument("--seed0", type=int, default=800000)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--out", required=True, help="OUT.json and OUT.md")
    args = ap.parse_args(argv)
    eval_seeds = list(range(args.seed0, args.seed0 + args.trials))
    x, lines = table([args.a, args.b], args.seeds, eval_seeds)
    boot, t = over_seeds(x, args.a[0], args.b[0], args.seeds)
    m = machine(calibrate=False)
    lines = [f"Evaluation seeds {eval_seeds[0]}..{eval_seeds[-1]} per object set; summarised at {m['commit']} on "
             f"{m['cpu']} ({m['logical_cpus']} logical CPUs) by `bench/warmup_seeds.py`.", "", *lines, "",
             f"{args.a[1]} - {args.b[1]} over the {len(args.seeds)} training seeds, both sets: **{fmt_ci(boot, t)}** "
             "points (two-level bootstrap 95%; t interval over the per-seed differences)."]
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({
        "machine": m, "eval_seeds": [eval_seeds[0], eval_seeds[-1]], "training_seeds": args.seeds,
        "successes": {f"{n}/s{s}/{o}": sum(v) for (n, s, o), v in x.items()},
        "a_minus_b": {"bootstrap": boot, "t": t, "a": args.a[1], "b": args.b[1]}}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
