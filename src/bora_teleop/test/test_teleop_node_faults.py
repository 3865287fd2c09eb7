"""The teleop node under faults and hostile input, in its own process over real DDS and a real UDP
socket (loopback): fuzzed datagrams and malformed topic messages are survived, logged and reported on
/diagnostics; clean episode starts; a person's takeover is not released by the scripted operator."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time

import numpy as np
import pytest
import rclpy  # noqa: E402, F401  (installed by make setup; a missing rclpy is a failure, not a skip)
from teleop_rig import ARM, HAND, HUMAN, READY, free_udp_port, make_rig, retarget, serve, start_node, stop_node  # noqa: E402
from test_glove_fuzz import mutated_binary, random_bytes, structured_json  # noqa: E402

from bora_teleop.glove import dds_port_range, encode_packet  # noqa: E402

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

WINDOW = 2.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    from bora_msgs.msg import EpisodeEvent

    tmp = tmp_path_factory.mktemp("teleop_faults")
    port = free_udp_port()
    proc, log = start_node(tmp, udp_port=port, ramp_time_s=0.0, diagnostics_window_s=WINDOW, arm_max_velocity=[1.0] * 7)
    r = make_rig(proc)
    r.udp_port, r.proc = port, proc
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    n = r.node
    r.pub_op_takeover = n.create_publisher(Bool, "/bora/operator/takeover", rel)
    r.pub_op_glove = n.create_publisher(JointState, "/bora/operator/glove", rel)
    r.pub_op_arm = n.create_publisher(JointState, "/bora/operator/arm_target", rel)
    r.pub_episode = n.create_publisher(EpisodeEvent, "/bora/episode", rel)
    r.diag = []
    n.create_subscription(DiagnosticArray, "/diagnostics", r.diag.append, rel)
    yield from serve(r, proc, log, 30.0)


def _diag(rig):
    """The teleop's next /diagnostics status, as (level, message, values)."""
    rig.diag.clear()
    assert rig.run(5.0, until=lambda: len(rig.diag) >= 2)
    st = rig.diag[-1].status[0]
    return int.from_bytes(st.level, "little"), st.message, {kv.key: kv.value for kv in st.values}


def test_fuzzed_udp_datagrams_are_survived_reported_and_a_valid_stream_still_drives_the_hand(rig):
    from std_srvs.srv import SetBool

    rng = random.Random(11)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst = ("127.0.0.1", rig.udp_port)
    issue = [
        b'{"seq": 1e400, "stamp": 0, "angles": [0, 0]}',
        b'{"seq": 1, "stamp": 0, "angles": [0, 0], "names": 5}',
        b'{"seq": 1, "stamp": ' + b"9" * 400 + b', "angles": [0, 0]}',
    ]
    n = 3000
    t0 = time.monotonic()
    rig.diag.clear()
    for i in range(n):
        data = issue[i % 3] if i < 30 else (structured_json, mutated_binary, random_bytes)[i % 3](rng)
        tx.sendto(data[:60000], dst)
        if i % 100 == 0:
            rig.run(0.01)
    fuzz_s = time.monotonic() - t0
    rig.run(1.5)
    during = [(int.from_bytes(d.status[0].level, "little"), d.status[0].message) for d in rig.diag]
    assert any(lv >= 1 and "udp_malformed" in m for lv, m in during), during  # WARN while it happens
    level, msg, vals = _diag(rig)
    assert vals["udp_alive"] == "True" and vals["udp_internal_error"] == "0"
    received, accepted = int(vals["udp_received"]), int(vals["udp_accepted"])
    assert received >= n // 5  # a full socket buffer drops datagrams on a loaded machine; many arrive
    assert int(vals["fault_udp_malformed"]) > 0 and vals["udp_last_error"] and vals["last_error"]
    log = rig.log.read_text()
    assert "udp glove:" in log and ("more" in log or log.count("udp glove:") >= 10)  # logged, rate-limited
    print(f"\nnode fuzz: {n} datagrams sent in {fuzz_s:.1f} s, {received} received, {accepted} accepted (valid)")
    # a valid stream right after: a person's takeover drives the hand from the UDP glove
    seq = [10**6]
    angles = np.array([1.2, 0.4])

    def send_udp():
        seq[0] += 1
        tx.sendto(encode_packet(angles, seq[0], 0.0), dst)

    try:
        rig.extra = send_udp
        rig.arm_target = READY + 0.02
        rig.run(0.5)
        assert rig.call(SetBool, "/bora/teleop/set_takeover", SetBool.Request(data=True)).success
        rig.clear()
        hand = retarget(angles.astype(np.float32))

        def driven():
            return any(
                m.beta == 1.0 and not m.held and np.allclose(m.command.position[7:], hand, atol=1e-6)
                for m in rig.executed[-5:]
            )

        assert rig.run(8.0, until=driven), [(m.beta, m.hold_reason) for m in rig.executed[-5:]]
        assert rig.call(SetBool, "/bora/teleop/set_takeover", SetBool.Request(data=False)).success
        rig.run(0.5)
    finally:
        rig.extra = None
        rig.arm_target = None
        tx.close()


