"""Why the offline fine-tuning loses against the warm-up it starts from, and does a weight average fix it? (issue 14)

The evidence protocol's offline rows (CP Base, BORA-Offline, ...) each fine-tune ONE shared cp-bc warm-up for
500 updates, and all of them lose against it (bench/results/evidence.md: CP Base - Warm-up -16.0 [-22.0, -9.6]).
bench/results/offline_rollouts.md ruled out the mixed-quality data (the same fine-tuning on the clean
demonstrations loses as much) and a learning-rate ramp. This bench separates the two causes left:

- **checkpoint drift**: the warm-up trains at a constant learning rate; its BC loss is flat after ~800 updates,
  but the weights keep moving and so does the success of the policy they give. Measured by evaluating the
  warm-up's own checkpoint at update 1000 (``warm-up@1000``) and the warm-up continued with ITS OWN optimiser
  state on its own data to update 2000 (``warm-up@2000``): no fresh optimiser, no new data;
- **the cure**: ``OfflineConfig.policy_ema`` (an exponential moving average of the actor's weights, exported as
  the policy): the same warm-up recipe with the average (``warm-up EMA``), and the CP Base row fine-tuned from
  it with the average (``CP Base EMA``), against the evidence run's rows without it (the BORA-Offline EMA row
  of finetune_drift.md, which averaged the VLM too, is no longer run: with a critic the trainer averages the
  expert only);
- **smaller steps**: the CP Base and BORA-Offline rows fine-tuned from the (raw) warm-up with the actor's
  learning rates divided by 10 (``CP Base lr/10``, ``BORA-Offline lr/10``: expert 1e-4, VLM 3e-5; the
  critic's unchanged).

Every policy is evaluated on the TUNING seeds ``--seed0``.. (default 200000, 30 standard trials: the same
initial states for every policy, paired); the evaluation seeds are never used. Writes
``bench/results/<--report>.{json,md}`` (default ``finetune_drift``): successes per task and policy, paired
differences (Newcombe 95% interval, McNemar exact p) per task and pooled. Existing outputs in ``--work`` are
reused, so an interrupted run resumes. Jobs run one at a time with ``--threads`` torch threads each.

    .venv/bin/python bench/bench_finetune_drift.py --evidence runs/evidence [--tasks ...] [--trials 30]
        [--ema 0.995] [--work /tmp/drift]
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

import yaml
from bench_offline_rollouts import paired_lines
from bench_online_bc import successes, write_keeping_findings  # the evidence benches' outcome reader, writer
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"

TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")
# policy name in the tables -> work-directory name of its run and eval file
POLICIES = {"warm-up@1000": "w1000", "warm-up": "warmup", "warm-up@2000": "w2000", "CP Base": "cp-bc",
            "BORA-Offline": "bora", "warm-up EMA": "warm_ema", "CP Base EMA": "cp-bc_ema",
            "CP Base lr/10": "cp-bc_lr10", "BORA-Offline lr/10": "bora_lr10"}
# (no BORA-Offline EMA: with a critic the trainer now averages the expert only, since an averaged VLM would change
# the z_t its critic learned on; finetune_drift.md's BORA-Offline EMA column averaged both and is not re-run)
PAIRS = (("warm-up@1000", "warm-up"), ("warm-up@2000", "warm-up"), ("CP Base", "warm-up"),
         ("BORA-Offline", "CP Base"), ("warm-up EMA", "warm-up"), ("CP Base EMA", "warm-up EMA"),
         ("CP Base EMA", "CP Base"),
         ("CP Base lr/10", "warm-up"), ("BORA-Offline lr/10", "CP Base lr/10"))


def bora(argv: list[str], log: Path, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, "-m", "bora_trainer.cli", *argv], stdout=f, stderr=subprocess.STDOUT,
                             env=env)
    if rc:
        raise RuntimeError(f"bora {' '.join(argv)} failed ({rc}); log {log}")


def checkpoint_policy(warm: Path, step: int, out: Path, threads: int, updates: int | None = None) -> None:
    """``out``: the warm-up resumed from its checkpoint at ``step`` (weights, optimiser, step), trained on to
    ``updates`` (default: none) with its own config and data, and exported."""
    if (out / "policy").is_dir():
        return
    shutil.rmtree(out, ignore_errors=True)
    ck = warm / "checkpoints" / f"step_{step:07d}"
    if not ck.is_dir():
        raise FileNotFoundError(f"{ck}: the warm-up has no checkpoint at update {step} (ckpt_every)")
    (out / "checkpoints").mkdir(parents=True)
    for f in ("config.yaml", "normalizer.json"):
        shutil.copy(warm / f, out / f)
    shutil.copytree(ck, out / "checkpoints" / ck.name)
    (out / "latest").write_text(ck.name)
    bora(["train", "offline", "--out", str(out), "--resume", "--updates", str(updates or step), "--no-progress"],
         out.with_suffix(".log"), threads)


def run_task(task: str, a: argparse.Namespace) -> dict[str, list[bool]]:
    ev, w = Path(a.evidence), a.work / task
    w.mkdir(parents=True, exist_ok=True)
    warm = ev / "runs" / task / "warmup"
    checkpoint_policy(warm, 1000, w / "w1000", a.threads)
    checkpoint_policy(warm, 1500, w / "w2000", a.threads, updates=2000)
    base_cfg = (ev / "configs" / "offline.yaml").read_text()
    cfg = a.work / "offline_ema.yaml"
    cfg.write_text(base_cfg + f"\npolicy_ema: {a.ema}\n")
    lr10 = yaml.safe_load(base_cfg)
    lr10.update(expert_lr=lr10["expert_lr"] / 10, vlm_lr=lr10["vlm_lr"] / 10)
    (a.work / "offline_lr10.yaml").write_text(yaml.safe_dump(lr10))
    warm_argv = json.loads((ev / "stages" / f"warmup-{task}.done").read_text())["argv"]
    runs = {"w1000": w / "w1000", "warmup": warm, "w2000": w / "w2000", "cp-bc": ev / "runs" / task / "cp-bc",
            "bora": ev / "runs" / task / "bora", "warm_ema": w / "warm_ema"}
    if not (w / "warm_ema" / "policy").is_dir():
        bora(["train", "offline", "--algo", "cp-bc", "--data", str(ev / "data" / task), "--config", str(cfg),
              "--out", str(w / "warm_ema"), "--updates", warm_argv[warm_argv.index("--updates") + 1],
              "--episodes", "clean", "--no-progress"], w / "warm_ema.log", a.threads)
    for algo, variant, config, start in (("cp-bc", "ema", cfg, w / "warm_ema"),
                                         ("cp-bc", "lr10", a.work / "offline_lr10.yaml", warm),
                                         ("bora", "lr10", a.work / "offline_lr10.yaml", warm)):
        run = runs[f"{algo}_{variant}"] = w / f"{algo}_{variant}"
        if not (run / "policy").is_dir():
            row = json.loads((ev / "stages" / f"offline-{task}-{algo}.done").read_text())["argv"]
            bora(["train", "offline", "--algo", algo, "--data", str(ev / "data" / task), "--config", str(config),
                  "--out", str(run), "--updates", row[row.index("--updates") + 1], "--init-from", str(start),
                  "--no-progress"], run.with_suffix(".log"), a.threads)
    out: dict[str, list[bool]] = {}
    for name, key in POLICIES.items():
        path = w / f"eval_{key}.json"
        if not path.is_file():
            bora(["eval", "--run", str(runs[key]), "--task", task, "--objects", "standard", "--trials", str(a.trials),
                  "--seed0", str(a.seed0), "--no-values", "--method", name, "--num-envs", "4", "--out", str(path),
                  "--no-progress"], path.with_suffix(".log"), a.threads)
        out[name] = successes(path)
    print(f"{task} done {time.strftime('%H:%M:%S')}", flush=True)
    return out


def report(results: dict[str, dict]) -> str:
    names = list(POLICIES)
    lines = [f"| task | {' | '.join(names)} |", "|" + " --- |" * (len(names) + 1)]
    for task, r in results.items():
        lines.append(f"| {task} | " + " | ".join(f"{sum(r[p])}/{len(r[p])}" for p in names) + " |")
    if len(results) > 1:
        pooled = {p: [x for r in results.values() for x in r[p]] for p in names}
        lines.append("| **pooled** | " + " | ".join(f"{sum(v)}/{len(v)}" for v in pooled.values()) + " |")
    return "\n".join(lines + paired_lines(results, PAIRS))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--evidence", required=True, help="an evidence run directory (bora demo --out)")
    p.add_argument("--tasks", nargs="*", default=["press_button", "pick_plush_toy", "pick_and_place"], choices=TASKS)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seed0", type=int, default=200_000, help="tuning seeds (never the evaluation seeds)")
    p.add_argument("--ema", type=float, default=0.995, help="OfflineConfig.policy_ema of the EMA runs")
    p.add_argument("--threads", type=int, default=2, help="torch threads of each job (jobs run one at a time)")
    p.add_argument("--work", type=Path, default=Path("/tmp/drift"))
    p.add_argument("--report", default="finetune_drift")
    a = p.parse_args(argv)
    if 300_000 <= a.seed0 < 400_000:
        p.error(f"--seed0 {a.seed0}: that is the evaluation seed range; tune on 200000..")
    if not 0.0 < a.ema < 1.0:
        p.error(f"--ema {a.ema}: expected a decay in (0, 1)")
    results = {t: run_task(t, a) for t in a.tasks}
    table = report(results)
    m = machine(calibrate=False)
    (RESULTS / f"{a.report}.json").write_text(json.dumps(
        {"evidence": a.evidence, "trials": a.trials, "seed0": a.seed0, "ema": a.ema, "results": results,
         "machine": m}, indent=1))
    head = (f"# Why the offline fine-tuning loses against the warm-up (issue 14)\n\nMachine: {m.get('cpu', '')}; "
            f"commit {m.get('commit', '')}. `bench/bench_finetune_drift.py --evidence {a.evidence} --ema {a.ema}` "
            f"({a.trials} standard trials per policy on the tuning seeds {a.seed0}..; every policy on the same "
            f"seeds).\n\n")
    write_keeping_findings(RESULTS / f"{a.report}.md", head + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
