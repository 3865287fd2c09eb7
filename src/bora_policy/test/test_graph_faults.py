"""Faults in the live simulated graph (issue 20), over real DDS between processes (slow: ~2-3 min).

One `bora up --sim` graph (bridge, sync, policy, teleop; the scripted operator off) and a probe node.
In order:

1. checkpoint paths: an empty path, /dev/zero, /etc/passwd, a file outside the checkpoint roots and a
   symlink inside them that leads out are each refused with their reason; the residual in use is kept;
2. a stall (SIGSTOP of the policy process for 1.5 s): /diagnostics is WARN with the stall's text while
   it is within health_window_s, then OK again;
3. episode boundaries: after an outcome (ABORT) of the current episode the policy sends no command of
   it; after the next START none of the old one; every command carries the episode of its chunk (or of the
   hold before the episode's first chunk), never 0;
4. kill -9 of the policy: the arbiter holds within its watchdog time, a takeover (glove + arm target from
   the probe) and an e-stop still work meanwhile, the supervisor restarts the policy, whose commands
   carry the running episode's id (its START came before the restart: the new policy reads it from the
   latched /bora/episode/current, or adopts it from the observations) and are executed again;
5. kill -9 of sync: it is restarted, reads the running episode's START from the latched
   /bora/episode/current, and the policy goes on in the running episode (no observation without one);
6. kill -9 of the arbiter (safety-critical): `bora up` stops the whole graph and names it.
The measured reaction times are printed as "fault figures" (run with -s).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: F401  (installed by make setup; a missing rclpy is a failure, not a skip)
import yaml
from graph_probe import GraphProbe

pytestmark = pytest.mark.slow  # graph start ~40 s + a policy restart ~30 s on 2 cores: make test-slow

ROOT = Path(__file__).resolve().parents[3]
WINDOW_S = 4.0  # policy health_window_s in this graph
RESPAWN_DELAY = 1.0
RATE = 10.0
TELEOP = yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())["teleop"]["ros__parameters"]
WATCHDOG = float(TELEOP["watchdog_timeout_s"])
FIGURES: dict[str, float] = {}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _stamp(m) -> float:
    return m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec


class Probe(GraphProbe):
    def __init__(self):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import JointState

        from bora_msgs.msg import ActionChunk, EpisodeEvent, ExecutedCommand, JointCommand

        super().__init__("bora_faults_probe", (
            ("cmd", JointCommand, "/bora/policy_command"),
            ("exec", ExecutedCommand, "/bora/executed_command"),
            ("chunk", ActionChunk, "/bora/action_chunk"),
            ("diag", DiagnosticArray, "/diagnostics"),
            ("episode", EpisodeEvent, "/bora/episode"),
            ("arm", JointState, "/franka/joint_states"),
        ))

    wait_for = GraphProbe.wait_timed


def policy_status(m):
    """(level int, message, {key: value}) of the policy's status in a DiagnosticArray, or None."""
    for st in m.status:
        if st.hardware_id == "policy":
            lvl = st.level[0] if isinstance(st.level, (bytes, bytearray)) else int(st.level)
            return lvl, st.message, {v.key: v.value for v in st.values}
    return None


def level_is(level: int):
    return lambda m: (s := policy_status(m)) is not None and s[0] == level


