"""``bora demo``'s runner: the jobs of one stage as ``bora`` subprocesses (at most ``parallel`` at a time,
honouring ``needs``), logs in ``OUT/logs/``, a done marker per finished job (``--resume``)."""

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
            fh = log.open("w")
            fh.write("$ bora " + " ".join(j.argv) + "\n")
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
