"""A policy node that never receives an observation says so, over real DDS (found in review: it was silent).

The real policy node (the demo VLA, config/graph.yaml's 10 Hz) is started alone, as ``bora up`` starts it but
without a sync node, its observation topic remapped to /nowhere/observation (a misnamed topic); a probe in
this process (the private ROS_DOMAIN_ID and loopback discovery of conftest.py) reads /rosout, /diagnostics
and /bora/policy_command. Expectation (runtime/stale_watch.py): 5 s after its first control tick a WARN log
line naming the resolved topic, again about 5 s later with the longer wait, and /diagnostics WARN with the
same text while it lasts; no command meanwhile.

The node starts in HOLD (``initial_mode``, ``stale_observation_s`` 0.5), so the probe then checks where HOLD
holds (runtime/hold_target.py): it publishes observations of a state A (values exact in float32), then of A
sagged by 0.0625 rad on every joint, then none. Expectation: every HOLD command is A (captured once, not the
sagging measurement; before: each tick re-sent the newest measured state), and none comes once the newest
observation is older than 0.5 s (before: the last observed state was sent on and on). The observations carry
no images and 9 joints (the demo VLA has 25), so each plan fails (logged) and no chunk is ever adopted; HOLD
plans nothing (before: a plan at every tick, each failure an ERROR line in the log).

Then HOLD -> AUTONOMOUS (runtime/chunk_scheduler.py ``resume``): observations of B (A sagged) again, so HOLD
captures B anew, then of C (sagged further) while SetMode AUTONOMOUS is called. Expectation: every command, in
HOLD and then in AUTONOMOUS, is B with the joint names (the last command is held until the first chunk, which
would cross-fade from it; before, AUTONOMOUS held the next measured state C, a step from B, with no names).

Last, an episode starts (a START on /bora/episode, observations of episode 1) with joint names other than those
sent so far. Expectation: the commands of episode 1 hold its first observation's state D with ITS joint names
(before: the names last used, those of the previous chunk or resume; none in a first episode).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from graph_probe import GraphProbe, stop_process

# a start-up window and a 5 s repetition on the wall clock: make test runs this module alone (see the Makefile)
pytestmark = pytest.mark.timing

TOPIC = "/nowhere/observation"
LINE = re.compile(
    rf"^policy: no observation on {TOPIC} for (\d+\.\d) s \(is the sync node running\? topic remapped\?\); "
    r"no plan and no command until one arrives$"
)


def _policy_status(m):
    for st in m.status:
        if st.hardware_id == "policy":
            return st.level[0], st.message, {v.key: v.value for v in st.values}
    return None


@pytest.fixture(scope="module")
def lonely_policy(tmp_path_factory):
    from bora_trainer.up import demo_vla

    tmp = tmp_path_factory.mktemp("noobs")
    vla_dir = demo_vla(tmp / "vla")
    log_path = tmp / "policy.log"
    log = open(log_path, "w")
    cmd = [
        sys.executable, "-m", "bora_policy.nodes.policy_node", "--ros-args",
        "-r", f"/bora/observation:={TOPIC}",
        "-p", f"vla_path:={vla_dir}", "-p", "device:=cpu", "-p", "control_thread_priority:=0",
        "-p", "diagnostics_period_s:=0.5", "-p", "initial_mode:=hold", "-p", "stale_observation_s:=0.5",
    ]  # fmt: skip
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log

    from bora_msgs.msg import JointCommand

    probe = GraphProbe("bora_noobs_probe", (
        ("log", Log, "/rosout"),
        ("diag", DiagnosticArray, "/diagnostics"),
        ("cmd", JointCommand, "/bora/policy_command"),
    ))
    try:
        yield probe, proc, log_path
    finally:
        probe.close()
        stop_process(proc)
        log.close()


def test_no_observation_is_warned_every_5_s_and_on_diagnostics(lonely_policy):
    probe, proc, log_path = lonely_policy

    def warning(m):
        return m.level == m.WARN and LINE.match(m.msg) is not None

    first = probe.wait_timed("log", warning, timeout=150.0)
    assert first is not None, f"no warning (exit {proc.poll()}); log:\n" + log_path.read_text()[-3000:]
    waited = float(LINE.match(first[1].msg).group(1))
    assert 5.0 <= waited < 7.0, first[1].msg  # 5 s after the first control tick (at the next tick)
    second = probe.wait_timed("log", lambda m: warning(m) and m.msg != first[1].msg, timeout=10.0, after=first[0])
    assert second is not None, "the warning was not repeated"
    again = float(LINE.match(second[1].msg).group(1))
    assert 10.0 <= again < 12.0 and 3.0 < second[0] - first[0] < 7.0, (second[1].msg, second[0] - first[0])
    got = probe.wait_timed("diag", lambda m: _policy_status(m) is not None, timeout=5.0, after=second[0])
    assert got is not None, "no /diagnostics of the policy"
    level, message, values = _policy_status(got[1])
    text = first[1].msg.removeprefix("policy: ")  # the onset's text
    assert level == 1 and text in message, message  # WARN, in the status message while it lasts
    assert values["observation_waiting"] == "true" and values["observation_topic"] == TOPIC, values
    assert probe.rx["cmd"] == []  # nothing to act on: no command
    assert proc.poll() is None


ARM = [0.5, -0.25, 0.125, -2.0, 0.0, 1.5, 0.75]
HAND = [0.25, 0.5]
NAMES = [f"arm_joint{i}" for i in range(1, 8)] + ["hand_j1", "hand_j2"]


def _publish_for(probe, pub, arm, hand, seconds, names=NAMES, episode=0, t_start=0.0):
    from bora_msgs.msg import Observation

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m = Observation()
        m.header.stamp = probe.node.get_clock().now().to_msg()
        m.arm.name, m.arm.position = names[:7], arm
        m.hand.name, m.hand.position = names[7:], hand
        if episode:  # its step on the episode's time base (the sync node's)
            t = m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec
            m.episode_id, m.session_id, m.step = episode, "s1", max(0, round((t - t_start) * 10.0))
        pub.publish(m)
        time.sleep(0.1)


def test_hold_keeps_the_state_captured_once_and_sends_nothing_once_observations_are_stale(lonely_policy):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import Observation

    probe, proc, log_path = lonely_policy
    pub = probe.node.create_publisher(Observation, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    t_a = time.monotonic()
    _publish_for(probe, pub, ARM, HAND, 2.0)
    first = probe.wait_timed("cmd", after=t_a, timeout=1.0)
    assert first is not None, "no HOLD command; log:\n" + log_path.read_text()[-3000:]
    assert list(first[1].position) == ARM + HAND and list(first[1].joint_names) == NAMES
    recovered = [m.msg for t, m in probe.rx["log"] if t >= t_a and m.msg.startswith("policy: first observation on")]
    assert recovered and recovered[0].startswith(f"policy: first observation on {TOPIC} after "), recovered
    t_b = time.monotonic()
    _publish_for(probe, pub, [q - 0.0625 for q in ARM], [q - 0.0625 for q in HAND], 1.5)  # the arm sags
    t_c = time.monotonic()
    time.sleep(2.5)  # no observation from t_c: too old from t_c + 0.5 s
    sagged = [m for t, m in probe.rx["cmd"] if t_b + 0.3 < t <= t_c]
    assert len(sagged) >= 5, len(sagged)
    stalls = [m.msg for t, m in probe.rx["log"] if t >= t_a and "control slot(s) skipped" in m.msg]
    if not stalls:  # (a stall of over 2 periods breaks the command stream: HOLD then captures anew, by design)
        assert all(list(m.position) == ARM + HAND for m in sagged), [list(m.position) for m in sagged]
    late = [t - t_c for t, m in probe.rx["cmd"] if t > t_c + 1.0]
    assert late == [], f"HOLD commands {late} s after the last observation"
    failed = [m.msg for t, m in probe.rx["log"] if t >= t_a and m.msg.startswith("policy: inference failed")]
    assert failed == [], f"{len(failed)} plans in HOLD, e.g. {failed[:1]}"  # HOLD plans nothing
    assert proc.poll() is None


def test_autonomous_after_hold_keeps_the_hold_target_until_a_chunk_not_the_newer_measured_state(lonely_policy):
    import threading

    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import Observation
    from bora_msgs.srv import SetMode

    probe, proc, log_path = lonely_policy
    pub = probe.node.create_publisher(Observation, TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    b_arm, b_hand = [q - 0.0625 for q in ARM], [q - 0.0625 for q in HAND]
    t_b = time.monotonic()
    _publish_for(probe, pub, b_arm, b_hand, 1.5)  # stale before: HOLD captures B
    sagged = threading.Thread(
        target=_publish_for, args=(probe, pub, [q - 0.125 for q in ARM], [q - 0.125 for q in HAND], 3.0)
    )
    sagged.start()
    time.sleep(1.0)
    res = probe.call(SetMode, "/bora/policy/set_mode", SetMode.Request(mode=SetMode.Request.AUTONOMOUS))
    t_sw = time.monotonic()
    sagged.join()
    t_end = time.monotonic()
    assert res.success and res.message == "mode=autonomous", res.message
    after = [m for t, m in probe.rx["cmd"] if t_sw + 0.2 < t <= t_end]
    assert len(after) >= 10, f"{len(after)} AUTONOMOUS commands; log:\n" + log_path.read_text()[-3000:]
    cmds = [m for t, m in probe.rx["cmd"] if t_b + 0.5 < t <= t_end]
    stalls = [m.msg for t, m in probe.rx["log"] if t >= t_b and "control slot(s) skipped" in m.msg]
    if not stalls:  # (a stall of over 2 periods breaks the command stream: HOLD then captures anew, by design)
        got = {(tuple(m.position), tuple(m.joint_names)) for m in cmds}
        assert got == {(tuple(b_arm + b_hand), tuple(NAMES))}, got
    assert proc.poll() is None


def test_an_episode_start_holds_its_first_observation_with_its_joint_names(lonely_policy):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent, Observation

    probe, proc, log_path = lonely_policy  # AUTONOMOUS since the test before, no chunk ever adopted
    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = probe.node.create_publisher(Observation, TOPIC, rel)
    ev_pub = probe.node.create_publisher(EpisodeEvent, "/bora/episode", rel)
    end = time.monotonic() + 10.0
    while ev_pub.get_subscription_count() < 1 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(1.0)  # the observations of the test before are stale: no command
    names = [f"fr3_joint{i}" for i in range(1, 8)] + ["rh_j1", "rh_j2"]  # not the names sent so far
    d_arm, d_hand = [q + 0.25 for q in ARM], [0.0, 0.125]
    ev = EpisodeEvent(kind=EpisodeEvent.START, episode_id=1, session_id="s1")
    ev.header.stamp = probe.node.get_clock().now().to_msg()
    t_start = ev.header.stamp.sec + 1e-9 * ev.header.stamp.nanosec
    t0 = time.monotonic()
    ev_pub.publish(ev)  # (if it were lost, episode 1's observations start it: the same reset)
    _publish_for(probe, pub, d_arm, d_hand, 2.0, names=names, episode=1, t_start=t_start)
    cmds = [m for t, m in probe.rx["cmd"] if t >= t0 and m.episode_id == 1]
    assert len(cmds) >= 10, f"{len(cmds)} commands of episode 1; log:\n" + log_path.read_text()[-3000:]
    got = {(tuple(m.position), tuple(m.joint_names)) for m in cmds}
    assert got == {(tuple(d_arm + d_hand), tuple(names))}, got
    assert proc.poll() is None
