"""``bora demo``: the whole BORA pipeline on the simulated robot (what ``make demo`` runs).

    bora demo                                   # config/demo.yaml -> demo_out/ (report: demo_out/report/)
    bora demo --quick --out /tmp/demo           # tiny smoke configuration (~4 min on 2 CPU cores)
    bora demo --config config/full_protocol.yaml --out runs/full   # all five tasks, >= 50 trials
    bora demo --resume                          # continue a stopped demo: finished jobs are kept
    bora demo --fresh                           # delete the previous outputs in OUT and start over

An OUT that holds a previous run's outputs is never deleted silently: without ``--resume`` or ``--fresh``
the command stops with a one-line error and changes nothing (recorded data and trained runs stay). ``--fresh``
with ``--stages`` that leave out ``collect`` is refused too: it would delete the data those stages read.

Stages (the REAL commands as subprocesses of the ``bora`` command, logs in ``OUT/logs/``). They group the
jobs but are not barriers: a job starts once the jobs whose output it reads are done and its cores are free
(``demo/run.py``), so stages overlap:

1. ``collect``: ``bora sim collect`` of scripted-expert demonstrations per task, mixed quality (groups of
   episodes with the expert's noise / hesitation / suboptimal knobs), sizes = Table 4 x ``collect.scale``;
2. ``warmup`` (when ``offline.warmup.updates`` > 0): ONE shared imitation warm-up per task (``bora train
   offline --algo cp-bc``, optionally on the clean demonstrations only), the common pretrained VLA every
   offline row starts from (as in the paper, where every row fine-tunes the same pretrained VLA): the rows
   run with ``--init-from`` that run (the VLM, and the consistency expert for the consistency rows; the
   diffusion row gets the VLM only);
3. ``offline``: ``bora train offline`` of every offline row (default: the registry's offline demo rows
   diffusion-bc, cp-bc, cp-decoupled-critic, bora; config/demo.yaml adds aloe, habc), ``offline.parallel``
   trainings at a time, ``offline.updates`` updates each;
4. ``online``: ``bora train online --env ros`` of every online row (``online.algo`` = bora-residual, BORA-Full
   = Algorithm 1: frozen BORA-Offline VLA + residual actor, RLPD; ``online.extra_algos``, default the
   registry's other online demo rows: bc-residual), the scripted operator as the human, ``rounds`` x
   ``episodes_per_round``, through the ROS 2 graph
   (``bora up --sim --with trainer``: the trainer node records rosbag2, learns and hot-reloads the policy);
   ``online.env: sim`` runs the same learner in-process instead (faster, several tasks at a time);
5. ``eval``: ``bora eval`` of every run on every object set (standard, unseen);
6. ``report``: ``bora report`` into ``OUT/report/`` (report.md, success_bars.png, value_profile.png).

Every finished job writes a marker ``OUT/stages/<job>.done`` (and every finished stage
``OUT/stages/<stage>.done``), so ``--resume`` skips what is already done. ``OUT/summary.json`` and
``OUT/summary.md`` hold the stage times, the success table and the paper's ordering claims as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from bora_trainer.config_io import ConfigError
from bora_trainer.demo.config import DEFAULT_CONFIG, OWNED_DIRS, REPO_ROOT, STAGES, TASKS, load_demo_config
from bora_trainer.demo.plan import all_jobs, plan, stage_parallel, write_stage_configs
from bora_trainer.demo.run import (
    changed_since_done,
    direct_needs,
    link,
    marker,
    run_jobs,
    stale_selections,
    started_marker,
    tail,
)
from bora_trainer.demo.summary import mark_running, stage_info, write_summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bora demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help=f"demo YAML (DemoConfig fields; default {DEFAULT_CONFIG}, or built-in defaults without it)")
    p.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--tasks", nargs="+", default=None, choices=TASKS, help="override the config's tasks")
    p.add_argument("--quick", action="store_true", help="tiny smoke configuration (~4 min on 2 CPU cores)")
    p.add_argument("--resume", action="store_true", help="keep finished jobs (done markers) and continue")
    p.add_argument("--fresh", action="store_true",
                   help="delete OUT's previous outputs (data, runs, eval, report, ...) first; without it (or "
                        "--resume) an OUT holding a previous run is refused, nothing deleted")
    p.add_argument("--skip-collect", action="store_true",
                   help="reuse OUT/data/<task> as collected (implies --resume for the other stages' done jobs)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="run only these stages")
    p.add_argument("--plan", action="store_true", help="print the jobs of every stage, each with the jobs it waits "
                   "for, and exit")
    p.add_argument("--tuning", action="store_true",
                   help="evidence protocol: evaluate on the config's tuning seeds (protocol.tuning_seed0), never "
                        "on its evaluation seeds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def previous_outputs_error(out: Path, resume: bool, fresh: bool, stages: list[str]) -> str | None:
    """Why this invocation must not touch ``out`` (a one-line message), or None. A fresh start deletes
    ``OWNED_DIRS``, so it needs ``--fresh`` where any of them holds something, and may not delete the data
    that ``--stages`` without ``collect`` would read."""
    if resume and fresh:
        return "--fresh deletes what --resume (or --skip-collect) keeps: give one of them"
    if resume:
        return None
    held = [d for d in OWNED_DIRS if (out / d).is_dir() and any((out / d).iterdir())]
    if fresh and "collect" not in stages and (out / "data").is_dir():
        return (f"--fresh with --stages {' '.join(stages)} would delete {out / 'data'}, which those stages "
                "read: use --resume to run them on the previous outputs")
    if held and not fresh:
        return (f"--out {out} holds a previous run ({', '.join(d + '/' for d in held)}): --resume continues it "
                "(finished jobs kept), --fresh deletes it first; nothing was changed")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # DDS stays on this machine with a per-run domain, before anything can start a ROS process
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    config = args.config
    if config is None and (REPO_ROOT / DEFAULT_CONFIG).exists():
        config = str(REPO_ROOT / DEFAULT_CONFIG)
    try:
        cfg = load_demo_config(config, quick=args.quick, tasks=args.tasks)
    except ConfigError as e:
        print(f"bora demo: {e}", file=sys.stderr)
        return 2
    if args.tuning:
        if not cfg.protocol.enabled:
            print("bora demo: --tuning needs a config with protocol.enabled: true", file=sys.stderr)
            return 2
        cfg.protocol.tuning = True
    out = Path(args.out).resolve()
    pl = plan(cfg, out)
    if args.plan:
        deps = link(all_jobs(pl), out)
        for s in STAGES:
            print(f"{s} (at most {stage_parallel(cfg, s)} at a time):")
            for j in pl.stages[s]:
                print(f"  [{j.name}] bora " + " ".join(j.argv))
                if deps[j.name]:
                    print("      after: " + ", ".join(direct_needs(deps, j.name)))
        return 0
    resume = args.resume or args.skip_collect
    err = previous_outputs_error(out, resume, args.fresh, args.stages)
    if err:
        print(f"bora demo: {err}", file=sys.stderr)
        return 2
    if args.skip_collect:
        missing = [t for t in cfg.tasks if not (out / "data" / t / "meta.json").exists()]
        if missing:
            print(f"bora demo: --skip-collect: no dataset at {out / 'data'}/{{{','.join(missing)}}}", file=sys.stderr)
            return 2
        (out / "stages").mkdir(parents=True, exist_ok=True)
        for j in pl.stages["collect"]:
            marker(out, j.name).write_text(json.dumps({"seconds": 0.0, "reused": True}))
    if not resume:
        for d in OWNED_DIRS:
            shutil.rmtree(out / d, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_stage_configs(cfg, out)
    print(f"bora demo: tasks {', '.join(cfg.tasks)}, offline rows {', '.join(cfg.offline.algos)}, "
          f"online {'on' if cfg.online.enabled else 'off'} -> {out}  (logs: {out / 'logs'})", file=sys.stderr)
    t_all = time.time()
    info: dict[str, dict] = {}
    prev = out / "summary.json"
    if resume and prev.exists():
        try:
            info = json.loads(prev.read_text()).get("stages", {})
        except ValueError as e:
            print(f"bora demo: {prev} is not JSON ({e}): move it away to resume (its stage times are then lost)",
                  file=sys.stderr)
            return 2
    order = all_jobs(pl)
    deps = link(order, out)
    selected = [j for j in order if j.stage in args.stages]
    changed = changed_since_done([j for j in order if j.stage != "report"], out) if resume else []
    changed += stale_selections(order, out, deps) if resume else []  # RUN/policy from another selection
    if changed:
        print(f"bora demo: --resume: {len(changed)} finished job(s) ran with another plan than this call's; their "
              "results would be mixed with the new ones. Restore the config and flags they ran with, or start "
              "over with --fresh:\n  " + "\n  ".join(changed[:20]) + ("\n  ..." if len(changed) > 20 else ""),
              file=sys.stderr)
        return 2
    mark_running(out)  # after every refusal: a refused call ran nothing
    for j in selected:
        if j.stage == "report":  # always rebuilt from whatever evaluations exist
            marker(out, j.name).unlink(missing_ok=True)
            started_marker(out, j.name).unlink(missing_ok=True)  # a rebuild, not a stopped attempt
    cpus = cfg.cpus or os.cpu_count() or 1
    res = run_jobs(selected, out, cpus, {s: stage_parallel(cfg, s) for s in STAGES},
                   assume_done={j.name for j in order if j.stage not in args.stages},
                   progress=not args.no_progress, deps=deps)
    info.update(stage_info(pl, [s for s in STAGES if s in args.stages], res, out, t_all, info))
    ok = not res["failed"]
    for f in res["failed"]:
        print(f"bora demo: job {f['job']} failed (exit {f['rc']}){': ' + f['error'] if f.get('error') else ''}; "
              f"log {f['log'] or '-'}", file=sys.stderr)
        if f.get("log"):
            print(tail(Path(f["log"])), file=sys.stderr)
    summary = write_summary(out, cfg, info, time.time() - t_all, ok)
    print(summary["text"])
    if ok:
        print(f"\nbora demo: done in {summary['total_seconds'] / 60:.1f} min; report {summary['report']}")
    else:
        print("\nbora demo: stopped; fix the failure and rerun with --resume", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