def _pids(log: Path, name: str) -> list[int]:
    text = log.read_text(errors="replace")
    return [int(x) for x in re.findall(rf"\b{name} \(pid (\d+)", text)]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    from bora_policy.models.residual import ResidualChunkActor, ResidualConfig
    from bora_trainer.up import demo_vla

    tmp = tmp_path_factory.mktemp("faults")
    vla_dir = demo_vla(tmp / "vla")
    roots = tmp / "roots"
    roots.mkdir()
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(1)
    act = ResidualChunkActor(25, 25, 16, 96, ResidualConfig(hidden_dims=[32, 32], init_scale=0.1))
    sd = {k: v.contiguous() for k, v in act.state_dict().items()}
    meta = {"normalizer_version": json.loads((vla_dir / "normalizer.json").read_text())["version"]}
    save_file(sd, str(roots / "good.safetensors"), metadata=meta)
    save_file(sd, str(tmp / "outside.safetensors"), metadata=meta)  # a valid checkpoint, but outside the roots
    (roots / "escape.safetensors").symlink_to(tmp / "outside.safetensors")
    cmd = [
        sys.executable, "-m", "bora_trainer.cli", "up", "--sim", "--vla", str(vla_dir), "--duration", "600",
        "--respawn-delay", str(RESPAWN_DELAY),
        "--param", "sim_bridge:operator_enabled:=false",
        "--param", "sim_bridge:time_limit_s:=300.0",
        "--param", "policy:replan_steps:=5",
        "--param", f"policy:health_window_s:={WINDOW_S}",
        "--param", f"policy:checkpoint_roots:={json.dumps([str(roots)])}",
    ]  # fmt: skip
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    log_path = tmp / "up.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    probe = Probe()
    try:
        if probe.wait_for("cmd", timeout=150.0) is None:
            pytest.fail("no policy command within 150 s; log:\n" + log_path.read_text()[-4000:])
        # a fresh episode whose START every node sees (the bridge's first START is sent while the others start)
        from std_srvs.srv import Trigger

        t0 = time.monotonic()
        assert probe.call(Trigger, "/bora/sim/reset", Trigger.Request()).success
        got = probe.wait_for("episode", lambda m: m.kind == m.START, after=t0, timeout=10)
        assert got is not None, "no START after /bora/sim/reset"
        ep = got[1].episode_id
        assert probe.wait_for("cmd", lambda m: m.episode_id == ep, after=t0, timeout=30) is not None
        yield {"probe": probe, "proc": proc, "log": log_path, "roots": roots, "tmp": tmp}
    finally:
        probe.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        log.close()
        if FIGURES:
            print("\nfault figures: " + json.dumps(FIGURES))


def test_checkpoints_only_from_the_roots_with_a_reason_each(graph):
    from bora_msgs.srv import LoadCheckpoint

    probe, roots, tmp = graph["probe"], graph["roots"], graph["tmp"]
    good = roots / "good.safetensors"
    t0 = time.monotonic()
    res = probe.call(LoadCheckpoint, "/bora/policy/load_checkpoint", LoadCheckpoint.Request(path=str(good)))
    assert res.success, res.message
    version = _sha(good)[:16]
    assert probe.wait_for("chunk", lambda m: m.residual_version == version, after=t0, timeout=20) is not None
    cases = {
        "": "empty",
        "/dev/zero": "outside the checkpoint roots",
        "/etc/passwd": "outside the checkpoint roots",
        str(tmp / "outside.safetensors"): "outside the checkpoint roots",
        str(roots / "escape.safetensors"): "is a symlink to",
        str(roots / "missing.safetensors"): "does not exist",
    }
    for path, reason in cases.items():
        res = probe.call(LoadCheckpoint, "/bora/policy/load_checkpoint", LoadCheckpoint.Request(path=path))
        assert not res.success and reason in res.message and "\n" not in res.message, (path, res.message)
    t1 = time.monotonic()
    time.sleep(1.5)
    late = [m for t, m in probe.rx["chunk"] if t > t1]
    assert late and all(m.residual_version == version for m in late), "the residual in use was not kept"
    got = probe.wait_for(
        "diag",
        lambda m: (s := policy_status(m)) is not None and int(s[2].get("checkpoints_rejected", 0)) >= len(cases),
        after=t1,
        timeout=5,
    )
    assert got is not None
    lvl, msg, kv = policy_status(got[1])
    # WARN, the rejections counted in the window's message, the last one's reason in the values
    assert lvl == 1 and "checkpoint_rejected" in msg and "does not exist" in kv["last_reject"], msg


def _big_stall(m) -> bool:
    """A diagnostics message whose newest fault is a stall of 12 or more skipped slots."""
    st = policy_status(m)
    hit = re.search(r"last: (\d+) control slot\(s\) skipped", st[1]) if st else None
    return hit is not None and int(hit.group(1)) >= 12


