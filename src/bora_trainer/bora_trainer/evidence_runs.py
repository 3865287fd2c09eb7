"""Repeated runs in the evidence report (``bora report evidence``, issue 14): training seeds and online runs.

* **Training seeds** (protocol ``seeds``): ``OUT/eval_seeds/<task>__<row>@s<seed>__<set>.json``; the main
  table's run is the first seed. Each seed's rate per row, the spread, and the crossed bootstrap (training
  seeds and trials; paired) of BORA-Full - BORA-Offline and BORA-Offline - CP Base.
* **Online runs** (protocol ``online_runs``): ``OUT/eval_online/<task>__<row>@o<run>__<set>.json``; run 1 is
  the main table's BORA-Full, every run paired with the one BORA-Offline it was trained from. The same crossed
  bootstrap (online runs and trials) and Student's t over the runs, of BORA-Full - BORA-Offline; what each run used.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from bora_trainer.report import Cell
from bora_trainer.stats import hierarchical_bootstrap_diff, t_interval

SEED_CLAIMS = (("BORA-Full", "BORA-Offline"), ("BORA-Offline", "CP Base"))
BOOT_NOTE = ("runs and evaluation seeds drawn independently, every drawn run on the drawn seeds (the pigeonhole "
             "bootstrap of a crossed design, `stats.hierarchical_bootstrap_diff`); t: Student's t over the runs' "
             "paired differences (n - 1 degrees of freedom; it sees the run-to-run spread, not the evaluation seeds' "
             "noise that all runs share).")


PAIRED_SETTINGS = ("object_set", "max_steps", "replan_steps", "blend_steps", "control_hz", "chunk_hz", "image_size",
                   "deterministic", "hand")
"""What two paired cells' ``bora eval`` results must share besides their seeds (the result's ``object_set`` and
``settings``): each changes the episodes. Not ``num_envs`` / ``env_processes`` (the same episodes, test) nor the
residual's alpha settings (the row's own policy). A field one of the results lacks (an older result) is not compared."""


_MISSING = object()


def _setting(src: dict, k: str):
    return src["object_set"] if k == "object_set" else src["settings"].get(k, _MISSING)


def _span(seeds) -> str:
    s = sorted(seeds)
    return f"{len(s)} seeds {s[0]}..{s[-1]}" if s else "no seeds"


def check_cell(c: Cell) -> None:
    """A cell's result files hold no evaluation seed twice (a duplicate result) and share ``PAIRED_SETTINGS``;
    else ValueError, one line naming both files."""
    seen: dict = {}
    for src in c.sources:
        for s in src["seeds"]:
            if s in seen:
                raise ValueError(f"duplicate results: evaluation seed {s} in both {seen[s]} and {src['file']}")
            seen[s] = src["file"]
    for src in c.sources[1:]:
        _same_settings(c.sources[0], src, "results of one cell")


def _same_settings(a: dict, b: dict, what: str) -> None:
    for k in PAIRED_SETTINGS:
        va, vb = _setting(a, k), _setting(b, k)
        if va is not _MISSING and vb is not _MISSING and va != vb:
            raise ValueError(f"{what} differ in {k}: {a['file']} ({va!r}) vs {b['file']} ({vb!r})")


def check_pair(a: Cell, b: Cell, same_seeds: bool = True) -> None:
    """Refuse two cells compared episode by episode that were not evaluated alike: a duplicate result in either
    (:func:`check_cell`), other ``PAIRED_SETTINGS`` and, with ``same_seeds``, other trials or evaluation seeds.
    ValueError, one line naming both files and the field. ``same_seeds`` False: the repeated runs' sections, read on
    the seeds every run has by design (:func:`seed_section`). Until 2026-12-07 nothing was compared: a pair
    evaluated on other seeds was read on the seeds they happened to share (found in review)."""
    check_cell(a)
    check_cell(b)
    if not (a.sources and b.sources):
        return
    fa, fb = a.sources[0]["file"], b.sources[0]["file"]
    if same_seeds and a.trials != b.trials:
        raise ValueError(f"paired cells differ in trials: {fa} ({a.trials}) vs {fb} ({b.trials})")
    sa = {s for src in a.sources for s in src["seeds"]}
    sb = {s for src in b.sources for s in src["seeds"]}
    if same_seeds and sa != sb:
        raise ValueError(f"paired cells differ in seeds: {fa} ({_span(sa)}) vs {fb} ({_span(sb)})")
    _same_settings(a.sources[0], b.sources[0], "paired cells")


def paired_outcomes(a: Cell, b: Cell) -> tuple[list[int], list[int], list[int]]:
    """``(seeds, x, y)``: the two cells' outcomes on the evaluation seeds both have (in seed order)."""
    sa = {int(e["seed"]): int(bool(e["success"])) for e in a.episodes}
    sb = {int(e["seed"]): int(bool(e["success"])) for e in b.episodes}
    seeds = sorted(set(sa) & set(sb))
    return seeds, [sa[s] for s in seeds], [sb[s] for s in seeds]


