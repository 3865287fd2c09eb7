"""Scope of the advantage gate (Appendix B.1, Eq. 5; issue 14): batch / ppo_chunk / off, measured.

For each scope: ``bora train offline --algo bora --gate-scope SCOPE`` from one shared cp-bc warm-up (the demo's
recipe: ``--init-from`` the warm-up, ``UPDATES`` updates, PPO from 40/70 of them), then ``bora eval`` on the
same fixed evaluation seeds. Reported per scope: successes with the Wilson 95% interval, and over the PPO
stage (Stage 2) the share of updates the literal batch gate closed (``gate/batch_open``: computed under
every scope), the share of chunks the per-chunk gate closed, the PPO ratio spread (std, min, max of r over
valid steps, per update, averaged) and the advantage spread (raw action-level GAE std), read from the run's
TensorBoard scalars (``log_every`` 1). Writes ``bench/results/gate_scope.{json,md}``.

    .venv/bin/python bench/bench_gate_scope.py --data DATA --warmup RUN --config OFFLINE_YAML
        [--updates 500] [--trials 30] [--seed0 100000] [--threads 2] [--work /tmp/gate_scope]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SCOPES = ("batch", "ppo_chunk", "off")


def wilson(s: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = s / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return max(0.0, c - h), min(1.0, c + h)


def bora(argv: list[str], threads: int, log: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), BORA_NUM_THREADS=str(threads))
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call([str(ROOT / ".venv/bin/bora"), *argv], stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc:
        sys.exit(f"bora {' '.join(argv)} failed ({rc}); log {log}")
    return time.time() - t0


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}


def stage2_mean(sc: dict, tag: str) -> float | None:
    stage = dict(sc.get("train/stage", []))
    vals = [v for s, v in sc.get(tag, []) if stage.get(s) == 2.0]
    return sum(vals) / len(vals) if vals else None


def write_md(out: dict, path: Path) -> None:
    """``gate_scope.md``: the machine, commit, command and one row per scope."""
    a = out["args"]
    lines = [
        "# Advantage-gate scope (Appendix B.1, Eq. 5): batch / ppo_chunk / off",
        "",
        f"Commit `{out['commit']}`; command: `{out['command']}`.",
        f"One task ({a['task']}), bora rows of {a['updates']} updates from one shared cp-bc warm-up (PPO from "
        f"40/70 of the updates), {a['trials']} evaluation episodes each on the fixed seeds {a['seed0']}.. "
        f"(standard object set); {a['threads']} torch thread(s) per process; 1-minute load average at the end "
        f"{out['load_avg'][0]:.1f} (the 2 cores were shared with other jobs).",
        "",
        "Machine (`lscpu | head`):",
        "",
        "```",
        out["lscpu_head"].rstrip(),
        "```",
        "",
        "| scope | success | Wilson 95% | actor steps skipped | batch gate closed | chunks gated | "
        "PPO ratio std / min / max | clip frac | raw adv std (min, max) | TD abs | train s | eval s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["rows"]:
        lo, hi = r["wilson95"]
        lines.append(
            f"| {r['scope']} | {r['successes']}/{r['trials']} | {100 * lo:.0f}-{100 * hi:.0f}% | "
            f"{100 * r['actor_step_skipped_frac']:.0f}% | {100 * r['batch_gate_closed_frac']:.0f}% | "
            f"{100 * r['chunk_gate_closed_frac']:.0f}% | {r['ppo_ratio_std']:.3g} / {r['ppo_ratio_min']:.3g} / "
            f"{r['ppo_ratio_max']:.3g} | {r['ppo_clip_frac']:.3g} | {r['adv_raw_std']:.3g} "
            f"({r['adv_raw_min']:.3g}, {r['adv_raw_max']:.3g}) | {r['critic_td_abs']:.3g} | {r['train_s']:.0f} | "
            f"{r['eval_s']:.0f} |"
        )
    lines += [
        "",
        "Columns: over the Stage-2 (PPO) updates, the share of updates whose actor step was skipped (only the "
        "batch scope skips), the share where the literal batch gate would be closed (computed under every "
        "scope), the share of chunks with A_bar_t <= 0 (masked out of the PPO term under ppo_chunk), the PPO "
        "ratio spread over valid steps and the raw action-level GAE advantage spread (per update, averaged), "
        "and the mean |q - y| TD error of the critic.",
    ]
    if out.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in out["notes"]]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--warmup", required=True, help="the shared cp-bc warm-up run (--init-from)")
    p.add_argument("--config", required=True, help="OfflineConfig YAML of the rows (the demo's offline.yaml)")
    p.add_argument("--task", default="press_button")
    p.add_argument("--updates", type=int, default=500)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seed0", type=int, default=100_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scopes", nargs="+", default=list(SCOPES), choices=SCOPES)
    p.add_argument("--work", type=Path, default=Path("/tmp/gate_scope"))
    p.add_argument("--md-only", action="store_true", help="rewrite gate_scope.md from gate_scope.json and exit")
    if "--md-only" in sys.argv:
        out = json.loads((RESULTS / "gate_scope.json").read_text())
        write_md(out, RESULTS / "gate_scope.md")
        return 0
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = args.work / "offline.yaml"
    cfg.write_text(Path(args.config).read_text() + "\nlog_every: 1\n")
    rows = []
    for scope in args.scopes:
        run, ev = args.work / f"run_{scope}", args.work / f"eval_{scope}.json"
        shutil.rmtree(run, ignore_errors=True)  # this bench's own scratch run: retrained from the warm-up each time
        train_s = bora(
            ["train", "offline", "--algo", "bora", "--data", args.data, "--config", str(cfg), "--out", str(run),
             "--updates", str(args.updates), "--init-from", args.warmup, "--gate-scope", scope, "--no-progress"],
            args.threads, args.work / f"train_{scope}.log",
        )
        eval_s = bora(
            ["eval", "--run", str(run), "--task", args.task, "--objects", "standard", "--trials", str(args.trials),
             "--seed0", str(args.seed0), "--threads", str(args.threads), "--out", str(ev), "--no-values",
             "--no-progress"],
            args.threads, args.work / f"eval_{scope}.log",
        )
        res = json.loads(ev.read_text())
        sc = scalars(run)
        s, n = int(res["successes"]), int(res["trials"])
        lo, hi = wilson(s, n)
        batch_open = stage2_mean(sc, "gate/batch_open")
        chunk_open = stage2_mean(sc, "gate/chunk_open_frac")
        row = {
            "scope": scope,
            "successes": s,
            "trials": n,
            "wilson95": [round(lo, 3), round(hi, 3)],
            "stage2_updates": sum(1 for _, v in sc.get("train/stage", []) if v == 2.0),
            "batch_gate_closed_frac": None if batch_open is None else round(1 - batch_open, 3),
            "actor_step_skipped_frac": round(1 - stage2_mean(sc, "gate/open_frac"), 3),
            "chunk_gate_closed_frac": None if chunk_open is None else round(1 - chunk_open, 3),
            **{
                k.replace("/", "_"): (None if (m := stage2_mean(sc, k)) is None else round(m, 4))
                for k in ("ppo/ratio_std", "ppo/ratio_min", "ppo/ratio_max", "ppo/clip_frac", "adv/raw_std",
                          "adv/raw_min", "adv/raw_max", "critic/td_abs", "loss/ppo", "loss/bc")
            },
            "train_s": round(train_s, 1),
            "eval_s": round(eval_s, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    lscpu = subprocess.run("lscpu | head", shell=True, capture_output=True, text=True).stdout
    out = {
        "machine": machine(),
        "lscpu_head": lscpu,
        "commit": commit.stdout.strip(),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "load_avg": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate_scope.json").write_text(json.dumps(out, indent=1))
    write_md(out, RESULTS / "gate_scope.md")
    print(f"wrote {RESULTS / 'gate_scope.json'} and gate_scope.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
