"""``bora demo``'s runner: the jobs of one stage as ``bora`` subprocesses (at most ``parallel`` at a time,
honouring ``needs``), logs in ``OUT/logs/``, a done marker per finished job (``--resume``).

A job also gets a ``.started`` marker when it is launched. A job that has one but no done marker was
stopped part-way (Ctrl-C, a killed machine): before it runs again, :func:`set_aside` moves what that attempt
wrote to ``OUT/stopped/<job>/<n>/`` - its run or output directory, or, for a job that appends episodes to
a dataset other jobs share (``bora sim collect``, ``bora eval --record``), the episodes from the first one it
added. So a resumed run never mixes a stopped attempt's partial output into the rerun (a collect group
appending its episodes a second time), and nothing recorded is deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bora_trainer.demo.config import REPO_ROOT, STAGES
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
    if eps is not None and (eps / "episodes").is_dir():
        for f in sorted((eps / "episodes").iterdir()):
            stem = f.name.lstrip(".")
            if stem.startswith("episode_") and stem[8:14].isdigit() and int(stem[8:14]) >= int(first):
                (dest / "episodes").mkdir(exist_ok=True)
                os.replace(f, dest / "episodes" / f.name)
    target = _flag(job.argv, "--out")
    if target and (eps is None or Path(target) != eps) and Path(target).exists():
        os.replace(target, dest / Path(target).name)
    return dest


def _mark_started(out: Path, job: Job) -> None:
    from bora_policy.common.episodes import next_episode_id

    eps = _episode_dir(job.argv)
    path = started_marker(out, job.name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"argv": job.argv, "first_episode": next_episode_id(eps) if eps is not None else None}))
    os.replace(tmp, path)


def run_stage(stage: str, jobs: list[Job], out: Path, parallel: int, index: int, progress: bool = True) -> dict:
    """Run ``jobs`` (at most ``parallel`` at a time, honouring ``needs``); skip those with a done marker."""
    todo = [j for j in jobs if not marker(out, j.name).exists()]
    skipped = len(jobs) - len(todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), initial=skipped, desc=f"[{index}/{len(STAGES)}] {stage}", unit="job",
                   dynamic_ncols=True, file=sys.stderr)
    running: dict[str, tuple[subprocess.Popen, Job, float, Any]] = {}
    failed: list[dict] = []
    times: dict[str, float] = {}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    done_names = {j.name for j in jobs if marker(out, j.name).exists()}
    last_label = None
    while todo or running:
        for j in list(todo):
            if len(running) >= parallel or failed:
                break
            if any(n not in done_names for n in j.needs):
                continue
            log = out / "logs" / f"{j.name}.log"
            try:
                moved = set_aside(out, j)
            except RuntimeError as e:  # a marker we cannot read: stop rather than mix data
                log.write_text(f"{e}\n")
                failed.append({"job": j.name, "rc": -1, "log": str(log)})
                break
            _mark_started(out, j)
            fh = log.open("w")
            fh.write("$ bora " + " ".join(j.argv) + "\n")
            if moved is not None:
                fh.write(f"bora demo: an earlier attempt of this job stopped part-way; its output moved to {moved}\n")
            fh.flush()
            proc = subprocess.Popen([sys.executable, "-m", "bora_trainer.cli", *j.argv], stdout=fh,
                                    stderr=subprocess.STDOUT, env=_env(j.threads), cwd=str(REPO_ROOT))
            running[j.name] = (proc, j, time.time(), fh)
            todo.remove(j)
        label = ", ".join(sorted(running))
        if bar is not None:  # the running jobs' latest progress line (updates/s, losses, ETA)
            from bora_trainer.progress import last_progress

            info = [(n, last_progress(out / "logs" / f"{n}.log")) for n in sorted(running)]
            label = ", ".join(f"{n} [{p.split(': ', 1)[-1]}]" if p else n for n, p in info)
        if bar is not None and label != last_label:
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
            times[name] = time.time() - t0
            if rc != 0:
                failed.append({"job": name, "rc": rc, "log": str(log)})
                continue
            marker(out, name).write_text(json.dumps({"seconds": times[name], "argv": j.argv}))
            done_names.add(name)
            if bar is not None:
                bar.update(1)
        if failed and not running:
            break
        if todo and not running and not failed and all(any(n not in done_names for n in j.needs) for j in todo):
            failed.append({"job": todo[0].name, "rc": -1, "log": "", "error": "unsatisfiable dependencies"})
            break
    if bar is not None:
        bar.set_postfix_str("")
        bar.close()
    return {"jobs": len(jobs), "skipped": skipped, "job_seconds": times, "failed": failed}
