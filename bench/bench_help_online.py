"""Online rounds driven by help requests alone vs by the privileged operator (issue 19), per task.

For each task of a finished evidence run (``bora demo --config config/evidence_core.yaml``; its BORA-Full row
is the privileged-mode run): the same online stage (the run's ``configs/online.yaml``, 2 rounds x 10 episodes,
400 updates per round, from the same BORA-Offline run) with the scripted operator in ``requested`` mode
(``operator: {mode: requested, reaction_s: 0.3}``) and the help monitor calibrated per task by
``bench/bench_help.py`` (``--help-json``, its ``calibration.monitor``: calibrated on the TUNING seeds with the
BORA-Offline critic). Then ``bora eval`` of the round-2 stack on the evidence run's evaluation seeds
(``--seed0`` 300000, standard objects), paired with the evidence run's BORA-Full (privileged) and
BORA-Offline evaluations on the same seeds.

Reported per task: success of the three (Newcombe 95% paired interval and McNemar's exact p of requested -
privileged); per round the operator's attention in requested mode (steps from a request until the operator
hands back or the episode ends, over all steps; privileged mode: 1, a person watches every autonomous
second), requests per episode; over both rounds the share of steps under the operator in each mode (the
trainer's ledger). Writes ``bench/results/help_online.{json,md}``; existing outputs in ``--work`` are reused.

    .venv/bin/python bench/bench_help_online.py --evidence runs/evidence_core [--tasks ...] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from bench_online_bc import bora, successes, train_online, write_keeping_findings
from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "bora_trainer"))
from bora_trainer.stats import mcnemar_exact_p, newcombe_paired_diff  # noqa: E402

TASKS = ("pick_plush_toy", "pick_and_place", "open_box", "pull_tissue", "press_button")


def run_task(task: str, a: argparse.Namespace, monitor: dict) -> None:
    ev, run = Path(a.evidence), a.work / "runs" / f"{task}-requested"
    if not (run / "rounds" / "round_02").is_dir():
        cfg = yaml.safe_load((ev / "configs" / "online.yaml").read_text())
        cfg["operator"] = {**cfg.get("operator", {}), "mode": "requested", "reaction_s": a.reaction_s}
        cfg["help_monitor"] = {k: v for k, v in monitor.items() if k != "control_hz"}
        train_online(ev, task, cfg, a.work / f"req_{task}.yaml", run, a.work / f"{task}-requested.train.log")
    out = a.work / f"{task}_eval_requested.json"
    if not out.exists():
        bora(["eval", "--run", str(run), "--task", task, "--objects", "standard", "--trials", str(a.trials),
              "--seed0", str(a.seed0), "--threads", "1", "--no-values", "--no-progress", "--out", str(out)],
             out.with_suffix(".log"))
    print(f"{task} requested done {time.strftime('%H:%M:%S')}", flush=True)


def share(run: Path) -> tuple[int, int]:
    """(steps under the operator, control steps) over every ingested online episode."""
    led = json.loads((run / "ingested.json").read_text()).values()
    return sum(int(e["intervened_steps"]) for e in led), sum(int(e["num_steps"]) for e in led)


def figures(task: str, a: argparse.Namespace, monitor: dict) -> dict:
    ev = Path(a.evidence)
    req = successes(a.work / f"{task}_eval_requested.json")
    priv = successes(ev / "eval" / f"{task}__bora-residual-online__standard.json")
    off = successes(ev / "eval" / f"{task}__bora__standard.json")
    if not (len(req) == len(priv) == len(off)):
        raise SystemExit(
            f"{task}: trial counts differ (requested {len(req)}, privileged {len(priv)}, offline {len(off)})"
        )
    d, lo, hi = newcombe_paired_diff(req, priv)
    rl = json.loads((a.work / "runs" / f"{task}-requested" / "round_log.json").read_text())
    return {
        "threshold": monitor["threshold"],
        "trials": len(req), "requested": sum(req), "privileged": sum(priv), "offline": sum(off),
        "diff": d, "lo": lo, "hi": hi, "p": mcnemar_exact_p(req, priv),
        "rounds": {r: {k: x.get(k) for k in ("success_rate_with_operator", "interventions_per_episode",
                                              "help_requests_per_episode", "attention")} for r, x in rl.items()},
        "operator_share_requested": share(a.work / "runs" / f"{task}-requested"),
        "operator_share_privileged": share(ev / "runs" / task / "bora-residual-online"),
    }


def pooled(a: argparse.Namespace) -> dict:
    """All tasks' pairs together: requested - privileged and requested - BORA-Offline (Newcombe 95%)."""
    ev = Path(a.evidence)
    req, priv, off = [], [], []
    for t in a.tasks:
        req += successes(a.work / f"{t}_eval_requested.json")
        priv += successes(ev / "eval" / f"{t}__bora-residual-online__standard.json")
        off += successes(ev / "eval" / f"{t}__bora__standard.json")
    out = {"n": len(req), "requested": sum(req), "privileged": sum(priv), "offline": sum(off)}
    for name, other in (("vs_privileged", priv), ("vs_offline", off)):
        d, lo, hi = newcombe_paired_diff(req, other)
        out[name] = {"diff": d, "lo": lo, "hi": hi, "p": mcnemar_exact_p(req, other)}
    return out


