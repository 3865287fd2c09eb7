"""``bora eval critic``: does the critic tell success from failure (paper Fig. 11; issue 14)?

Input: the JSON files of ``bora eval`` (rollouts that no training used; each episode carries ``success``,
``steps`` and ``values`` = the critic's ``v(z_t, 0)`` at every control step). Per group (method x task;
``--by-object-set`` also splits the object sets):

* **AUROC at fixed control steps** ``s = every, 2 every, ...`` up to the shortest episode of the group
  (``s <= min steps - 1``, so every episode has a value at ``s``): the episode outcome is predicted from
  ``v`` at step ``s``. Not at each episode's midpoint: successful episodes end early, so a value that merely
  rises with time would rank them backwards there. AUROC = Mann-Whitney statistic with mid-ranks
  (``stats.auroc``), with the Hanley-McNeil standard error. The issue's target: >= 0.8 at every step in the
  second half of that window (``target_met``).
* **Calibration against Monte-Carlo returns**: ``G_t = sum_j gamma^(j-t) r_j`` with the rewards of
  ``bora_policy.common.rewards.compute_rewards`` (success: terminal reward on the last step; a failed
  evaluation episode ends at the time limit, a truncation, so its ``G_t`` has no bootstrap: the return of
  an episode that would never succeed). Reported: bias ``mean(V - G)``, RMSE, Pearson correlation and a
  calibration curve (deciles of V: mean V against mean G per bin). The rewards are the simulator's
  (``SIM_REWARD``, time penalty 0.01: what ``bora collect`` stores and the critics learn; ``--time-penalty``
  for another definition). Before, they used ``RewardConfig()`` (0.002), which understated a failure's
  return (an 80-step failure: -0.11 instead of -0.55) and made bias and RMSE wrong.
* **TD error** of the value sequence: ``delta_t = r_t + gamma (1 - d_t) v_{t+1} - v_t`` over the steps that
  have a successor value or end in a terminal (the truncated last step of a failure is left out).

Output: ``critic_eval.json``, ``critic_eval.md`` and ``value_profile_<method>_<task>.png`` (mean +- std of V
per step for successes and failures, the AUROC per step, the calibration curve) in ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from bora_policy.common.rewards import SIM_REWARD, RewardConfig, compute_dones, compute_rewards, returns_to_go
from bora_trainer.stats import auroc, auroc_se


def window_steps(lengths: list[int], every: int = 5) -> list[int]:
    """Control steps ``every, 2 every, ...`` that every episode reaches (``s <= min(lengths) - 1``)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not lengths:
        return []
    last = min(lengths) - 1
    return list(range(every, last + 1, every))


def auroc_by_step(episodes: list[dict], every: int = 5) -> list[dict]:
    """Per window step: ``{"step", "auroc", "se", "n_success", "n_failure"}`` (AUROC None with one class)."""
    eps = [e for e in episodes if e.get("values")]
    lengths = [len(e["values"]) for e in eps]
    labels = [bool(e["success"]) for e in eps]
    n_s = sum(labels)
    out = []
    for s in window_steps(lengths, every):
        row = {"step": s, "n_success": n_s, "n_failure": len(eps) - n_s, "auroc": None, "se": None}
        if 0 < n_s < len(eps):
            a = auroc([e["values"][s] for e in eps], labels)
            row["auroc"], row["se"] = a, auroc_se(a, n_s, len(eps) - n_s)
        out.append(row)
    return out


