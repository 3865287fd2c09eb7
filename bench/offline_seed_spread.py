"""How much one offline training run is worth: CP Base and BORA-Offline retrained with other training seeds from
the same demo build's warm-up, on the same paired evaluation seeds (issue 14, "training seeds count too").

Training seed 0 is the demo build itself (its ``bench/demo_pairs.py`` JSON holds the per-seed outcomes); seeds
1.. are ``bora train offline --algo A --config C_sS.yaml --init-from BUILD/runs/T/warmup`` with ``seed: S`` in
the build's own offline config, evaluated as demo_pairs does (``bora eval ... --trials 50 --seed0 800000
--replan-steps 8 --num-envs 2``) into ``EVALS/eval_{cp-bc,bora}_s{S}_{standard,unseen}.json``. The paired
difference BORA-Offline - CP Base is reported per training seed (both sets, bootstrap stratified by set) and
over the training seeds, two ways: a crossed bootstrap (training seeds, each with both of its object sets, and
its evaluation seeds) and Student's t interval over the per-seed differences (``stats.t_interval``: with a handful
of training seeds the bootstrap over them is too narrow; read the t interval as the conservative one)::

    python bench/offline_seed_spread.py --pairs bench/results/demo_pairs_open_box.json --evals runs/obseed \\
        --seeds 1 2 --out bench/results/offline_seeds_open_box

Variants (``--variant NAME=LABEL``, repeatable) are runs trained like one of the rows (an ablation of
BORA-Offline, or CP Base on a filtered dataset) with one change, for EVERY training seed (0 included: the
build's warm-up, ``seed: S``), evaluated on the same seeds into ``VARIANT_EVALS/eval_NAME_sS_{standard,unseen}.json``;
each is reported against CP Base and against BORA-Offline over the training seeds (same crossed bootstrap)::

    python bench/offline_seed_spread.py ... --variant lp0="lambda_ppo 0" --variant-evals runs/ppodiag
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import machine  # noqa: E402

from bora_trainer.stats import hierarchical_bootstrap_diff, paired_bootstrap_diff, t_interval  # noqa: E402

ROWS = {"cp-bc": "CP Base", "bora": "BORA-Offline"}
SETS = ("standard", "unseen")


def outcomes_of(path: Path, seeds: list[int]) -> list[bool]:
    eps = {int(e["seed"]): bool(e["success"]) for e in json.loads(path.read_text())["episodes"]}
    missing = [s for s in seeds if s not in eps]
    if missing:
        raise ValueError(f"{path}: no episode for evaluation seed(s) {missing[:5]} (expected the pairs' seeds)")
    return [eps[s] for s in seeds]


def fmt_ci(boot, t) -> str:
    return f"{boot[0]:+.1f} [{boot[1]:+.1f}, {boot[2]:+.1f}]; t [{t[1]:+.1f}, {t[2]:+.1f}]"


def over_seeds(x: dict, a: str, b: str, train_seeds: list[int]) -> tuple[list[float], list[float]]:
    """``a - b`` in points over the training seeds: the crossed bootstrap (a training seed's two object sets are
    one cluster: resampled together) and the t interval over the per-seed differences (mean over both sets)."""
    joint = [(x[(a, s, SETS[0])] + x[(a, s, SETS[1])], x[(b, s, SETS[0])] + x[(b, s, SETS[1])]) for s in train_seeds]
    boot = [100 * v for v in hierarchical_bootstrap_diff({"both sets": joint})]
    per_seed = [100 * (sum(xa) - sum(xb)) / len(xa) for xa, xb in joint]
    return boot, [float(v) for v in t_interval(per_seed)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="the build's bench/demo_pairs.py JSON (training seed 0)")
    ap.add_argument("--evals", required=True, help="directory of eval_{algo}_s{seed}_{set}.json")
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="the other training seeds")
    ap.add_argument("--out", required=True, help="OUT.json and OUT.md")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=LABEL",
                    help="an ablation of BORA-Offline: eval_NAME_sS_SET.json for every training seed (0 included)")
    ap.add_argument("--variant-evals", help="directory of the variants' eval files (default: --evals)")
    ap.add_argument("--contrast", action="append", default=[], metavar="A:B",
                    help="also report A - B over the training seeds, A and B variants or rows (cp-bc, bora)")
    ap.add_argument("--title", default="", help="the report's heading (default: names the task)")
    a = ap.parse_args(argv)
    variants = {}
    for v in a.variant:
        name, sep, label = v.partition("=")
        if not sep or not name or not label:
            raise SystemExit(f"offline_seed_spread: --variant {v!r}: expected NAME=LABEL")
        variants[name] = label
    pairs = json.loads(Path(a.pairs).read_text())
    first, last = (int(v) for v in pairs["seeds"])  # demo_pairs stores the range [first, last]
    eval_seeds = list(range(first, last + 1))
    x: dict[tuple[str, int, str], list[bool]] = {}
    for r in ROWS:
        for o in SETS:
            x[(r, 0, o)] = [bool(v) for v in pairs["outcomes"][f"{r}/{o}"]]
            for s in a.seeds:
                x[(r, s, o)] = outcomes_of(Path(a.evals) / f"eval_{r}_s{s}_{o}.json", eval_seeds)
    train_seeds = [0, *a.seeds]
    vdir = Path(a.variant_evals or a.evals)
    for name in variants:
        for s in train_seeds:
            for o in SETS:
                x[(name, s, o)] = outcomes_of(vdir / f"eval_{name}_s{s}_{o}.json", eval_seeds)
    per_seed = {}
    for s in train_seeds:
        d = paired_bootstrap_diff({o: (x[("bora", s, o)], x[("cp-bc", s, o)]) for o in SETS})
        per_seed[s] = [100 * v for v in d]
    pooled, pooled_t = over_seeds(x, "bora", "cp-bc", train_seeds)
    n = len(eval_seeds)
    vs = {}
    for name in variants:
        vs[name] = {}
        for ref in ROWS:
            vs[name][f"minus_{ref}"], vs[name][f"minus_{ref}_t"] = over_seeds(x, name, ref, train_seeds)
    doc = {"machine": machine(), "task": pairs["task"], "build": pairs["demo_out"], "built_at": pairs["built_at"],
           "eval_seeds": [eval_seeds[0], eval_seeds[-1]], "training_seeds": train_seeds,
           "successes": {f"{r}/s{s}/{o}": int(sum(x[(r, s, o)])) for r in ROWS for s in train_seeds for o in SETS},
           "bora_minus_cp_per_seed": per_seed, "bora_minus_cp_over_seeds": pooled,
           "bora_minus_cp_over_seeds_t": pooled_t,
           "variants": {name: {"label": label, **vs[name],
                               "successes": {f"s{s}/{o}": int(sum(x[(name, s, o)])) for s in train_seeds for o in SETS}}
                        for name, label in variants.items()}}
    contrasts = {}
    for c in a.contrast:
        x_name, sep, y_name = c.partition(":")
        if not sep or x_name not in {*ROWS, *variants} or y_name not in {*ROWS, *variants}:
            raise SystemExit(f"offline_seed_spread: --contrast {c!r}: expected A:B, each a variant or one of "
                             f"{list(ROWS)}")
        boot, t = over_seeds(x, x_name, y_name, train_seeds)
        contrasts[c] = {"bootstrap": boot, "t": t}
    doc["contrasts"] = contrasts
    Path(a.out).with_suffix(".json").write_text(json.dumps(doc, indent=1))
    m = doc["machine"]
    title = a.title or f"Offline training seeds on {pairs['task']}: CP Base and BORA-Offline from one warm-up"
    lines = [f"# {title}", "",
             f"Measured at {m.get('commit')} on {m.get('cpu')} ({m.get('logical_cpus')} logical CPUs); the build "
             f"`{pairs['demo_out']}` (built at {pairs['built_at']}); training seed 0 is the build's own rows, the "
             f"others retrained from its warm-up with `seed: S` in its offline config; evaluation seeds "
             f"{eval_seeds[0]}..{eval_seeds[-1]} on each object set, every run on the same seeds "
             f"(`bench/offline_seed_spread.py`).", "",
             "| training seed | CP Base (standard / unseen) | BORA-Offline (standard / unseen) | "
             "BORA-Offline - CP Base, both sets (points, bootstrap 95%) |", "| --- | --- | --- | --- |"]
    for s in train_seeds:
        c = " / ".join(f"{sum(x[('cp-bc', s, o)])}" for o in SETS)
        b = " / ".join(f"{sum(x[('bora', s, o)])}" for o in SETS)
        e, lo, hi = per_seed[s]
        lines.append(f"| {s} | {c} of {n} | {b} of {n} | {e:+.1f} [{lo:+.1f}, {hi:+.1f}] |")
    lines += ["", f"Over the {len(train_seeds)} training seeds: BORA-Offline - CP Base **{fmt_ci(pooled, pooled_t)}** "
              "points (95%: crossed bootstrap over training seeds, each with both object sets, and evaluation "
              "seeds; t: Student's t over the per-seed differences, the conservative one with few seeds)."]
    if variants:
        lines += ["", "Variants of the rows (one change each, every training seed from the same warm-up; "
                  "differences over the training seeds: crossed bootstrap 95%; t interval):", "",
                  "| variant | " + " | ".join(f"seed {s} (std / unseen)" for s in train_seeds)
                  + " | - CP Base (points) | - BORA-Offline (points) |",
                  "| --- | " + " | ".join("---" for _ in train_seeds) + " | --- | --- |"]
        for name, label in [*ROWS.items(), *variants.items()]:
            cells = [" / ".join(str(sum(x[(name, s, o)])) for o in SETS) for s in train_seeds]
            diffs = [fmt_ci(vs[name][f"minus_{r}"], vs[name][f"minus_{r}_t"]) for r in ROWS] if name in vs else ["", ""]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {diffs[0]} | {diffs[1]} |")
    labels = {**ROWS, **variants}
    for c, ci in contrasts.items():
        x_name, _, y_name = c.partition(":")
        lines += ["", f"{labels[x_name]} - {labels[y_name]} over the training seeds: "
                  f"**{fmt_ci(ci['bootstrap'], ci['t'])}** points (crossed bootstrap 95%; t interval)."]
    Path(a.out).with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