def markdown(res: dict, a: argparse.Namespace) -> str:
    pct = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    lines = [
        "# Online rounds driven by help requests (issue 19)",
        "",
        f"Machine: {res['machine'].get('cpu', '?')}, {res['machine'].get('logical_cpus', '?')} logical CPUs; "
        f"commit {res['commit']}; {res['date']}. Evidence run `{a.evidence}` (its BORA-Full row = the privileged "
        "mode); requested mode: the same online stage with `operator: {mode: requested, reaction_s: "
        f"{a.reaction_s}}}` and each task's monitor from `{a.help_json}` (calibrated on the tuning seeds with the "
        f"BORA-Offline critic). {res['trials']} standard trials on the evaluation seeds {a.seed0}.., paired.",
        "",
        "| task | threshold | BORA-Offline | BORA-Full privileged | BORA-Full requested | requested - privileged "
        "| attention per round (requested; privileged 1) | requests per episode | operator's share of online "
        "steps, requested vs privileged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t, r in res["tasks"].items():
        att = " / ".join(f"{x['attention']:.2f}" for x in r["rounds"].values())
        reqs = " / ".join(f"{x['help_requests_per_episode']:.1f}" for x in r["rounds"].values())
        (iq, nq), (ip, np_) = r["operator_share_requested"], r["operator_share_privileged"]
        lines.append(
            f"| {t} | {r['threshold']:.4f} | {r['offline']}/{r['trials']} | {r['privileged']}/{r['trials']} | "
            f"{r['requested']}/{r['trials']} | {pct(r['diff'])} [{pct(r['lo'])}, {pct(r['hi'])}] p={r['p']:.3f} | "
            f"{att} | {reqs} | {100 * iq / max(nq, 1):.1f}% vs {100 * ip / max(np_, 1):.1f}% |"
        )
    po = res["pooled"]
    vp, vo = po["vs_privileged"], po["vs_offline"]
    lines += [
        "",
        f"Pooled over the tasks ({po['n']} pairs): requested {po['requested']}, privileged {po['privileged']}, "
        f"BORA-Offline {po['offline']}; requested - privileged {pct(vp['diff'])} [{pct(vp['lo'])}, "
        f"{pct(vp['hi'])}] p={vp['p']:.3f}; requested - BORA-Offline {pct(vo['diff'])} [{pct(vo['lo'])}, "
        f"{pct(vo['hi'])}] p={vo['p']:.3f} (Newcombe 95% over all pairs, McNemar exact p).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--evidence", required=True, help="a finished `bora demo --config config/evidence_core.yaml` dir")
    p.add_argument("--help-json", default=str(RESULTS / "help_requests.json"), help="bench_help.py's JSON")
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seed0", type=int, default=300000, help="the evidence run's evaluation seeds")
    p.add_argument("--reaction-s", type=float, default=0.3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/help_online"))
    a = p.parse_args()
    cal = {t["task"]: t["calibration"]["monitor"] for t in json.loads(Path(a.help_json).read_text())["tasks"]}
    for t in a.tasks:
        if t not in cal:
            p.error(f"--tasks: {t} has no calibrated monitor in {a.help_json} (run bench/bench_help.py for it)")
        if not (Path(a.evidence) / "eval" / f"{t}__bora-residual-online__standard.json").exists():
            p.error(f"--evidence: {a.evidence} has no BORA-Full evaluation of {t} (run the evidence config first)")
    a.work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        for f in [pool.submit(run_task, t, a, cal[t]) for t in a.tasks]:
            f.result()
    res = {"tasks": {t: figures(t, a, cal[t]) for t in a.tasks}, "trials": a.trials, "seed0": a.seed0}
    res["pooled"] = pooled(a)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    res.update(machine=machine(calibrate=False), commit=commit, date=time.strftime("%Y-%m-%d"))
    (RESULTS / "help_online.json").write_text(json.dumps(res, indent=1))
    write_keeping_findings(RESULTS / "help_online.md", markdown(res, a))
    print(f"wrote {RESULTS / 'help_online.md'}")


if __name__ == "__main__":
    main()