def test_malformed_topic_messages_are_dropped_logged_and_the_node_keeps_working(rig):
    JS, JC = rig.JointState, rig.JointCommand
    rng = np.random.default_rng(3)
    bad_states = [
        JS(name=["x"] * 3, position=[0.0] * 3),
        JS(name=HUMAN, position=[0.1]),
        JS(name=[], position=[0.0] * 5),
        JS(name=["a" * 300, "b"], position=[0.0, 0.0]),
        JS(name=[f"j{i}" for i in range(400)], position=[0.0] * 400),
        JS(name=HUMAN, position=[float("nan"), 0.0]),  # a NaN glove sample outside a takeover
        JS(name=HUMAN + HUMAN, position=[0.0] * 4),  # duplicate names
    ]
    n_sent = 0
    for _ in range(20):
        for m in bad_states:
            for pub in (rig.pub_glove, rig.pub_arm_target, rig.pub_arm_state, rig.pub_hand_state, rig.pub_op_glove):
                pub.publish(m)
                n_sent += 1
        for _ in range(5):  # malformed policy commands, of the policy's episode
            names = list(rng.choice(ARM + HAND + ["zz"], size=int(rng.integers(0, 12))))
            rig.pub_policy.publish(JC(episode_id=5, joint_names=names, position=rng.normal(size=len(names)).tolist()))
            n_sent += 1
        rig.run(0.05)
    from bora_msgs.msg import EpisodeEvent

    rig.pub_episode.publish(EpisodeEvent(episode_id=9, kind=EpisodeEvent.START, session_id="s" * 5000))
    rig.pub_episode.publish(EpisodeEvent(episode_id=9, kind=7))
    expected = [
        "EpisodeEvent: session_id or note too long (5000, 0 characters",
        "EpisodeEvent.kind=7: expected one of",
        "glove joint states: field position: non-finite values for joints ['h_mcp'] (outside a takeover)",
        "glove joint states: duplicate joint names",
        "more",  # suppressed repeats are reported as counts
        "arm target:", "arm joint states:", "operator glove:",
    ]
    # the node's 1 Hz flush reports the rate-limited ones (the last text of each kind); on a loaded machine
    # its timer may fire late, so wait for the lines (bounded) instead of reading the log after a fixed time
    rig.run(8.0, until=lambda: all(s in rig.log.read_text() for s in expected))
    log = rig.log.read_text()
    assert not [s for s in expected if s not in log], [s for s in expected if s not in log]
    level, msg, vals = _diag(rig)
    # BEST_EFFORT readers of depth 5 may drop some of a burst; most arrive
    assert int(vals["fault_glove_malformed"]) >= 10 and int(vals["fault_glove_nonfinite"]) >= 5
    print(f"\nnode topic fuzz: {n_sent} malformed messages")
    # still working: valid policy commands pass through, and the faults age out of the window
    rig.clear()
    rig.policy = np.r_[READY + 0.01, 0.3, 0.3]
    assert rig.run(5.0, until=lambda: len(rig.executed) > 5 and not rig.executed[-1].held)
    rig.run(WINDOW + 1.5)
    level, msg, _ = _diag(rig)
    for _ in range(5):  # a loaded machine may deliver the last malformed messages late: they then age out later
        if "malformed" not in msg and "nonfinite" not in msg:
            break
        rig.run(1.0)
        level, msg, _ = _diag(rig)
    assert "malformed" not in msg and "nonfinite" not in msg, msg  # aged out of the window
    if "stall" not in msg:  # a loaded machine may stall the control loop meanwhile: a real fault
        assert level == 0 and msg == "ok", msg