def _pct(x: float) -> str:
    return f"{round(100 * x, 1) + 0.0:+.1f}"  # + 0.0: a rounded -0.0 prints as +0.0


def _seed_file_key(path: Path, tag: str = "s") -> tuple[str, str, int, str] | None:
    """``<task>__<row>@<tag><n>__<set>.json`` -> (task, row, n, set) (``s``: training seed, ``o``: online run)."""
    parts = path.stem.split("__")
    if len(parts) != 3 or f"@{tag}" not in parts[1]:
        return None
    row, seed = parts[1].rsplit(f"@{tag}", 1)
    return (parts[0], row, int(seed), parts[2]) if seed.isdigit() else None


def _tagged_results(d: Path, tag: str) -> dict:
    """task -> object_set -> method -> {n: Cell} of the ``<task>__<row>@<tag><n>__<set>.json`` results in ``d``."""
    res: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        key = _seed_file_key(f, tag)
        if key is None:
            continue
        r = json.loads(f.read_text())
        c = Cell()
        c.add(r, f)
        by_n = res[r["task"]][r["object_set"]][r["method"]]
        if key[2] in by_n:  # two files for one run's cell: one would silently replace the other
            raise ValueError(f"duplicate results: {by_n[key[2]].sources[0]['file']} and {f} are both {r['method']} "
                             f"{tag}{key[2]} on {r['task']}/{r['object_set']}")
        by_n[key[2]] = c
    return res


def seed_results(out: Path, first_seed: int, cells: dict) -> dict:
    """task -> object_set -> method -> {seed: Cell}: the main table's run is training seed ``first_seed``."""
    res = _tagged_results(out / "eval_seeds", "s")
    for task in list(res):
        for oset in list(res[task]):
            for method in list(res[task][oset]):
                main = cells.get((oset, task, method))
                if main is not None:
                    res[task][oset][method][first_seed] = main
    return res


def online_run_results(out: Path, cells: dict) -> dict:
    """task -> object_set -> {"BORA-Full": {run: Cell}, "BORA-Offline": {run: Cell}} for the tasks with extra
    online runs (``OUT/eval_online``, ``<task>__<row>@o<run>__<set>.json``; protocol ``online_runs``). Run 1 is
    the main table's BORA-Full; every run is paired with the one BORA-Offline cell it was trained from."""
    res = _tagged_results(out / "eval_online", "o")
    for task, by_set in res.items():
        for oset, by_method in by_set.items():
            for method in list(by_method):
                if (oset, task, method) in cells:
                    by_method[method][1] = cells[oset, task, method]
            offline = cells.get((oset, task, "BORA-Offline"))
            if offline is not None:
                runs = sorted({n for m in by_method.values() for n in m})
                by_method["BORA-Offline"] = {n: offline for n in runs}
    return res


