"""The `bora up` supervisor on real child processes (no ROS): restart with back-off, critical nodes stop
the graph, a finished node is left alone, and `--no-respawn` keeps the old any-exit-stops behaviour.
The same supervisor under a live graph (kill -9 of the policy): bora_policy/test/test_graph_faults.py.
"""

from __future__ import annotations

import io
import os
import re
import signal
import sys
import time

import pytest

from bora_policy.graph import NODES, RESPAWN_DELAY_S, RESPAWN_MAX_RETRIES
from bora_trainer.supervisor import RestartPolicy, Supervisor, describe_exit
from bora_trainer.up import main as up_main

# prints "ready" once it runs its own code: a SIGINT during the interpreter's start-up ends it with exit code 1
# instead of -SIGINT (CI saw that when stop_all came right after a restart), so tests that check stop codes wait
SLEEP = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]
CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
DONE = [sys.executable, "-c", "print('done')"]


def run_until(sup: Supervisor, pred, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        why = sup.poll()
        if why is not None:
            return why
        if pred():
            return None
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def wait_ready(sup: Supervisor, out: io.StringIO, name: str, count: int = 1, timeout: float = 30.0) -> None:
    """Poll ``sup`` until node ``name`` printed "ready" ``count`` times in all (a restart prints it again)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert sup.poll() is None
        if len(re.findall(rf"^\[{name}\s*\] ready$", out.getvalue(), flags=re.M)) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{name} did not print ready {count} time(s): {out.getvalue()[-1000:]}")


def poll_until_stop(sup: Supervisor, timeout: float = 30.0) -> str | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        why = sup.poll()
        if why is not None:
            return why
        time.sleep(0.005)
    return None


def test_restart_policy_back_off_closed_form():
    p = RestartPolicy(delay_s=2.0, max_delay_s=30.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    with pytest.raises(ValueError):
        RestartPolicy(delay_s=-1.0)
    with pytest.raises(ValueError):
        RestartPolicy(max_restarts=-1)
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(3) == "exit code 3"


def test_graph_roles_keep_the_safety_path_alive():
    roles = {n.name: (n.critical, n.respawn) for n in NODES}
    assert roles["teleop"] == (True, False) and roles["sim_bridge"] == (True, False)
    assert roles["policy"] == (False, True) and roles["sync"] == (False, True) and roles["trainer"] == (False, True)
    assert RESPAWN_DELAY_S > 0 and RESPAWN_MAX_RETRIES >= 1


def test_killed_node_is_restarted_after_the_delay_and_the_critical_node_keeps_running():
    out = io.StringIO()
    sup = Supervisor(out=out, policy=RestartPolicy(delay_s=0.5, max_delay_s=4.0, max_restarts=3))
    env = dict(os.environ)
    try:
        arb = sup.start("teleop", SLEEP, env, critical=True)
        pol = sup.start("policy", SLEEP, env, respawn=True)
        wait_ready(sup, out, "teleop")
        wait_ready(sup, out, "policy")
        t_kill = time.monotonic()
        os.kill(pol.pid, signal.SIGKILL)
        assert run_until(sup, lambda: sup.procs.get("policy") not in (None, pol)) is None
        t_restart = [t for t, n, e in sup.events if n == "policy" and e == "started"][-1]
        assert 0.5 <= t_restart - t_kill < 0.5 + 0.5, t_restart - t_kill  # the delay, plus polling
        assert sup.procs["teleop"] is arb and arb.poll() is None  # the arbiter never stopped
        text = out.getvalue()
        assert "policy crashed (killed by SIGKILL)" in text and "restarting it in 0.5 s" in text
        assert f"restarted policy (pid {sup.procs['policy'].pid}; restart 1 of at most 3" in text
        wait_ready(sup, out, "policy", count=2)  # the restarted one runs its own code: SIGINT gives -SIGINT
    finally:
        codes = sup.stop_all()
    assert codes == {"teleop": -signal.SIGINT, "policy": -signal.SIGINT}


def test_crash_loop_backs_off_then_stops_the_graph():
    sup = Supervisor(out=io.StringIO(), policy=RestartPolicy(delay_s=0.1, max_delay_s=0.3, max_restarts=3))
    try:
        sup.start("policy", CRASH, dict(os.environ), respawn=True)
        why = poll_until_stop(sup)
    finally:
        sup.stop_all()
    assert why is not None and "after 3 restart(s) in a row" in why and "exit code 3" in why
    starts = [t for t, n, e in sup.events if e == "started"]
    exits = [t for t, n, e in sup.events if e.startswith("exited")]
    assert len(starts) == 4 and len(exits) == 4
    waits = [s - e for e, s in zip(exits, starts[1:])]
    # 0.1, 0.2, then the 0.3 s cap (each within the 5 ms polling plus scheduling)
    for got, want in zip(waits, (0.1, 0.2, 0.3)):
        assert want <= got < want + 0.15, waits


def test_critical_exit_stops_the_graph_with_its_name():
    sup = Supervisor(out=io.StringIO(), policy=RestartPolicy(delay_s=0.1))
    try:
        sup.start("policy", SLEEP, dict(os.environ), respawn=True)
        sup.start("teleop", CRASH, dict(os.environ), critical=True)
        why = poll_until_stop(sup)
    finally:
        sup.stop_all()
    assert why.startswith("safety-critical node teleop exited (exit code 3)") and "stopping the graph" in why


def test_finished_node_is_not_restarted_and_no_respawn_stops_on_any_exit():
    out = io.StringIO()
    sup = Supervisor(out=out, policy=RestartPolicy(delay_s=0.1))
    try:
        sup.start("trainer", DONE, dict(os.environ), respawn=True)
        sup.start("teleop", SLEEP, dict(os.environ), critical=True)
        assert run_until(sup, lambda: sup.nodes["trainer"].finished) is None
        time.sleep(0.3)
        assert sup.poll() is None and "trainer" not in sup.procs
        assert "trainer finished on its own (exit code 0)" in out.getvalue()
    finally:
        sup.stop_all()
    old = Supervisor(out=io.StringIO())  # RestartPolicy(respawn=False): the behaviour of --no-respawn
    try:
        old.start("policy", CRASH, dict(os.environ), respawn=True)
        why = poll_until_stop(old)
    finally:
        old.stop_all()
    assert why == "node policy exited (exit code 3)"


def test_bora_up_rejects_a_bad_restart_setting(capsys):
    assert up_main(["--sim", "--max-restarts", "-1", "--without", "policy"]) == 2
    assert "--max-restarts" in capsys.readouterr().err


def test_nodes_stop_on_sigint_even_when_started_from_a_background_shell():
    """A background job of a non-interactive shell inherits SIGINT as ignored; without restoring it the
    nodes ignore the clean first stop step and end by SIGTERM (seen when CI ran in the background)."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `nohup ... &` leaves it
    try:
        sup = Supervisor(out=io.StringIO())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # a node that reports its own SIGINT disposition, then sleeps
        probe = [sys.executable, "-c", "import signal, sys, time; print(signal.getsignal(signal.SIGINT) is "
                 "signal.SIG_IGN, flush=True); time.sleep(120)"]
        out = io.StringIO()
        sup.out = out
        sup.start("policy", probe, dict(os.environ), respawn=True)
        deadline = time.monotonic() + 20
        while "False" not in out.getvalue() and "True" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "] False" in out.getvalue()  # the node does not ignore SIGINT
        assert sup.stop_all() == {"policy": -signal.SIGINT}
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_node_that_ignores_sigint_and_sigterm_leaves_its_stacks_before_sigkill():
    """The last stop step asks a stuck node for its Python stacks (SIGUSR1 -> faulthandler, registered by
    every BORA node through bora_policy.common.node), so the log says where it hung (a sync node once needed
    SIGKILL in CI with nothing in the log)."""
    stuck = [sys.executable, "-c", (
        "import signal, time\n"
        "from bora_policy.common.node import dump_stacks_on_signal\n"
        "dump_stacks_on_signal()\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def stuck_in_teardown():\n"
        "    print('ready', flush=True)\n"
        "    while True: time.sleep(0.05)\n"
        "stuck_in_teardown()\n"
    )]
    out = io.StringIO()
    sup = Supervisor(out=out)
    sup.start("sync", stuck, dict(os.environ), respawn=True)
    deadline = time.monotonic() + 30
    while "ready" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ready" in out.getvalue()
    assert sup.stop_all() == {"sync": -signal.SIGKILL}
    text = out.getvalue()
    assert "[bora up] sync: Python stacks requested" in text
    dump = text.split("Python stacks requested", 1)[1]
    assert "in stuck_in_teardown" in dump and "Current thread" in dump, text[-2000:]