def test_a_person_takeover_is_not_released_by_the_scripted_operator(rig):
    JS, Bool = rig.JointState, rig.Bool
    person_glove, op_glove = np.array([1.0, 0.6]), np.array([0.1, 0.1])

    def scripted_operator():  # every cycle, like the sim bridge: False plus its own glove stream
        rig.pub_op_takeover.publish(Bool(data=False))
        rig.pub_op_glove.publish(JS(name=HUMAN, position=op_glove.tolist()))
        rig.pub_op_arm.publish(JS(name=ARM, position=(READY - 0.03).tolist()))

    rig.extra = scripted_operator
    rig.glove, rig.arm_target = person_glove, READY + 0.03
    rig.policy = np.r_[READY, 0.3, 0.3]
    try:
        rig.run(0.5)
        rig.clear()
        rig.pub_takeover.publish(Bool(data=True))  # the person's takeover, on /bora/takeover
        assert rig.run(3.0, until=lambda: any(m.beta == 1.0 for m in rig.executed))
        rig.clear()
        rig.run(2.0)
        assert len(rig.executed) > 20 and all(m.beta == 1.0 and not m.held for m in rig.executed)
        for m in rig.executed[5:]:  # (after the rate limit) the person's glove and arm target, never the script's
            np.testing.assert_allclose(m.command.position, np.r_[READY + 0.03, retarget(person_glove)], atol=1e-9)
        rig.pub_takeover.publish(Bool(data=False))
        assert rig.run(3.0, until=lambda: rig.executed[-1].beta == 0.0)
        assert "overrides the scripted operator" not in rig.log.read_text()  # it never held the takeover
    finally:
        rig.extra = None
        rig.glove = rig.arm_target = None
        rig.run(0.3)


def test_episode_start_holds_the_measured_state_and_drops_old_episode_commands(rig):
    from bora_msgs.msg import EpisodeEvent

    far = np.r_[READY + np.array([0, 0.3, 0, 0, 0, 0, 0]), 0.3, 0.3]
    rig.policy = far
    rig.measured = far.copy()
    assert rig.run(5.0, until=lambda: np.allclose(rig.executed[-1].command.position, far, atol=1e-9))
    # the sim resets to READY and starts episode 6; the policy still sends episode 5's pose
    rig.measured = np.r_[READY, 0.1, 0.1]
    rig.clear()
    rig.pub_episode.publish(EpisodeEvent(episode_id=6, kind=EpisodeEvent.START, step=0, session_id="sess-A"))
    assert rig.run(3.0, until=lambda: len(rig.executed) > 10 and rig.executed[-1].hold_reason == "episode_start")
    rig.run(0.5)
    after = [m for m in rig.executed if m.command.episode_id == 6]
    assert after and all(m.held and m.hold_reason == "episode_start" for m in after)
    # no command of episode 6 carries the previous pose: each is the measured reset state
    for m in after:
        np.testing.assert_allclose(m.command.position, rig.measured, atol=1e-9)
        assert m.command.session_id == "sess-A"  # the episode keeps the session of its START
    # the policy's first command of episode 6: rate limited from the measured state (1 rad/s at 20 Hz)
    target = np.r_[READY + np.array([0, 0.5, 0, 0, 0, 0, 0]), 0.1, 0.1]
    rig.policy = target
    rig.episode_id = 6
    rig.clear()
    assert rig.run(3.0, until=lambda: any(not m.held for m in rig.executed))
    first = next(m for m in rig.executed if not m.held)
    assert first.command.episode_id == 6
    np.testing.assert_allclose(first.command.position[1], READY[1] + 1.0 / 20.0, atol=1e-9)
    level, msg, vals = _diag(rig)
    assert int(vals["dropped_commands"]) > 0 and "policy_other_episode" in msg
    assert "policy command of episode 5 dropped: the current episode is 6" in rig.log.read_text()


