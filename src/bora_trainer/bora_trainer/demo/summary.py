"""``bora demo``'s summary: the success table of the evaluations, the paper's ordering claims as measured,
and ``OUT/summary.{json,md}``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from bora_trainer.algorithms import registry
from bora_trainer.demo.config import STAGES, DemoConfig


def success_table(eval_dir: Path) -> dict[str, dict[str, dict[str, int]]]:
    """method -> object_set -> {"successes", "trials"} summed over tasks."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for f in sorted(eval_dir.glob("*.json")):
        try:
            r = json.loads(f.read_text())
            if not isinstance(r, dict) or not all(k in r for k in ("method", "object_set", "trials", "successes")):
                continue  # not a `bora eval` result
        except ValueError:
            continue
        cell = out.setdefault(r["method"], {}).setdefault(r["object_set"], {"successes": 0, "trials": 0})
        cell["successes"] += int(r["successes"])
        cell["trials"] += int(r["trials"])
    return out


CLAIMS = (("BORA-Offline", "CP Base"), ("CP Base", "CP + Decoupled Critic"), ("BORA-Full", "BORA-Offline"))


def check_claims(table: dict) -> list[dict]:
    """The paper's orderings (strictly greater success rate), per object set, as measured."""
    res = []
    sets = sorted({s for m in table.values() for s in m})
    for a, b in CLAIMS:
        for s in sets:
            ca, cb = table.get(a, {}).get(s), table.get(b, {}).get(s)
            if not ca or not cb or not ca["trials"] or not cb["trials"]:
                continue
            ra, rb = ca["successes"] / ca["trials"], cb["successes"] / cb["trials"]
            res.append({"claim": f"{a} > {b}", "object_set": s, "a": ra, "b": rb, "held": ra > rb})
    return res


def viewer_lines(out: Path) -> list[str]:
    """Where to look after the run: the online episodes' viewer files (written by `bora report --runs`)
    and the TensorBoard log directory."""
    lines = [f"online episode in the viewer: {p}  (open: rerun {p})"
             for p in sorted((out / "report" / "viz").glob("*-last-episode.rrd"))]
    if any(p.is_dir() for p in (out / "runs").glob("**/tb")):
        lines.append(f"training curves: tensorboard --logdir {out / 'runs'}")
    return lines


def machine() -> dict:
    """What a rerun must match to reproduce the numbers bit for bit: the CPU and its vector/bf16 support
    (``precision: auto`` runs the online updates in bf16 autocast on a CPU with native bf16 and in fp32
    elsewhere: ``cpu_probe.decide_precision``), the platform and torch. The per-stage thread counts are in
    ``OUT/configs/demo.yaml`` (a different thread count changes float summation, and so the weights)."""
    import torch

    from bora_policy.runtime.cpu_probe import probe

    p = probe(calibrate=False)
    return {"cpu": p["cpu"], "logical_cpus": p["logical_cpus"], "avx512f": p["avx512f"],
            "native_bf16": p["native_bf16"], "online_precision_auto": p["precision_cpu"],
            "platform": platform.platform(), "torch": torch.__version__}


def write_summary(out: Path, cfg: DemoConfig, stage_info: dict, total_s: float, ok: bool) -> dict:
    table = success_table(out / "eval")
    claims = check_claims(table)
    m = machine()
    summary = {"ok": ok, "tasks": cfg.tasks, "total_seconds": round(total_s, 1), "stages": stage_info,
               "success": table, "claims": claims, "report": str(out / "report" / "report.md"), "machine": m}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# bora demo summary ({'complete' if ok else 'INCOMPLETE'})", "",
             f"tasks: {', '.join(cfg.tasks)}; total wall time {total_s / 60:.1f} min", "",
             f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, AVX-512 {'yes' if m['avx512f'] else 'no'}, "
             f"native bf16 {'yes' if m['native_bf16'] else 'no'} (online updates with precision auto: "
             f"{m['online_precision_auto']}); {m['platform']}; torch {m['torch']}", "",
             "| stage | status | wall time (s) | jobs |", "| --- | --- | --- | --- |"]
    for s in STAGES:
        i = stage_info.get(s, {})
        lines.append(f"| {s} | {i.get('status', 'not run')} | {i.get('seconds', 0):.0f} | "
                     f"{i.get('jobs', 0)} ({i.get('skipped', 0)} reused) |")
    sets = sorted({s for m in table.values() for s in m})
    if table:
        order = registry.labels()  # the paper's table order, then any unregistered name
        methods = [m for m in order if m in table] + sorted(set(table) - set(order))
        lines += ["", "| method | " + " | ".join(sets) + " |", "| --- |" + " --- |" * len(sets)]
        for m in methods:
            cells = []
            for s in sets:
                c = table[m].get(s)
                cells.append(f"{c['successes']}/{c['trials']} ({100 * c['successes'] / c['trials']:.0f}%)"
                             if c and c["trials"] else "n/a")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if claims:
        lines += ["", "Paper orderings as measured here (strictly greater success rate):"]
        for c in claims:
            lines.append(f"- {c['claim']} ({c['object_set']}): {100 * c['a']:.0f}% vs {100 * c['b']:.0f}% -> "
                         f"{'HELD' if c['held'] else 'NOT HELD'}")
    lines += ["", f"report: {out / 'report' / 'report.md'}"] + viewer_lines(out)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    summary["text"] = "\n".join(lines)
    return summary
