"""``bora demo``'s runner: every job of the plan as a ``bora`` subprocess, as one graph (not stage by stage),
logs in ``OUT/logs/``, a done marker per finished job (``--resume``).

**Order.** A job waits for every earlier job of the plan that writes a path it reads (:func:`link`: the
command lines themselves say what a job reads and writes, so nothing is declared twice), plus its
explicit ``needs``. Everything else runs as soon as there is room: an offline row's evaluation while other
rows still train, the online rows as soon as their offline run is done. **Room**: at most ``cpus`` cores
busy (a job counts ``Job.cpus``: its torch threads, or what was measured for a ROS graph) and at most the
stage's ``parallel`` jobs of one stage at a time. Among the jobs that may start, the one with the most jobs
waiting on it (directly or not) first, then plan order. Results do not depend on this order: each job's
inputs are complete before it starts, and its thread count is fixed by the config.

A job also gets a ``.started`` marker when it is launched. A job that has one but no done marker was
stopped part-way (Ctrl-C, a killed machine): before it runs again, :func:`set_aside` moves what that attempt
wrote to ``OUT/stopped/<job>/<n>/`` - its run or output directory, or, for a job that appends episodes to
a dataset other jobs share (``bora sim collect``, ``bora eval --record``), the episodes it added (a collect
group: the ids of its ``--first-episode`` range; otherwise from the first one it added). So a resumed run
never mixes a stopped attempt's partial output into the rerun (a collect group appending its episodes a
second time), and nothing recorded is deleted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bora_trainer.demo.config import REPO_ROOT
from bora_trainer.demo.plan import Job, ensure_exported


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    src = [str(REPO_ROOT / "src" / p) for p in ("bora_policy", "bora_teleop", "bora_trainer", "bora_sim")]
    env["PYTHONPATH"] = os.pathsep.join(src + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "BORA_NUM_THREADS"):
        env[k] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("MUJOCO_GL", "egl")
    return env


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.done"


def started_marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.started"


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def _episode_dir(argv: list[str]) -> Path | None:
    """The dataset a job appends episodes to (shared with other jobs), if any."""
    if argv[:2] == ["sim", "collect"]:
        return Path(_flag(argv, "--out"))
    rec = _flag(argv, "--record")
    return Path(rec) if rec else None


def set_aside(out: Path, job: Job) -> Path | None:
    """Move a stopped earlier attempt's output out of the rerun's way (module docstring); returns where, or
    None when the job has no unfinished attempt."""
    started = started_marker(out, job.name)
    if not started.exists() or marker(out, job.name).exists():
        return None
    eps = _episode_dir(job.argv)
    try:
        first = json.loads(started.read_text()).get("first_episode")
    except ValueError:
        first = None
    if eps is not None and first is None:
        raise RuntimeError(f"bora demo: {started} does not say which episodes the stopped attempt of {job.name} "
                           f"added to {eps}; check that dataset, then delete the marker")
    root = out / "stopped" / job.name
    n = 1 + max([int(p.name) for p in root.glob("*") if p.name.isdigit()], default=0)
    dest = root / str(n)
    dest.mkdir(parents=True)
    last = None  # a collect group with --first-episode: its own id range only (other groups share the dataset)
    if _flag(job.argv, "--first-episode") is not None and _flag(job.argv, "--episodes") is not None:
        last = int(first) + int(_flag(job.argv, "--episodes")) - 1
    if eps is not None and (eps / "episodes").is_dir():
        for f in sorted((eps / "episodes").iterdir()):
            stem = f.name.lstrip(".")
            if (stem.startswith("episode_") and stem[8:14].isdigit() and int(stem[8:14]) >= int(first)
                    and (last is None or int(stem[8:14]) <= last)):
                (dest / "episodes").mkdir(exist_ok=True)
                os.replace(f, dest / "episodes" / f.name)
    target = _flag(job.argv, "--out")
    if target and (eps is None or Path(target) != eps) and Path(target).exists():
        os.replace(target, dest / Path(target).name)
    return dest


def config_digests(out: Path, job: Job) -> dict[str, str]:
    """sha256 of every file under ``OUT/configs`` that ``job`` names (its stage configs: `bora demo` writes them
    afresh at every call, so a resumed job reads the current ones)."""
    import hashlib

    cfg_dir = (out / "configs").resolve()
    res = {}
    for a in job.argv:
        p = Path(a)
        if p.is_absolute() and p.is_file() and p.resolve().parent == cfg_dir:
            res[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return res


def changed_since_done(jobs: list[Job], out: Path) -> list[str]:
    """Jobs with a done marker whose command line, or whose stage config's content, differs from what this plan
    would run, one line each (``--resume`` would mix their results with the new plan's). Markers written without
    them (``--skip-collect``'s, older runs') are not compared."""
    lines = []
    for j in jobs:
        m = marker(out, j.name)
        if not m.exists():
            continue
        try:
            done = json.loads(m.read_text() or "{}")
        except ValueError:
            lines.append(f"{j.name}: its done marker {m} is not JSON")
            continue
        if "argv" in done and done["argv"] != j.argv:
            diff = next((f"{a!r} -> {b!r}" for a, b in zip(done["argv"], j.argv) if a != b),
                        f"{len(done['argv'])} -> {len(j.argv)} arguments")
            lines.append(f"{j.name}: ran as `bora {' '.join(done['argv'])}`, the plan now differs ({diff})")
        elif "configs" in done and done["configs"] != config_digests(out, j):
            names = sorted(k for k in set(done["configs"]) | set(config_digests(out, j))
                           if done["configs"].get(k) != config_digests(out, j).get(k))
            lines.append(f"{j.name}: its stage config changed since it ran ({', '.join(names)})")
    return lines


def stale_selections(jobs: list[Job], out: Path, deps: dict[str, list[str]]) -> list[str]:
    """``--resume``: one line per offline row whose deployed checkpoint is not this plan's, where finished jobs
    would mix it with the plan's results (``RUN/policy`` is what every later job of the row reads):

    * a finished ``bora select`` job whose ``RUN/selection.json`` does not match its command line or the run's
      checkpoints any more (:func:`bora_trainer.select.selection_mismatch`: rerun by hand with other settings,
      or the run trained on);
    * a finished offline row with a ``selection.json`` where this plan selects none (``offline.select.every``
      0 now);
    * a ``bora select`` job not run yet while jobs that read its run have finished (selection turned on after
      they ran).

    ``deps``: :func:`link` of the plan. Until 2026-12-07 --resume kept such results (found in review)."""
    from bora_trainer import select as sel

    lines = []
    selects = {_flag(j.argv, "--run"): j for j in jobs if j.argv[:1] == ["select"]}
    for j in jobs:
        if not (isinstance(j.after, tuple) and j.after[0] == "export") or not marker(out, j.name).exists():
            continue
        run = Path(j.after[1])
        sj = selects.get(str(run))
        if sj is None:
            if (run / sel.SELECTION).is_file():
                lines.append(f"{j.name}: {run / sel.SELECTION} deploys a checkpoint chosen by an earlier "
                             "`bora select`, but this plan selects none (offline.select.every 0)")
        elif marker(out, sj.name).exists():
            why = sel.selection_mismatch(run, sel.selection_settings(sel.build_parser().parse_args(sj.argv[1:])))
            if why:
                lines.append(f"{sj.name}: {why}")
        else:
            read = [n for n, ds in deps.items() if sj.name in ds and marker(out, n).exists()]
            if read:
                more = f" and {len(read) - 1} more" if len(read) > 1 else ""
                lines.append(f"{sj.name}: not run yet, but {read[0]}{more} finished reading {run} without this "
                             "selection")
    return lines


def _mark_started(out: Path, job: Job) -> None:
    from bora_policy.common.episodes import next_episode_id

    eps = _episode_dir(job.argv)
    path = started_marker(out, job.name)
    tmp = path.with_suffix(".tmp")
    first = _flag(job.argv, "--first-episode")
    if eps is not None:
        first = int(first) if first is not None else next_episode_id(eps)
    tmp.write_text(json.dumps({"argv": job.argv, "first_episode": first, "start": time.time()}))
    os.replace(tmp, path)


# values of these flags are paths a job writes; every other absolute path under OUT in its command line is
# one it reads. `bora select` also writes into the run it reads (RUN/policy: the deployed checkpoint).
WRITE_FLAGS = ("--out", "--record")


def writes(job: Job) -> list[Path]:
    paths = [Path(v) for f in WRITE_FLAGS if (v := _flag(job.argv, f))]
    if job.argv[:1] == ["select"] and _flag(job.argv, "--run"):
        paths.append(Path(_flag(job.argv, "--run")))
    return paths


def reads(job: Job, out: Path) -> list[Path]:
    return [Path(t) for i, t in enumerate(job.argv)
            if not (i and job.argv[i - 1] in WRITE_FLAGS) and Path(t).is_absolute() and Path(t).is_relative_to(out)]


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _shares_dataset(a: Job, b: Job) -> bool:
    """Two collect groups filling one dataset in the id ranges given by --first-episode (``bora sim
    collect`` refuses taken ids): they may write it at the same time."""
    return all(j.argv[:2] == ["sim", "collect"] and _flag(j.argv, "--first-episode") for j in (a, b))


def link(jobs: list[Job], out: Path) -> dict[str, list[str]]:
    """name -> the jobs it waits for: its ``needs`` and every EARLIER job (plan order) that writes a path
    equal to, inside or containing one it reads (or, the other way round, reads or writes one it writes:
    an earlier reader is never overwritten under it); module docstring."""
    out = Path(out)
    r = {j.name: reads(j, out) for j in jobs}
    w = {j.name: writes(j) for j in jobs}
    deps: dict[str, list[str]] = {}
    for i, j in enumerate(jobs):
        d = list(j.needs)
        for e in jobs[:i]:
            hit = any(_overlap(a, b) for a in r[j.name] for b in w[e.name]) or any(
                _overlap(a, b) for a in w[j.name] for b in r[e.name]) or (
                not _shares_dataset(e, j) and any(_overlap(a, b) for a in w[j.name] for b in w[e.name]))
            if hit and e.name not in d:
                d.append(e.name)
        deps[j.name] = d
    return deps


def direct_needs(deps: dict[str, list[str]], name: str) -> list[str]:
    """``deps[name]`` without the jobs it also waits for through another of them (for display)."""
    def above(n: str, seen: set[str]) -> set[str]:
        for d in deps.get(n, ()):
            if d not in seen:
                seen.add(d)
                above(d, seen)
        return seen

    mine = deps.get(name, [])
    through = set().union(*[above(d, set()) for d in mine]) if mine else set()
    return [d for d in mine if d not in through]


def dependents(deps: dict[str, list[str]]) -> dict[str, int]:
    """name -> how many jobs wait on it, directly or not."""
    children: dict[str, set[str]] = {n: set() for n in deps}
    for n, ds in deps.items():
        for d in ds:
            children.setdefault(d, set()).add(n)
    memo: dict[str, set[str]] = {}

    def below(n: str) -> set[str]:
        if n not in memo:
            memo[n] = set()
            for c in children.get(n, ()):
                memo[n] |= {c} | below(c)
        return memo[n]

    return {n: len(below(n)) for n in deps}


def startable(todo: list[Job], running: list[Job], done: set[str], deps: dict[str, list[str]], cpus: int,
              caps: dict[str, int]) -> list[Job]:
    """The jobs of ``todo`` (in priority order) that start now, beside ``running``: every job it waits for
    is in ``done``, its cores fit in ``cpus`` (a job counts at most ``cpus``, so a wider one runs alone) and
    its stage has fewer than ``caps[stage]`` jobs running (module docstring). A job that could start but for
    its cores holds back every job after it, so narrower jobs never keep a wider one waiting for ever (a
    2-thread trainer behind a stream of 1-thread evaluations). Pure: also what ``bench/project_schedule.py``
    replays."""
    busy = sum(min(j.cores, cpus) for j in running)
    per_stage: dict[str, int] = {}
    for j in running:
        per_stage[j.stage] = per_stage.get(j.stage, 0) + 1
    out = []
    for j in todo:
        c = min(j.cores, cpus)
        if per_stage.get(j.stage, 0) >= caps.get(j.stage, 1) or any(n not in done for n in deps.get(j.name, j.needs)):
            continue
        if busy + c > cpus:
            break
        out.append(j)
        busy += c
        per_stage[j.stage] = per_stage.get(j.stage, 0) + 1
    return out


def priority(jobs: list[Job], deps: dict[str, list[str]]) -> list[Job]:
    """``jobs`` in the order the runner considers them: most jobs waiting on it first, then plan order."""
    rank = dependents(deps)
    order = {j.name: i for i, j in enumerate(jobs)}
    return sorted(jobs, key=lambda j: (-rank.get(j.name, 0), order[j.name]))


def _stop_running(running: dict, grace_s: float = 90.0, forward: bool = True) -> None:
    """SIGTERM to every running job (each unwinds: an online run stops its graph), up to ``grace_s`` for all of
    them to exit, then SIGKILL. No done marker is written: ``--resume`` sets their output aside. ``forward`` False
    (a Ctrl-C: the terminal sent SIGINT to the jobs too) waits 5 s first; a job that began its cleanup on SIGINT
    ignores the SIGTERM (the CLI: one interrupt unwinds, later SIGTERMs are ignored)."""
    if not forward:  # they got the terminal's SIGINT: a few seconds to exit on their own, then SIGTERM all the same
        t_own = time.monotonic() + 5.0
        while time.monotonic() < t_own and any(p.poll() is None for p, *_ in running.values()):
            time.sleep(0.1)
    for proc, *_ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    t_end = time.monotonic() + grace_s
    for name, (proc, _j, _t0, fh) in running.items():
        try:
            proc.wait(timeout=max(0.1, t_end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        fh.write(f"\nbora demo: stopped (exit code {proc.returncode}); --resume sets this attempt's output aside\n")
        fh.close()
        print(f"bora demo: stopped {name} (exit code {proc.returncode})", file=sys.stderr, flush=True)


def run_jobs(jobs: list[Job], out: Path, cpus: int, caps: dict[str, int], assume_done: set[str] = frozenset(),
             progress: bool = True, deps: dict[str, list[str]] | None = None) -> dict:
    """Run ``jobs`` as a graph (module docstring); skip those with a done marker. ``caps``: stage -> jobs of
    that stage at a time; ``assume_done``: jobs outside this run (stages not selected) taken as done;
    ``deps``: :func:`link` of the whole plan (default: of ``jobs``). Returns ``jobs``, ``skipped``,
    ``job_seconds``, ``spans`` (name -> [start, end] in seconds since the epoch) and ``failed``.
    On KeyboardInterrupt (Ctrl-C, or SIGTERM: the ``bora`` CLI unwinds on it) the running jobs are stopped
    first (:func:`_stop_running`), so none outlives the runner, then it propagates."""
    running: dict[str, tuple[subprocess.Popen, Job, float, Any]] = {}
    try:
        return _run_jobs(jobs, out, cpus, caps, assume_done, progress, deps, running)
    except KeyboardInterrupt as e:  # args: the signal's name from the CLI's SIGTERM handler; none for a Ctrl-C
        _stop_running(running, forward=bool(e.args))
        raise


def _run_jobs(jobs: list[Job], out: Path, cpus: int, caps: dict[str, int], assume_done: set[str],
              progress: bool, deps: dict[str, list[str]] | None, running: dict) -> dict:
    deps = deps if deps is not None else link(jobs, out)
    names = {j.name for j in jobs}
    done_names = set(assume_done) | {j.name for j in jobs if marker(out, j.name).exists()}
    todo = priority([j for j in jobs if j.name not in done_names], deps)
    skipped = len(jobs) - len(todo)
    failed: list[dict] = []
    for j in todo:  # a need that no job of the plan fulfils can never be met: say so instead of waiting
        unknown = [n for n in deps.get(j.name, j.needs) if n not in names and n not in done_names]
        if unknown:
            failed.append({"job": j.name, "rc": -1, "log": "", "error": f"unsatisfiable dependencies: {unknown}"})
    if failed:
        return {"jobs": len(jobs), "skipped": skipped, "job_seconds": {}, "spans": {}, "failed": failed}
    bar = None
    if progress:
        from tqdm import tqdm

        # no rate or ETA: the jobs take from seconds (an evaluation) to minutes (a training); each running
        # job's own progress line (updates/s, ETA) is in the postfix
        bar = tqdm(total=len(jobs), initial=skipped, desc="bora demo", unit="job", dynamic_ncols=True,
                   file=sys.stderr, bar_format="{desc}: {n_fmt}/{total_fmt} jobs done [{elapsed}] {postfix}")
    times: dict[str, float] = {}
    spans: dict[str, list[float]] = {}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    last_label = None
    while todo or running:
        for j in [] if failed else startable(todo, [r[1] for r in running.values()], done_names, deps, cpus, caps):
            log = out / "logs" / f"{j.name}.log"
            try:
                moved = set_aside(out, j)
            except RuntimeError as e:  # a marker we cannot read: stop rather than mix data
                log.write_text(f"{e}\n")
                failed.append({"job": j.name, "rc": -1, "log": str(log)})
                break
            _mark_started(out, j)
            fh = log.open("a")  # a stopped attempt's log stays above this one (nothing recorded is deleted)
            fh.write("$ bora " + " ".join(j.argv) + "\n")
            if moved is not None:
                fh.write(f"bora demo: an earlier attempt of this job stopped part-way; its output moved to {moved}\n")
            fh.flush()
            proc = subprocess.Popen([sys.executable, "-m", "bora_trainer.cli", *j.argv], stdout=fh,
                                    stderr=subprocess.STDOUT, env=_env(j.threads), cwd=str(REPO_ROOT))
            running[j.name] = (proc, j, time.time(), fh)
            todo.remove(j)
        if bar is not None:  # the running jobs' latest progress line (updates/s, losses, ETA)
            from bora_trainer.progress import last_progress

            info = [(n, last_progress(out / "logs" / f"{n}.log")) for n in sorted(running)]
            label = ", ".join(f"{n} [{p.split(': ', 1)[-1]}]" if p else n for n, p in info)
            if label != last_label:
                bar.set_postfix_str(label)
                last_label = label
        time.sleep(0.5)
        for name, (proc, j, t0, fh) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            fh.close()
            del running[name]
            log = out / "logs" / f"{name}.log"
            if rc == 0 and j.after is not None and j.after[0] == "export":
                try:
                    if ensure_exported(j.after[1], j.after[2]):
                        with log.open("a") as f:
                            f.write("bora demo: exported policy/ + critic/ from the latest checkpoint\n")
                except Exception as e:  # noqa: BLE001 - reported as the job's failure
                    with log.open("a") as f:
                        f.write(f"bora demo: export failed: {type(e).__name__}: {e}\n")
                    rc = 1
            t1 = time.time()
            times[name] = t1 - t0
            spans[name] = [t0, t1]
            if rc != 0:
                failed.append({"job": name, "rc": rc, "log": str(log)})
                continue
            marker(out, name).write_text(json.dumps({"seconds": times[name], "argv": j.argv, "start": t0, "end": t1,
                                                 "configs": config_digests(out, j)}))
            done_names.add(name)
            if bar is not None:
                bar.update(1)
        if failed and not running:
            break
        if todo and not running and not failed and all(
            any(n not in done_names for n in deps.get(j.name, j.needs)) for j in todo
        ):
            failed.append({"job": todo[0].name, "rc": -1, "log": "", "error": "unsatisfiable dependencies"})
            break
    if bar is not None:
        bar.set_postfix_str("")
        bar.close()
    return {"jobs": len(jobs), "skipped": skipped, "job_seconds": times, "spans": spans, "failed": failed}
