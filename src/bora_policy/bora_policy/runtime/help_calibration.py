"""Calibrating the help monitor per task from recorded episodes (issue 19; ours), and ``bora help``.

Input: episodes with a per-step critic signal and an outcome -- the episode JSON files of ``bora bag
convert`` (``critic_q`` / ``critic_v``: per executed step, the recorded /bora/value of the executing chunk
at that step's chunk index; ``success``; ``task``), or the JSON lines of ``bench/bench_help.py``
(``{"task", "success", "signal": [...]}``).

Rule (:func:`calibrate_threshold`): the *false-request rate* is the share of SUCCESSFUL episodes in
which the monitor asks at least once (a request that no failure followed). The first request of an
episode fires exactly when :func:`episode_score` < threshold, where the score is the lowest level the
signal stayed below for ``persist_steps`` ticks after the grace period (min over t of the max of the
window ending at t), whatever the hysteresis and interval. So, with the n successful episodes' scores
sorted ascending s_(0) <= ... <= s_(n-1), the threshold ``s_(k)``, k = floor(rate * n), makes exactly
the k lowest (fewer with ties) ask: the largest threshold whose false-request rate is <= the target.
The file written per task also carries the failure_value (median signal over the last
``failure_tail`` steps of the failed episodes: the level the value reaches at a failure) and, as a
check, the replayed false-request rate, the recall on failed episodes and the median lead (steps from
the first request to the end of a failed episode).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bora_policy.runtime.help_monitor import HelpMonitor, HelpMonitorConfig

FORMAT = "bora-help-calibration/1"


@dataclass
class CalibrationEpisode:
    task: str
    success: bool
    signal: np.ndarray  # one value per control step


def episode_score(signal, persist_steps: int = 1, grace_steps: int = 0) -> float:
    """min over t >= max(grace_steps, persist_steps - 1) of max(signal[t - persist_steps + 1 .. t]);
    +inf when the episode is shorter (it can never ask)."""
    x = np.asarray(signal, np.float64).reshape(-1)
    p = int(persist_steps)
    t0 = max(int(grace_steps), p - 1)
    if x.size <= t0:
        return math.inf
    win = np.lib.stride_tricks.sliding_window_view(x, p).max(axis=1)  # win[j] = max(x[j .. j+p-1])
    return float(win[t0 - p + 1 :].min())


def calibrate_threshold(success_scores, target_false_rate: float) -> float:
    """The threshold s_(k), k = floor(rate * n), of the sorted successful scores (module docstring)."""
    if not 0.0 <= target_false_rate < 1.0:
        raise ValueError(f"help calibration: target false-request rate must be in [0, 1), got {target_false_rate}")
    s = np.sort(np.asarray([x for x in success_scores if math.isfinite(x)], np.float64))
    if s.size == 0:
        raise ValueError("help calibration: no successful episode long enough to calibrate the false-request rate")
    k = int(math.floor(target_false_rate * s.size + 1e-9))
    return float(s[k])


def replay(cfg: HelpMonitorConfig, episodes: list[CalibrationEpisode]) -> dict:
    """False-request rate, recall and lead (steps from the first request to a failed episode's end)."""
    mon = HelpMonitor(cfg)
    asked = [(e, mon.run(e.signal)) for e in episodes]
    succ = [r for e, r in asked if e.success]
    fail = [(e, r) for e, r in asked if not e.success]
    leads = [len(e.signal) - r[0].step for e, r in fail if r]
    return {
        "false_request_rate": float(np.mean([bool(r) for r in succ])) if succ else None,
        "recall": float(np.mean([bool(r) for _, r in fail])) if fail else None,
        "median_lead_steps": float(np.median(leads)) if leads else None,
        "requests_per_episode": float(np.mean([len(r) for _, r in asked])) if asked else 0.0,
    }


def calibrate(
    episodes: list[CalibrationEpisode], target_false_rate: float, base: HelpMonitorConfig, failure_tail: int = 5
) -> dict:
    """Per task: the threshold for ``target_false_rate`` and its replayed figures (module docstring)."""
    out: dict = {}
    for task in sorted({e.task for e in episodes}):
        eps = [e for e in episodes if e.task == task]
        scores = [episode_score(e.signal, base.persist_steps, base.grace_steps) for e in eps if e.success]
        thr = calibrate_threshold(scores, target_false_rate)
        tails = [np.asarray(e.signal[-failure_tail:], np.float64) for e in eps if not e.success and len(e.signal)]
        fv = float(np.median(np.concatenate(tails))) if tails else None
        cfg = replace(base, threshold=thr, failure_value=fv)
        out[task] = {
            "monitor": cfg.to_dict(),
            "target_false_request_rate": float(target_false_rate),
            "episodes": len(eps),
            "successes": sum(e.success for e in eps),
            **replay(cfg, eps),
        }
    return out


def load_monitor_config(path: str | Path, task: str, **overrides) -> HelpMonitorConfig:
    """The calibrated monitor of ``task`` from a file written by ``bora help calibrate``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text()) if p.suffix == ".json" else _yaml_load(p)
    except (OSError, ValueError) as e:
        raise ValueError(f"help calibration {p}: unreadable ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"help calibration {p}: field format: expected {FORMAT!r}")
    tasks = data.get("tasks") or {}
    if task not in tasks:
        raise ValueError(f"help calibration {p}: field tasks: no entry for task {task!r} (has {sorted(tasks)})")
    d = dict(tasks[task]["monitor"])
    d.update({k: v for k, v in overrides.items() if v is not None})
    return HelpMonitorConfig.from_dict(d)


def _yaml_load(p: Path):
    import yaml

    return yaml.safe_load(p.read_text())


def read_episodes(paths: list[str], signal: str = "q") -> list[CalibrationEpisode]:
    """Episodes from converted episode JSON files / directories and bench JSON-lines files."""
    out: list[CalibrationEpisode] = []
    files: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            files += sorted(p.glob("episodes/episode_*.json")) or sorted(p.glob("episode_*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"help calibrate: {p} does not exist")
    key = "critic_q" if signal in ("q", "q_ahead") else "critic_v"
    for f in files:
        lines = f.read_text().splitlines() if f.suffix == ".jsonl" else [f.read_text()]
        for n, line in enumerate(x for x in lines if x.strip()):
            d = json.loads(line)
            sig = d.get("signal", d.get(key))
            if sig is None:
                raise ValueError(f"{f}: episode {n}: field {key} (or signal): missing; recorded without /bora/value?")
            if d.get("success") is None:
                continue  # no outcome recorded: neither a false request nor a miss
            vals = np.asarray([np.nan if x is None else x for x in sig], np.float64)
            vals = vals[np.isfinite(vals)]  # steps without a value estimate
            out.append(CalibrationEpisode(str(d.get("task", "")), bool(d["success"]), vals))
    if not out:
        raise ValueError(f"help calibrate: no episode with an outcome in {paths}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bora help", description="critic-triggered help requests (issue 19)")
    sub = ap.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("calibrate", help="choose the threshold per task for a target false-request rate")
    c.add_argument("episodes", nargs="+", help="converted episode dirs/JSON files, or bench .jsonl files")
    c.add_argument("--out", required=True, help="calibration file to write (.yaml or .json)")
    c.add_argument("--false-rate", type=float, default=0.1, help="target false-request rate (default 0.1)")
    c.add_argument("--signal", default="q", choices=["q", "v", "q_ahead"])
    c.add_argument("--hysteresis", type=float, default=0.05)
    c.add_argument("--min-interval-s", type=float, default=3.0)
    c.add_argument("--persist-steps", type=int, default=2)
    c.add_argument("--grace-steps", type=int, default=5)
    c.add_argument("--control-hz", type=float, default=10.0)
    a = ap.parse_args(argv)
    try:
        base = HelpMonitorConfig(
            signal=a.signal,
            hysteresis=a.hysteresis,
            min_interval_s=a.min_interval_s,
            persist_steps=a.persist_steps,
            grace_steps=a.grace_steps,
            control_hz=a.control_hz,
        )
        res = calibrate(read_episodes(a.episodes, a.signal), a.false_rate, base)
    except (ValueError, OSError) as e:
        print(f"bora help calibrate: error: {e}", file=sys.stderr)
        return 2
    data = {"format": FORMAT, "tasks": res}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        out.write_text(json.dumps(data, indent=1) + "\n")
    else:
        import yaml

        out.write_text(yaml.safe_dump(data, sort_keys=False))
    for task, r in res.items():
        print(
            f"{task}: threshold {r['monitor']['threshold']:+.4f} ({r['successes']}/{r['episodes']} successes); "
            f"replayed false-request rate {r['false_request_rate']}, recall {r['recall']}, "
            f"median lead {r['median_lead_steps']} steps"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