def online_run_budget(out: Path) -> list[dict]:
    """Per online run of a row trained more than once (``runs/<task>/<row>-online`` = run 1,
    ``...-online-o<r>``; the other online rows, run once, are left out): the rounds every run of it has (the main
    run may train on for the learning curve), with episodes, successes, steps under the operator, takeovers and
    how many taken-over episodes ended in success (the trainer's ``summary.json``)."""
    found: dict = defaultdict(dict)
    for f in sorted(out.glob("runs/*/*-online*/summary.json")):
        name = f.parent.name
        head, _, tail = name.rpartition("-online-o")
        if head and tail.isdigit():
            row, run = head, int(tail)
        elif name.endswith("-online"):
            row, run = name[: -len("-online")], 1
        else:
            continue
        try:
            per_round = json.loads(f.read_text()).get("per_round")
        except (OSError, ValueError):
            continue
        if isinstance(per_round, list):
            found[(f.parent.parent.name, row)][run] = per_round
    rows = []
    for (task, row), runs in sorted(found.items()):
        if len(runs) < 2:
            continue
        n_rounds = min(len(r) for r in runs.values())
        for run, per_round in sorted(runs.items()):
            rr = per_round[:n_rounds]
            rows.append({"task": task, "row": row, "run": run, "rounds": n_rounds,
                         **{k: sum(int(x.get(k) or 0) for x in rr) for k in
                            ("episodes", "successes", "steps", "intervened_steps", "takeovers", "taken_over",
                             "rescued")}})
    return rows


def seed_section(seeds: dict, n_boot: int = 4000) -> dict:
    """Per task and object set: each seed's rate per method, the spread; differences by the crossed bootstrap and t."""
    out: dict = {"cells": [], "claims": []}
    for task, by_set in seeds.items():
        for oset, by_method in by_set.items():
            for method, by_seed in by_method.items():
                rates = {s: c.successes / c.trials for s, c in sorted(by_seed.items()) if c.trials}
                if rates:
                    out["cells"].append({"task": task, "object_set": oset, "method": method,
                                         "rates": rates, "spread": max(rates.values()) - min(rates.values())})
    for a, b in SEED_CLAIMS:
        osets = sorted({o for by_set in seeds.values() for o in by_set})
        for oset in osets:
            strata, runs_of, n_eval = {}, {}, {}
            for task, by_set in seeds.items():
                ma, mb = by_set.get(oset, {}).get(a, {}), by_set.get(oset, {}).get(b, {})
                for s in sorted(set(ma) & set(mb)):  # each run's pair evaluated alike (seeds: read on shared ones)
                    check_pair(ma[s], mb[s], same_seeds=False)
                paired = {s: paired_outcomes(ma[s], mb[s]) for s in sorted(set(ma) & set(mb))}
                paired = {s: p for s, p in paired.items() if p[0]}  # a run without a shared seed is left out alone
                runs = sorted(paired)
                # crossed design: every run on the evaluation seeds all of them have (each run's pairs already
                # need both rows); how many is reported
                shared = sorted(set.intersection(*(set(p[0]) for p in paired.values()))) if paired else []
                if len(runs) >= 2 and shared:
                    strata[task] = [_on_seeds(paired[s], shared) for s in runs]
                    runs_of[task], n_eval[task] = runs, len(shared)
            if not strata:
                continue
            per_task = {t: hierarchical_bootstrap_diff({t: p}, n_boot=n_boot) for t, p in strata.items()}
            pooled = hierarchical_bootstrap_diff(strata, n_boot=n_boot)
            per_run = {t: [sum(x) / len(x) - sum(y) / len(y) for x, y in p] for t, p in strata.items()}
            common_runs = sorted(set.intersection(*(set(r) for r in runs_of.values())))
            pooled_runs = [sum(per_run[t][runs_of[t].index(r)] for t in strata) / len(strata) for r in common_runs]
            out["claims"].append({"claim": f"{a} - {b}", "object_set": oset,
                                  "per_task": {t: {"diff": v[0], "ci95": [v[1], v[2]], "seeds": len(strata[t]),
                                                   "eval_seeds": n_eval[t], "per_run": per_run[t],
                                                   "t95": _t95(per_run[t])} for t, v in per_task.items()},
                                  "pooled": {"diff": pooled[0], "ci95": [pooled[1], pooled[2]],
                                             "per_run": pooled_runs, "t95": _t95(pooled_runs)}})
    return out