def _refusal(tmp_path, **params) -> str:
    """Start the node with ``params``, expect common/node.run_node's refusal (exit 2, no traceback) and return
    its one line."""
    proc, log = start_node(tmp_path, **params)
    try:
        assert proc.wait(timeout=60) == 2
    except subprocess.TimeoutExpired:
        stop_node(proc)
        raise
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if "refused to start" in ln]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_unauthenticated_udp_off_loopback_refuses_to_start(tmp_path):
    line = _refusal(tmp_path, udp_port=free_udp_port(), udp_host="0.0.0.0")
    assert "udp_host='0.0.0.0'" in line and "loopback" in line, line


def test_a_glove_port_inside_the_domains_dds_ports_refuses_to_start(tmp_path):
    port = dds_port_range(int(os.environ["ROS_DOMAIN_ID"])).start + 200  # past any participant this run starts
    line = _refusal(tmp_path, udp_port=port)
    assert f"udp_port={port}: inside DDS's port range" in line, line


def test_signed_glove_stream_node_accepts_only_the_allowed_source_with_the_key(tmp_path, rig):
    # a second teleop node with a key file and one allowed source (the module's rig node keeps running:
    # its /diagnostics are told apart by the UDP port in the values)
    from bora_teleop.glove_auth import write_key
    from bora_teleop.glove_sender import GloveSender

    key = write_key(str(tmp_path / "glove.key"))
    port = free_udp_port()
    proc, log = start_node(
        tmp_path, udp_port=port, udp_key_file=str(tmp_path / "glove.key"), udp_allowed_sources=["127.0.0.2"]
    )
    good = GloveSender("127.0.0.1", port, key=key, source="127.0.0.2")
    senders = [
        GloveSender("127.0.0.1", port, key=key, source="127.0.0.3"),  # wrong source
        GloveSender("127.0.0.1", port, key=bytes(32), source="127.0.0.2"),  # wrong key
        GloveSender("127.0.0.1", port, key=None, source="127.0.0.2"),  # unsigned
    ]
    try:
        line = f"UDP glove receiver on 127.0.0.1:{port}: HMAC-SHA256 signed packets, from 127.0.0.2"
        deadline = time.monotonic() + 30
        while line not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert line in log.read_text()
        sent = []
        for _ in range(20):
            for tx in senders:
                tx.send([0.5, 0.5])
            sent.append(good.packet([0.1, 0.1]))
            good.sock.sendto(sent[-1], good.dst)
            time.sleep(0.005)
        time.sleep(0.5)
        for pkt in sent:  # replayed, later
            good.sock.sendto(pkt, good.dst)
        rig.diag.clear()
        me = f"127.0.0.1:{port}"

        def counts():
            for d in reversed(rig.diag):
                v = {kv.key: kv.value for kv in d.status[0].values}
                if v.get("udp_address") == me and int(v["udp_received"]) >= 100:
                    return v
            return None

        assert rig.run(10.0, until=lambda: counts() is not None), "no /diagnostics of the signed-stream node"
        v = counts()
        got = {k: int(v[f"udp_{k}"]) for k in ("received", "accepted", "wrong_source", "bad_signature", "replayed")}
        assert got == {"received": 100, "accepted": 20, "wrong_source": 20, "bad_signature": 40, "replayed": 20}
        assert "udp_wrong_source" in log.read_text() or "not in udp_allowed_sources" in log.read_text()
    finally:
        for tx in [good, *senders]:
            tx.close()
        stop_node(proc)
