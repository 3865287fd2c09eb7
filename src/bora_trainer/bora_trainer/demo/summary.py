"""``bora demo``'s summary: the success table of the evaluations, the paper's ordering claims as measured,
and ``OUT/summary.{json,md}``."""

from __future__ import annotations

import json
import os
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
    """Where to look after the run: the online episodes' viewer files (written by `bora report --runs` for runs
    with an episode dataset, ``rollouts/``: ``--env sim``), the last recording of every online run through the ROS
    graph (``recordings/``, rosbag2: ``bora viz --bag``), and the TensorBoard log directory."""
    lines = [f"online episode in the viewer: {p}  (open: rerun {p})"
             for p in sorted((out / "report" / "viz").glob("*-last-episode.rrd"))]
    for rec in sorted((out / "runs").glob("**/recordings")):
        bags = sorted(d for d in rec.iterdir() if (d / "metadata.yaml").is_file())
        if bags:  # the names sort in recording order (live_<date>_<time>, then its _rNN continuations)
            lines.append(f"online recording in the viewer: bora viz --bag {bags[-1]} --serve")
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


def stage_info(pl, stages: list[str], res: dict, out: Path, t_all: float, before: dict) -> dict:
    """Per stage, from one :func:`run.run_jobs` result: ``jobs``, ``skipped`` (done before), ``job_seconds``,
    ``failed``, ``status`` (done / failed / incomplete: jobs left when another job failed), and the stage's
    span: ``start`` and ``seconds`` from its first job's start to its last job's end (stages overlap, so the
    spans add up to more than the total); a stage whose jobs were all reused keeps its earlier figures.
    Writes ``OUT/stages/<stage>.done`` for every stage that is done."""
    from bora_trainer.demo.run import marker

    info = {}
    for s in stages:
        jobs = pl.stages[s]
        names = [j.name for j in jobs]
        spans = [res["spans"][n] for n in names if n in res["spans"]]
        failed = [f for f in res["failed"] if f["job"] in names]
        done = all(marker(out, n).exists() for n in names)
        i = {"jobs": len(jobs), "skipped": sum(n not in res["spans"] and marker(out, n).exists() for n in names),
             "job_seconds": {n: round(res["job_seconds"][n], 1) for n in names if n in res["job_seconds"]},
             "failed": failed, "status": "failed" if failed else ("done" if done else "incomplete")}
        if spans:
            i["start"] = round(min(a for a, _ in spans) - t_all, 1)
            i["seconds"] = round(max(b for _, b in spans) - min(a for a, _ in spans), 1)
        elif s in before and i["status"] == "done":  # all reused: keep the measured figures
            i["start"], i["seconds"] = before[s].get("start"), before[s].get("seconds", 0.0)
        else:
            i["seconds"] = 0.0
        info[s] = i
        if i["status"] == "done":
            marker(out, s).write_text(json.dumps({"seconds": i["seconds"]}))
    return info


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def mark_running(out: Path) -> None:
    """At the start of a call: the previous call's summary says this one is running (``ok`` false, ``status``
    "running"; its stage times kept for a resume), so a run stopped part-way never leaves a summary that reads
    "complete" (found in review, 2026-12-07)."""
    js, md = out / "summary.json", out / "summary.md"
    if js.exists():
        try:
            prev = json.loads(js.read_text())
        except ValueError:  # (a resume has refused it already; a fresh run does not need it)
            prev = {}
        _write_atomic(js, json.dumps({**prev, "ok": False, "status": "running"}, indent=1))
    if md.exists():
        text = md.read_text()
        if not text.startswith("RUNNING"):
            _write_atomic(md, "RUNNING: a later `bora demo` call has not finished; what follows is the previous "
                              "call's summary.\n\n" + text)


def write_summary(out: Path, cfg: DemoConfig, stage_info: dict, total_s: float, ok: bool) -> dict:
    table = success_table(out / "eval")
    claims = check_claims(table)
    m = machine()
    summary = {"ok": ok, "tasks": cfg.tasks, "total_seconds": round(total_s, 1), "stages": stage_info,
               "success": table, "claims": claims, "report": str(out / "report" / "report.md"), "machine": m}
    _write_atomic(out / "summary.json", json.dumps({**summary, "status": "complete" if ok else "incomplete"}, indent=1))
    lines = [f"# bora demo summary ({'complete' if ok else 'INCOMPLETE'})", "",
             f"tasks: {', '.join(cfg.tasks)}; total wall time {total_s / 60:.1f} min", "",
             f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, AVX-512 {'yes' if m['avx512f'] else 'no'}, "
             f"native bf16 {'yes' if m['native_bf16'] else 'no'} (online updates with precision auto: "
             f"{m['online_precision_auto']}); {m['platform']}; torch {m['torch']}", "",
             "Stages overlap (a job starts once the jobs whose output it reads are done and its cores are free): "
             "a stage's time runs from its first job's start to its last job's end.", "",
             "| stage | status | starts at (s) | wall time (s) | jobs |", "| --- | --- | --- | --- | --- |"]
    for s in STAGES:
        i = stage_info.get(s, {})
        start = i.get("start")
        lines.append(f"| {s} | {i.get('status', 'not run')} | {'-' if start is None else f'{start:.0f}'} | "
                     f"{i.get('seconds', 0):.0f} | {i.get('jobs', 0)} ({i.get('skipped', 0)} reused) |")
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
    _write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    summary["text"] = "\n".join(lines)
    return summary