def test_stall_makes_diagnostics_warn_for_the_window_then_ok(graph):
    # On this shared 2-core machine small stalls and late ticks of our own happen under load (and are
    # WARN, rightly); so the checks follow the 1.5 s stall itself, and OK is required only when no
    # other fault happened after it.
    probe, log = graph["probe"], graph["log"]
    probe.wait_for("diag", level_is(0), after=time.monotonic(), timeout=WINDOW_S + 5)  # quiet if possible
    t0 = time.monotonic()
    base = probe.wait_for("diag", lambda m: policy_status(m) is not None, after=t0, timeout=5)
    base_missed = int(float(policy_status(base[1])[2]["missed_ticks"]))
    pid = _pids(log, "policy")[-1]
    os.kill(pid, signal.SIGSTOP)  # a real stall: no thread of the policy runs for 1.5 s
    time.sleep(1.5)
    t_cont = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    # Which of the policy's diagnostics shows the stall is told by its content, not by arriving first after the
    # SIGCONT: /diagnostics also carries the teleop's status (no policy status: skipped), and the policy's first
    # one after the SIGCONT may have been built before its control thread counted the stall (the executor and
    # control threads resume in either order). The status level and the text come from one HealthWindow.status()
    # call, so a diagnostics message that counts the stall's slots and names a stall must be WARN or worse.
    def shows_stall(m) -> bool:
        st = policy_status(m)
        return st is not None and int(float(st[2]["missed_ticks"])) - base_missed >= 12 and "stall" in st[1]

    got = probe.wait_for("diag", shows_stall, after=t_cont, timeout=3)
    assert got is not None, "no diagnostics counting and naming the 1.5 s stall"
    lvl, msg, kv = policy_status(got[1])
    assert lvl >= 1, f"the stall counted but the level is {lvl}: {msg}"
    assert probe.wait_for("diag", _big_stall, after=t_cont, timeout=3) is not None, "the stall's text was not shown"
    # after the window the stall no longer counts: OK, or another (newer) fault's text is the one shown
    time.sleep(WINDOW_S + 1.5)
    t_after = time.monotonic()
    later = probe.wait_for("diag", lambda m: policy_status(m) is not None, after=t_after, timeout=5)
    lvl2, msg2, kv2 = policy_status(later[1])
    assert lvl2 == 0 or not _big_stall(later[1]), f"the stall still counts {t_after - t_cont:.1f} s later: {msg2}"
    assert int(float(kv2["faults_total"])) >= 12
    # OK again: the first OK among the policy's diagnostics after the WARN above (one writer on one topic: DDS
    # delivers them in the order sent, so an OK built before the stall was counted cannot come after it)
    back = probe.wait_for("diag", level_is(0), after=got[0], timeout=WINDOW_S + 5)
    FIGURES["stall_warn_s"] = round(got[0] - t_cont, 2)
    if back is not None:
        assert back[0] - t_cont >= WINDOW_S - 1.0, f"OK again after {back[0] - t_cont:.1f} s, inside the window"
        FIGURES["stall_ok_again_s"] = round(back[0] - t_cont, 2)
    else:
        FIGURES["stall_ok_again_s"] = -1.0  # other faults kept it WARN (load); printed, not asserted


def test_no_command_of_an_ended_episode_and_never_a_zero_id(graph):
    from std_srvs.srv import Trigger

    from bora_msgs.msg import EpisodeEvent

    probe = graph["probe"]
    ep = max(m.episode_id for _, m in probe.rx["episode"] if m.kind == m.START)
    pub = probe.node.create_publisher(EpisodeEvent, "/bora/episode", 100)
    time.sleep(1.0)  # discovery
    t_abort = time.monotonic()
    ev = EpisodeEvent(episode_id=ep, kind=EpisodeEvent.ABORT, note="test: operator abort")
    ev.header.stamp = probe.node.get_clock().now().to_msg()
    pub.publish(ev)
    time.sleep(1.5)
    after = [m for t, m in probe.rx["cmd"] if t > t_abort + 1.0 / RATE and m.episode_id == ep]
    assert not after, f"{len(after)} command(s) of the ended episode {ep} after its ABORT"
    assert probe.wait_for("diag", lambda m: "(ended)" in (policy_status(m) or (0, ""))[1], after=t_abort, timeout=3)
    t_reset = time.monotonic()
    assert probe.call(Trigger, "/bora/sim/reset", Trigger.Request()).success
    got = probe.wait_for("episode", lambda m: m.kind == m.START and m.episode_id > ep, after=t_reset, timeout=10)
    assert got is not None
    new, start_stamp = got[1].episode_id, _stamp(got[1])
    assert probe.wait_for("cmd", lambda m: m.episode_id == new, after=t_reset, timeout=20) is not None
    time.sleep(2.0)
    old = [m for t, m in probe.rx["cmd"] if t > t_reset and m.episode_id != new]
    assert not old, f"commands of episodes {sorted({m.episode_id for m in old})} after START {new}"
    # the reset service's START (after its own ABORT of the episode): nothing of the old episode stamped after it
    late = [m for _, m in probe.rx["cmd"] if m.episode_id < new and _stamp(m) > start_stamp + 0.05]
    assert not late
    # every command since the first reset carries an episode, never 0,
    first = min(t for t, m in probe.rx["episode"] if m.kind == m.START)
    cmds = [m for t, m in probe.rx["cmd"] if t > first + 0.5]
    assert cmds and all(m.episode_id != 0 for m in cmds)
    # and the episode of what it executes: a row of a chunk planned from an observation of that episode, or the
    # hold of the episode's first observation, sent from its START until its first chunk is ready (one pose,
    # chunk_index 0: ChunkExecutor.hold after the reset). An episode that ends before its first chunk is ready
    # has such holds and no chunk: the fixture resets episode 1 at the policy's first command, often that hold,
    # and the chunk then being planned is dropped (EpisodeGate.accepts); this failed the check whenever the probe
    # had received episode 1's START (sent while the nodes start: in some runs only). Chunks are looked up over
    # the whole run, not after an arrival time: DDS keeps the order of one writer's messages on one topic only,
    # so a chunk may reach the probe after the commands that execute it or after another node's START.
    chunk_eps = {m.episode_id for _, m in probe.rx["chunk"]}
    for e in sorted({m.episode_id for m in cmds} - chunk_eps):
        held = [m for m in cmds if m.episode_id == e]
        poses, index = {tuple(m.position) for m in held}, {m.chunk_index for m in held}
        assert len(poses) == 1 and index == {0}, (
            f"episode {e}: {len(held)} command(s) and no chunk of it, yet not one hold pose "
            f"({len(poses)} poses, chunk indices {sorted(index)})"
        )