def _on_seeds(paired: tuple[list[int], list[int], list[int]], shared: list[int]) -> tuple[list[int], list[int]]:
    """One run's ``(x, y)`` restricted to the evaluation seeds ``shared``, in that order."""
    seeds, x, y = paired
    at = {s: i for i, s in enumerate(seeds)}
    return [x[at[s]] for s in shared], [y[at[s]] for s in shared]


def _t95(values: list[float]) -> list[float] | None:
    """Student's t interval over the per-run differences (``stats.t_interval``; None below 2 runs)."""
    return list(t_interval(values)[1:]) if len(values) >= 2 else None


def _claim_line(c: dict, unit: str) -> str:
    """One claim of the seed / online-run sections: the bootstrap interval and, beside it, Student's t over the
    runs' differences (with 2-3 runs the percentile bootstrap over runs is too narrow: read both)."""
    def t95(v):
        return "" if v.get("t95") is None else f", t [{_pct(v['t95'][0])}, {_pct(v['t95'][1])}]"

    per = "; ".join(f"{t} {_pct(v['diff'])} [{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]{t95(v)} ({v['seeds']} "
                    f"{unit}, {v.get('eval_seeds', '?')} evaluation seeds)" for t, v in c["per_task"].items())
    p = c["pooled"]
    return (f"- {c['claim']} ({c['object_set']}): pooled **{_pct(p['diff'])} [{_pct(p['ci95'][0])}, "
            f"{_pct(p['ci95'][1])}]**{t95(p)}; {per}")


def online_runs_md(online: dict, budget: list[dict]) -> list[str]:
    claims = [c for c in online.get("claims", []) if c["claim"] == "BORA-Full - BORA-Offline"]
    if not claims:
        return []
    lines = ["## BORA-Full over several online runs per task (the online stage's randomness)", "",
             "The online stage trained again from the same BORA-Offline run of each task (protocol `online_runs`; "
             "run 1 = the main table's, every later run with its own online seed), every run evaluated on the same "
             "evaluation seeds, paired with BORA-Offline.", "",
             "| task | set | BORA-Full per online run | BORA-Offline |", "| --- | --- | --- | --- |"]
    for c in online.get("cells", []):
        if c["method"] == "BORA-Full":
            off = next((o for o in online["cells"] if o["method"] == "BORA-Offline" and o["task"] == c["task"]
                        and o["object_set"] == c["object_set"]), None)
            rates = ", ".join(f"o{k}: {100 * v:.0f}%" for k, v in c["rates"].items())
            off_rate = "-" if off is None else f"{100 * next(iter(off['rates'].values())):.0f}%"
            lines.append(f"| {c['task']} | {c['object_set']} | {rates} | {off_rate} |")
    lines.append("")
    lines += [f"Bootstrap: {BOOT_NOTE}", ""]
    for c in claims:
        lines.append(_claim_line(c, "runs"))
    if budget:
        lines += ["", "What each online run used (the rounds every run of the task has):", "",
                  "| task | run | rounds | episodes | successes | under the operator | takeovers | rescued |",
                  "| --- |" + " --- |" * 7]
        for b in budget:
            share = b["intervened_steps"] / b["steps"] if b["steps"] else 0.0
            lines.append(f"| {b['task']} | o{b['run']} | {b['rounds']} | {b['episodes']} | {b['successes']} | "
                         f"{b['intervened_steps']} of {b['steps']} ({100 * share:.1f}%) | {b['takeovers']} | "
                         f"{b['rescued']} of {b['taken_over']} |")
    return lines + [""]
