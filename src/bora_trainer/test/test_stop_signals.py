"""Stopping a run leaves nothing running: SIGTERM unwinds a `bora` command (its `finally` blocks run), `bora demo`
stops its running jobs before it exits, and a `bora up` started for a job dies with that job even on SIGKILL.
Real processes and real signals throughout (the recorder is a real rclpy node on this run's loopback domain)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PY = sys.executable


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by its new parent, counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_sigterm_unwinds_once_and_runs_cleanup():
    """Python's default for SIGTERM ends a process without its `finally` blocks; the CLI turns the first SIGTERM
    into KeyboardInterrupt and ignores a second one while the cleanup runs."""
    code = textwrap.dedent("""
        import time
        from bora_trainer import cli
        cli.unwind_on_sigterm()
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt as e:
            print("interrupted by", e.args[0], flush=True)
            time.sleep(1.0)  # the cleanup; a second SIGTERM arrives meanwhile
            print("cleanup done", flush=True)
    """)
    p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.stdout.readline().strip() == "interrupted by SIGTERM"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert out.strip() == "cleanup done" and p.returncode == 0


def test_after_a_ctrl_c_a_sigterm_does_not_abort_the_cleanup():
    """A Ctrl-C reaches every job of `bora demo` (the terminal's process group); the runner then SIGTERMs the ones
    still running. That SIGTERM must not raise inside the cleanup the SIGINT started (found in review)."""
    code = textwrap.dedent("""
        import signal, time
        from bora_trainer import cli
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (a background test run inherits it ignored)
        cli.unwind_on_sigterm()
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt as e:
            print("interrupted", e.args, flush=True)
            time.sleep(1.0)
            print("cleanup done", flush=True)
    """)
    p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGINT)
    assert p.stdout.readline().strip() == "interrupted ()"  # a Ctrl-C: no signal name (the runner waits, then TERMs)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert out.strip() == "cleanup done" and p.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_process_started_for_a_job_dies_with_it_even_on_sigkill(tmp_path):
    """`bora up` under `bora train online --env ros` runs in its own session: a kill of the job's process group
    does not reach it. With BORA_DIE_WITH_PARENT the kernel sends it SIGTERM when the job dies, SIGKILL included;
    the variable is not passed on to its own children."""
    child = textwrap.dedent("""
        import os, sys, time
        from bora_trainer import cli
        from bora_trainer.supervisor import PARENT_ENV, die_with_parent_from_env
        cli.unwind_on_sigterm()
        assert die_with_parent_from_env() and PARENT_ENV not in os.environ
        try:
            print("armed", flush=True)
            time.sleep(60)
        except KeyboardInterrupt as e:
            open(sys.argv[1], "w").write(e.args[0])
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        env = {{**os.environ, "BORA_DIE_WITH_PARENT": str(os.getpid())}}
        c = subprocess.Popen([sys.executable, "-c", {child!r}, sys.argv[1]], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, text=True)
        assert c.stdout.readline().strip() == "armed"
        print(c.pid, flush=True)
        time.sleep(60)
    """)
    note = tmp_path / "child_got"
    p = subprocess.Popen([PY, "-c", parent, str(note)], stdout=subprocess.PIPE, text=True)
    child_pid = int(p.stdout.readline())
    assert _alive(child_pid)
    p.kill()  # SIGKILL: the parent runs no code of its own
    p.wait()
    _wait_for(lambda: not _alive(child_pid), 10, "the child to end with its parent")
    assert note.read_text() == "SIGTERM"


def test_demo_runner_stops_its_running_job_on_sigterm(tmp_path):
    """`bora demo` killed with SIGTERM: the running job (a real `bora record`, which closes its bag on SIGTERM) is
    stopped before the runner exits, gets no done marker, and its log says so; nothing of it keeps running."""
    out, bag = tmp_path / "out", tmp_path / "bag"
    runner = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from bora_trainer import cli
        from bora_trainer.demo import plan as dp, run as dr
        cli.unwind_on_sigterm()
        job = dp.Job("rec", ["record", "-o", {str(bag)!r}], stage="collect")
        try:
            dr.run_jobs([job], Path({str(out)!r}), 1, {{}}, progress=False)
        except KeyboardInterrupt:
            sys.exit(130)
    """)
    p = subprocess.Popen([PY, "-c", runner], stderr=subprocess.PIPE, text=True)
    started = out / "stages" / "rec.started"
    _wait_for(started.exists, 30, "the job to start")
    job_pid = None

    def recorder_pid():
        nonlocal job_pid
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    cmd = (d / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if str(bag).encode() in cmd and int(d.name) != p.pid:
                    job_pid = int(d.name)
                    return True
        return False

    _wait_for(recorder_pid, 30, "the recorder process")
    _wait_for(lambda: bag.is_dir(), 30, "the recorder's bag")
    time.sleep(1.0)  # its subscriptions and the bag's first records
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    assert "bora demo: stopped rec" in err
    assert not _alive(job_pid)
    assert (bag / "metadata.yaml").is_file()  # the recorder closed its bag: it was stopped, not killed
    assert not (out / "stages" / "rec.done").exists()
    assert "bora demo: stopped (exit code" in (out / "logs" / "rec.log").read_text()
    assert json.loads(started.read_text())  # the started marker stays: --resume sets the attempt aside
