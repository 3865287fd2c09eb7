"""Project a finished ``bora demo`` run's wall time under the job-graph runner from its measured job times.

    python bench/project_schedule.py --out demo_out
    python bench/project_schedule.py --out /work/runs/evidence --cpus 2 --report evidence_schedule
    python bench/project_schedule.py --out /work/runs/evidence --measured   # a run in parts: its wall time so far

Rebuilds the run's plan from ``OUT/configs/demo.yaml``, takes each job's duration from its done marker
(``OUT/stages/<job>.done``: the seconds it took when it ran) and replays the runner's own choice
(``demo/run.py``: ``link``, ``priority``, ``startable``) as an event simulation: a job starts when the
jobs it reads from are done and its cores fit. Two figures: the runner's projected wall time, and the
stage-by-stage order (every stage a barrier, its jobs with the same choice inside the stage), the order
``bora demo`` had before the job graph. Assumption: a job takes what it took when measured, however its
cores are shared; the job times of a run measured under a different order (other neighbours on the cores)
carry that run's contention. A projection, not a measurement: the measured figure of the job-graph
runner is the demo's own ``summary.json`` (of its last part only, for a run made in parts with ``--resume``).

The measured figure of a run made in parts (:func:`measured`): the union of the done jobs' [start, end] spans
from their markers (time when at least one finished job ran; pauses between parts do not count), the parts (a
pause of more than ``--part-gap`` seconds with nothing running ends one), and the attempts started but never
done (stopped part-way: their time is lost work; a started marker written before it recorded ``start``
has none).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

import yaml

from bora_trainer.config_io import ConfigError, from_dict, read_yaml
from bora_trainer.demo.config import STAGES, DemoConfig, resolve_auto_threads
from bora_trainer.demo.plan import all_jobs, plan, stage_parallel
from bora_trainer.demo.run import link, priority, startable

RESULTS = Path(__file__).resolve().parent / "results"


def _config(path: Path, sets: list[str]):
    data = read_yaml(path)
    for kv in sets:
        key, sep, val = kv.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {kv!r}: expected KEY=VALUE, e.g. online.threads=1")
        *parents, leaf = key.split(".")
        d = data
        for k in parents:
            d = d.setdefault(k, {})
        d[leaf] = yaml.safe_load(val)
    resolve_auto_threads(data)
    cfg = from_dict(DemoConfig, data)
    cfg.validate()
    return cfg


def durations(out: Path, names: list[str]) -> tuple[dict[str, float], list[str]]:
    got, missing = {}, []
    for n in names:
        f = out / "stages" / f"{n}.done"
        try:
            got[n] = float(json.loads(f.read_text())["seconds"])
        except (OSError, ValueError, KeyError):
            missing.append(n)
    return got, missing


def _union(spans: list[tuple[float, float]], gap_s: float) -> list[list[float]]:
    """Merge [start, end] spans; spans separated by at most ``gap_s`` seconds go into one part: [start, end, busy]."""
    parts: list[list[float]] = []
    for a, b in sorted(spans):
        if parts and a <= parts[-1][1] + gap_s:
            last = parts[-1]
            last[2] += max(0.0, b - max(a, last[1]))  # the busy time this span adds beyond the part so far
            last[1] = max(last[1], b)
        else:
            parts.append([a, b, b - a])
    return parts


def measured(out: Path, gap_s: float = 300.0) -> dict:
    """Wall time of the run so far from its markers (module docstring): ``busy_s`` (the union of the done jobs'
    spans), ``parts`` ([start, end, busy] each, epoch seconds), ``job_seconds_sum``, ``jobs_done`` and
    ``unfinished`` ({job: start or None}: started, never done)."""
    spans, done, secs = [], set(), 0.0
    for f in sorted((out / "stages").glob("*.done")):
        m = json.loads(f.read_text())
        if "start" in m and "end" in m:  # a stage's own done marker has seconds only
            spans.append((float(m["start"]), float(m["end"])))
            done.add(f.stem)
            secs += float(m.get("seconds", float(m["end"]) - float(m["start"])))
    unfinished = {}
    for f in sorted((out / "stages").glob("*.started")):
        if f.stem not in done:
            unfinished[f.stem] = json.loads(f.read_text()).get("start")
    parts = _union(spans, 0.0)  # busy time: only overlapping or touching spans merge
    busy = sum(p[2] for p in parts)
    return {"busy_s": round(busy, 1), "parts": [[round(x, 1) for x in p] for p in _union(spans, gap_s)],
            "job_seconds_sum": round(secs, 1), "jobs_done": len(done), "unfinished": unfinished}


def simulate(jobs, deps, secs: dict[str, float], cpus: int, caps: dict[str, int], barriers: bool = False) -> dict:
    """Event simulation of the runner's choices; returns the wall time and per-stage spans (start, end)."""
    todo = priority(list(jobs), deps)
    stage_of = {j.name: j.stage for j in jobs}
    running: list[tuple[float, str]] = []
    by_name = {j.name: j for j in jobs}
    done: set[str] = set()
    t = 0.0
    span: dict[str, list[float]] = {}
    while todo or running:
        pool = todo
        if barriers:  # only the first stage that still has work
            left = {j.stage for j in todo} | {stage_of[n] for _, n in running}
            first = next(s for s in STAGES if s in left)
            pool = [j for j in todo if j.stage == first]
        for j in startable(pool, [by_name[n] for _, n in running], done, deps, cpus, caps):
            heapq.heappush(running, (t + secs[j.name], j.name))
            todo.remove(j)
            span.setdefault(j.stage, [t, t])
        if not running:
            raise RuntimeError(f"no job can start: {[j.name for j in todo][:5]} (dependencies)")
        t, name = heapq.heappop(running)
        done.add(name)
        span[stage_of[name]][1] = max(span[stage_of[name]][1], t)
    return {"wall_s": t, "stages": span}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="a bora demo output directory (configs/demo.yaml, stages/*.done)")
    p.add_argument("--cpus", type=int, default=0, help="core budget (default: the config's cpus, else 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="DemoConfig field to change before planning (dotted, YAML value), e.g. online.threads=1: "
                        "project the run as the current config would plan it; job times stay as measured")
    p.add_argument("--report", default=None, help="also write bench/results/<REPORT>.{json,md}")
    p.add_argument("--measured", action="store_true",
                   help="print the run's measured wall time so far instead (its parts, from the done markers)")
    p.add_argument("--part-gap", type=float, default=300.0,
                   help="--measured: seconds with nothing running that end a part (default 300)")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    if args.measured:
        if not (out / "stages").is_dir():
            print(f"project_schedule: {out / 'stages'} not found: is {out} a bora demo output?", file=sys.stderr)
            return 2
        print(json.dumps(measured(out, args.part_gap), indent=1))
        return 0
    cfg_path = out / "configs" / "demo.yaml"
    if not cfg_path.exists():
        print(f"project_schedule: {cfg_path} not found: is {out} a bora demo output?", file=sys.stderr)
        return 2
    try:
        cfg = _config(cfg_path, args.set)
    except (ValueError, ConfigError) as e:
        print(f"project_schedule: {e}", file=sys.stderr)
        return 2
    jobs = all_jobs(plan(cfg, out))
    secs, missing = durations(out, [j.name for j in jobs])
    if missing:
        print(f"project_schedule: {len(missing)} job(s) of the plan have no done marker with seconds (e.g. "
              f"{missing[:3]}): the run is incomplete or was planned by another commit", file=sys.stderr)
        return 2
    cpus = args.cpus or cfg.cpus or 2
    caps = {s: stage_parallel(cfg, s) for s in STAGES}
    deps = link(jobs, out)
    graph = simulate(jobs, deps, secs, cpus, caps)
    staged = simulate(jobs, deps, secs, cpus, caps, barriers=True)
    res = {"out": str(out), "set": args.set, "cpus": cpus, "jobs": len(jobs),
           "job_seconds_sum": round(sum(secs.values()), 1),
           "projected_graph_s": round(graph["wall_s"], 1), "projected_stage_by_stage_s": round(staged["wall_s"], 1),
           "graph_stages": {s: [round(a, 1), round(b, 1)] for s, (a, b) in graph["stages"].items()}}
    print(json.dumps(res, indent=1))
    if args.report:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.report}.json").write_text(json.dumps(res, indent=1) + "\n")
        about = __doc__.split("\n\n", 2)[2].strip()
        lines = [f"# Projected wall time of `{out.name}` under the job-graph runner", "", about, "",
                 f"{len(jobs)} jobs, {res['job_seconds_sum'] / 3600:.2f} h of job time, {cpus} cores; config "
                 f"changes: {', '.join(args.set) or 'none'}.", "",
                 "| order | projected wall time |", "| --- | --- |",
                 f"| stage by stage (before) | {staged['wall_s'] / 60:.1f} min |",
                 f"| job graph (demo/run.py) | {graph['wall_s'] / 60:.1f} min |", "",
                 "| stage | starts at (min) | ends at (min) |", "| --- | --- | --- |"]
        lines += [f"| {s} | {a / 60:.1f} | {b / 60:.1f} |" for s, (a, b) in graph["stages"].items()]
        (RESULTS / f"{args.report}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