def second_half_min(rows: list[dict]) -> float | None:
    """Smallest AUROC over the second half of the window (steps at or after its midpoint)."""
    vals = [r["auroc"] for r in rows[len(rows) // 2:] if r["auroc"] is not None]
    return min(vals) if vals else None


def mc_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma G_{t+1}``, ``G_T = 0`` (no bootstrap after the last step)."""
    return returns_to_go(rewards, np.zeros(len(rewards), dtype=bool), gamma)


def episode_targets(ep: dict, gamma: float, reward_cfg: RewardConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, MC returns, TD errors)`` of one evaluated episode (module docstring)."""
    v = np.asarray(ep["values"], dtype=np.float64)
    n = len(v)
    outcome = "success" if ep["success"] else "timeout"
    r = compute_rewards(n, outcome, cfg=reward_cfg).astype(np.float64)
    d = compute_dones(n, outcome)
    g = mc_returns(r, gamma)
    nxt = np.append(v[1:], 0.0)
    td = r + gamma * (1.0 - d) * nxt - v
    if not d[-1]:  # truncated: the last step has no successor value
        td = td[:-1]
    return v, g, td


def calibration(episodes: list[dict], gamma: float, reward_cfg: RewardConfig, bins: int = 10) -> dict:
    """Bias, RMSE, correlation of V against G over every (episode, step); decile curve; TD error."""
    vs, gs, tds = [], [], []
    for ep in episodes:
        if not ep.get("values"):
            continue
        v, g, td = episode_targets(ep, gamma, reward_cfg)
        vs.append(v)
        gs.append(g)
        tds.append(td)
    if not vs:
        return {}
    v, g, td = np.concatenate(vs), np.concatenate(gs), np.concatenate(tds)
    corr = float(np.corrcoef(v, g)[0, 1]) if v.std() > 0 and g.std() > 0 else None
    edges = np.quantile(v, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, bins - 1)
    curve = [
        {"v_mean": float(v[idx == b].mean()), "g_mean": float(g[idx == b].mean()), "n": int((idx == b).sum())}
        for b in range(bins)
        if (idx == b).any()
    ]
    return {
        "n_steps": int(len(v)),
        "bias": float((v - g).mean()),
        "rmse": float(np.sqrt(((v - g) ** 2).mean())),
        "corr": corr,
        "td_abs": float(np.abs(td).mean()) if len(td) else None,
        "td_mean": float(td.mean()) if len(td) else None,
        "curve": curve,
    }


def load_groups(paths: list[Path], by_object_set: bool = False) -> dict[tuple[str, ...], list[dict]]:
    """(method, task[, object_set]) -> episodes with values, from ``bora eval`` JSON files or directories."""
    files: list[tuple[Path, bool]] = []
    for p in paths:
        files.extend([(f, True) for f in sorted(p.rglob("*.json"))] if p.is_dir() else [(p, False)])
    groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    for f, found_in_dir in files:
        try:
            res = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{f}: not readable JSON ({e})") from e
        if not isinstance(res, dict) or not {"method", "task", "episodes"} <= res.keys():
            if found_in_dir:  # other JSON files may live beside eval results
                continue
            raise ValueError(f"{f}: not a `bora eval` result (needs method, task, episodes)")
        key = (res["method"], res["task"]) + ((res.get("object_set", "?"),) if by_object_set else ())
        for ep in res["episodes"]:
            if ep.get("values"):
                if len(ep["values"]) != ep.get("steps", len(ep["values"])):
                    raise ValueError(f"{f}: episode seed {ep.get('seed')}: {len(ep['values'])} values for "
                                     f"{ep['steps']} steps")
                groups[key].append(ep)
    return dict(groups)


def plot_group(name: str, episodes: list[dict], rows: list[dict], calib: dict, path: Path) -> None:
    """Value profile (mean +- std per step, successes vs failures), AUROC per step, calibration curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    ax = axes[0]
    for label, color, want in (("success", "tab:green", True), ("failure", "tab:red", False)):
        vals = [e["values"] for e in episodes if bool(e["success"]) == want]
        if not vals:
            continue
        n = max(len(x) for x in vals)
        arr = np.full((len(vals), n), np.nan)
        for i, x in enumerate(vals):
            arr[i, : len(x)] = x
        mean, std = np.nanmean(arr, 0), np.nanstd(arr, 0)
        steps = np.arange(n)
        ax.plot(steps, mean, color=color, label=f"{label} (n={len(vals)})")
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
    for r in rows:
        ax.axvline(r["step"], color="0.85", lw=0.6, zorder=0)
    ax.set_xlabel("control step")
    ax.set_ylabel("critic value v(z_t, 0)")
    ax.set_title(f"value profile: {name}", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    pts = [(r["step"], r["auroc"], r["se"]) for r in rows if r["auroc"] is not None]
    if pts:
        s, a, se = map(np.asarray, zip(*pts))
        ax.errorbar(s, a, yerr=1.96 * se, marker="o", capsize=2)
    ax.axhline(0.8, color="tab:orange", ls="--", lw=1, label="target 0.8")
    ax.axhline(0.5, color="0.6", ls=":", lw=1, label="chance")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("control step")
    ax.set_ylabel("AUROC (outcome from V at step)")
    ax.legend(fontsize=7)
    ax = axes[2]
    if calib.get("curve"):
        ax.plot([c["v_mean"] for c in calib["curve"]], [c["g_mean"] for c in calib["curve"]], "o-")
        lo = min(min(c["v_mean"], c["g_mean"]) for c in calib["curve"])
        hi = max(max(c["v_mean"], c["g_mean"]) for c in calib["curve"])
        ax.plot([lo, hi], [lo, hi], color="0.6", ls=":")
    ax.set_xlabel("critic V (decile mean)")
    ax.set_ylabel("Monte-Carlo return (mean)")
    ax.set_title("calibration on held-out rollouts", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(groups: dict[tuple[str, ...], list[dict]], every: int, gamma: float,
             reward_cfg: RewardConfig | None = None) -> list[dict]:
    reward_cfg = reward_cfg or SIM_REWARD
    out = []
    for key, eps in sorted(groups.items()):
        rows = auroc_by_step(eps, every)
        out.append({
            "group": list(key),
            "episodes": len(eps),
            "successes": sum(bool(e["success"]) for e in eps),
            "min_steps": min(len(e["values"]) for e in eps),
            "auroc": rows,
            "second_half_min_auroc": second_half_min(rows),
            "target_met": (m := second_half_min(rows)) is not None and m >= 0.8,
            "calibration": calibration(eps, gamma, reward_cfg),
        })
    return out


def markdown(results: list[dict], every: int, gamma: float) -> str:
    lines = ["# Critic evaluation on held-out rollouts (Fig. 11)", "",
             f"Outcome predicted from v(z_t, 0) at control steps {every}, {2 * every}, ... up to the shortest "
             f"episode of each group (AUROC, Mann-Whitney; +- Hanley-McNeil SE). Calibration against "
             f"Monte-Carlo returns (gamma {gamma}; failures are time-limit truncations).", ""]
    for r in results:
        name = " / ".join(r["group"])
        lines.append(f"## {name}")
        lines.append("")
        lines.append(f"{r['episodes']} episodes ({r['successes']} successes), shortest {r['min_steps']} steps; "
                     f"second-half minimum AUROC: "
                     + ("n/a" if r["second_half_min_auroc"] is None else f"{r['second_half_min_auroc']:.2f}")
                     + (" (target >= 0.8 met)" if r["target_met"] else " (target >= 0.8 NOT met)"))
        lines.append("")
        if r["auroc"]:
            lines.append("| step | " + " | ".join(str(a["step"]) for a in r["auroc"]) + " |")
            lines.append("| --- |" + " --- |" * len(r["auroc"]))
            lines.append("| AUROC | " + " | ".join(
                "n/a" if a["auroc"] is None else f"{a['auroc']:.2f} +- {a['se']:.2f}" for a in r["auroc"]) + " |")
        c = r["calibration"]
        if c:
            lines.append("")
            lines.append(f"V - G bias {c['bias']:+.3f}, RMSE {c['rmse']:.3f}, corr "
                         + ("n/a" if c["corr"] is None else f"{c['corr']:.2f}")
                         + f", mean |TD error| {c['td_abs']:.4f} (mean {c['td_mean']:+.4f}) over {c['n_steps']} steps")
        if r.get("plot"):
            lines += ["", f"![value profile, AUROC per step, calibration]({r['plot']})"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bora eval critic", description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="`bora eval` JSON files (with values) or directories")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--every", type=int, default=5, help="control steps between AUROC points (default 5)")
    ap.add_argument("--gamma", type=float, default=0.99, help="discount of the MC returns (default 0.99)")
    ap.add_argument("--by-object-set", action="store_true", help="one group per object set too")
    ap.add_argument("--time-penalty", type=float, default=SIM_REWARD.time_penalty,
                    help="per-step time penalty of the MC returns, the critic's reward definition (default "
                         f"{SIM_REWARD.time_penalty:g}: the simulator's, SIM_REWARD)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.results if not p.exists()]
    if missing:
        print(f"bora eval critic: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.every < 1 or not 0.0 <= args.gamma <= 1.0 or args.time_penalty < 0:
        print("bora eval critic: --every must be >= 1, --gamma in [0, 1] and --time-penalty >= 0", file=sys.stderr)
        return 2
    try:
        groups = load_groups(args.results, args.by_object_set)
    except ValueError as e:
        print(f"bora eval critic: {e}", file=sys.stderr)
        return 2
    if not groups:
        print("bora eval critic: no episodes with critic values (run `bora eval` without --no-values on a run "
              "with a critic)", file=sys.stderr)
        return 2
    results = evaluate(groups, args.every, args.gamma,
                       dataclasses.replace(SIM_REWARD, time_penalty=args.time_penalty))
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_plots:
        for r in results:
            key = tuple(r["group"])
            png = args.out / ("value_profile_" + "_".join(k.replace(" ", "-").replace("/", "-") for k in key) + ".png")
            plot_group(" / ".join(key), groups[key], r["auroc"], r["calibration"], png)
            r["plot"] = png.name
    (args.out / "critic_eval.json").write_text(json.dumps({"every": args.every, "gamma": args.gamma,
                                                            "groups": results}, indent=1))
    md = markdown(results, args.every, args.gamma)
    (args.out / "critic_eval.md").write_text(md + "\n")
    print(md)
    print(f"wrote {args.out / 'critic_eval.md'}")
    return 0