def _sec(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def test_kill9_policy_hold_takeover_estop_and_respawn(graph):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool
    from std_srvs.srv import SetBool, Trigger

    probe, log = graph["probe"], graph["log"]
    ep = max(m.episode_id for _, m in probe.rx["episode"] if m.kind == m.START)
    ok = probe.wait_for("exec", lambda m: not m.held and not m.is_intervention, after=time.monotonic(), timeout=10)
    assert ok is not None, "the arbiter does not execute the policy's commands before the kill"
    pids = {n: _pids(log, n) for n in ("policy", "teleop", "sim_bridge", "sync")}
    t_kill, t_kill_wall = time.monotonic(), time.time()
    os.kill(pids["policy"][-1], signal.SIGKILL)
    hold = probe.wait_for("exec", lambda m: m.held, after=t_kill, timeout=5)
    assert hold is not None, "the arbiter did not hold after the policy died"
    reaction = hold[0] - t_kill
    assert reaction <= WATCHDOG + 2.0 / RATE, f"hold {reaction:.3f} s after kill -9 (watchdog {WATCHDOG} s)"
    assert hold[1].hold_reason in ("stale", "no_command"), hold[1].hold_reason
    FIGURES["hold_after_kill9_s"] = round(reaction, 3)
    last_cmd = max(t for t, _ in probe.rx["cmd"] if t <= hold[0])
    FIGURES["hold_after_last_policy_command_s"] = round(hold[0] - last_cmd, 3)  # watchdog + at most one tick
    # the operator takes over while the policy is down: glove + arm target at 10 Hz from this "person"
    arm = probe.wait_for("arm", after=t_kill, timeout=5)[1]
    names = list(TELEOP["arm_joint_names"])
    q0 = dict(zip(arm.name, arm.position))
    target = [q0[n] for n in names]
    target[0] += 0.05
    pub_glove = probe.node.create_publisher(JointState, "/glove/joint_states", 10)
    pub_arm = probe.node.create_publisher(JointState, "/teleop/arm_target", 10)
    stop = threading.Event()

    def operator():
        while not stop.is_set():
            now = probe.node.get_clock().now().to_msg()
            g = JointState(position=[0.0] * 22)
            a = JointState(name=names, position=target)
            g.header.stamp = a.header.stamp = now
            pub_glove.publish(g)
            pub_arm.publish(a)
            time.sleep(1.0 / RATE)

    th = threading.Thread(target=operator, daemon=True)
    th.start()
    try:
        t_to = time.monotonic()
        assert probe.call(SetBool, "/bora/teleop/set_takeover", SetBool.Request(data=True)).success
        took = probe.wait_for(
            "exec", lambda m: m.is_intervention and m.beta >= 0.999 and not m.held, after=t_to, timeout=5
        )
        assert took is not None, "no executed takeover while the policy was down"
        np.testing.assert_allclose(np.asarray(took[1].command.position[:7]), target, atol=1e-3)
        FIGURES["takeover_full_s"] = round(took[0] - t_to, 3)
        # the e-stop latches and holds, and resets, while the policy is down
        pub_estop = probe.node.create_publisher(Bool, "/bora/estop", 10)
        time.sleep(0.5)
        t_es = time.monotonic()
        pub_estop.publish(Bool(data=True))
        es = probe.wait_for("exec", lambda m: m.held and m.hold_reason == "estop", after=t_es, timeout=3)
        assert es is not None, "the e-stop did not hold while the policy was down"
        FIGURES["estop_hold_s"] = round(es[0] - t_es, 3)
        pub_estop.publish(Bool(data=False))
        time.sleep(0.3)
        assert probe.call(Trigger, "/bora/teleop/reset_estop", Trigger.Request()).success
        t_rel = time.monotonic()
        assert probe.wait_for("exec", lambda m: not m.held and m.is_intervention, after=t_rel, timeout=3)
        assert probe.call(SetBool, "/bora/teleop/set_takeover", SetBool.Request(data=False)).success
    finally:
        stop.set()
        th.join(timeout=2)
    # the supervisor restarts the policy; its commands carry the running episode (its START was before)
    resumed = probe.wait_for("cmd", after=t_kill + 0.5, timeout=120)
    assert resumed is not None, "the restarted policy never published; log:\n" + log.read_text()[-3000:]
    FIGURES["policy_commands_again_s"] = round(resumed[0] - t_kill, 1)
    assert resumed[1].episode_id == ep, (resumed[1].episode_id, ep)
    back = probe.wait_for("exec", lambda m: not m.held and not m.is_intervention, after=resumed[0], timeout=10)
    assert back is not None, "the arbiter did not execute the restarted policy's commands"
    # after the hold, no command of the dead policy (stamped before the kill) was executed unheld; the restarted
    # policy's commands can be executed before the probe receives its first one (the arbiter may discover the
    # new policy process before the probe does), so they are told apart by their stamps, not by arrival
    gap = [m for t, m in probe.rx["exec"] if hold[0] <= t < resumed[0] and not m.held and not m.is_intervention
           and _sec(m.command.header.stamp) <= t_kill_wall]
    assert not gap, f"{len(gap)} unheld autonomous commands of the killed policy after the hold"
    text = log.read_text(errors="replace")
    assert "policy crashed (killed by SIGKILL)" in text and "restarted policy (pid" in text
    after = {n: _pids(log, n) for n in pids}
    assert after["teleop"] == pids["teleop"] and after["sim_bridge"] == pids["sim_bridge"]
    assert after["sync"] == pids["sync"] and len(after["policy"]) == len(pids["policy"]) + 1
    assert graph["proc"].poll() is None, "the graph stopped"


def test_kill9_of_sync_the_policy_goes_on_in_the_running_episode(graph):
    # the respawned sync node missed the running episode's START on /bora/episode; it reads it from the
    # latched /bora/episode/current, so its observations carry the episode (the policy never reports
    # observations without one) and the policy's chunks and commands go on in it
    probe, log = graph["probe"], graph["log"]
    ep = max(m.episode_id for _, m in probe.rx["episode"] if m.kind == m.START)
    before = _pids(log, "sync")
    t_kill = time.monotonic()
    os.kill(before[-1], signal.SIGKILL)
    end = time.monotonic() + 60
    while len(_pids(log, "sync")) == len(before) and time.monotonic() < end:
        time.sleep(0.1)
    assert len(_pids(log, "sync")) == len(before) + 1, "sync was not restarted"
    t_up = time.monotonic()
    # the new sync's first observations reach the policy: chunks planned after the restart
    first = probe.wait_for("chunk", after=t_up + 1.0, timeout=60)
    assert first is not None, "the policy never planned from the restarted sync's observations"
    FIGURES["chunks_after_sync_kill9_s"] = round(first[0] - t_kill, 1)
    time.sleep(3.0)
    chunks = [m for t, m in probe.rx["chunk"] if t >= first[0]]
    cmds = [m for t, m in probe.rx["cmd"] if t >= first[0]]
    no_ep = [
        m for t, m in probe.rx["diag"] if t > t_up and "observation_without_episode" in (policy_status(m) or (0, ""))[1]
    ]
    assert not no_ep, "the restarted sync published observations without the running episode"
    assert chunks and all(m.episode_id == ep for m in chunks), {m.episode_id for m in chunks}
    assert len(cmds) >= 20 and all(m.episode_id == ep for m in cmds), {m.episode_id for m in cmds}


def test_kill9_of_the_arbiter_stops_the_graph_with_its_name(graph):
    proc, log = graph["proc"], graph["log"]
    t_kill = time.monotonic()
    os.kill(_pids(log, "teleop")[-1], signal.SIGKILL)
    rc = proc.wait(timeout=60)
    FIGURES["graph_stopped_after_arbiter_kill9_s"] = round(time.monotonic() - t_kill, 1)
    text = log.read_text(errors="replace")
    assert rc == 1, text[-2000:]
    assert "safety-critical node teleop exited (killed by SIGKILL)" in text and "stopping the graph" in text
    assert "restarted teleop" not in text
