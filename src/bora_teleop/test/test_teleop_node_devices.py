"""The teleop node's other device paths over real DDS: JointTrajectory arm commands, the UDP glove
(127.0.0.1), the SetBool takeover service with a hard switch, and operator keys through a real
pseudo-terminal on the node's stdin."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import rclpy  # noqa: E402, F401  (installed by make setup; a missing rclpy is a failure, not a skip)
from teleop_rig import ARM, HAND, READY, free_udp_port, make_rig, retarget, serve, start_node  # noqa: E402

from bora_teleop.glove import encode_packet  # noqa: E402


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teleop_dev")
    port = free_udp_port()
    master, slave = os.openpty()
    proc, log = start_node(
        tmp, stdin=slave, arm_command_type="trajectory", udp_port=port, ramp_time_s=0.0, keyboard=True
    )
    os.close(slave)
    r = make_rig(proc, arm_command_type="trajectory")
    r.udp_port, r.pty = port, master
    try:
        yield from serve(r, proc, log, 30.0)
    finally:
        os.close(master)


def test_trajectory_arm_command_has_one_point_one_tick_ahead(rig):
    rig.clear()
    rig.policy = np.r_[READY + 0.01, 0.2, 0.2]
    rig.run(0.8)
    tr = rig.arm_cmds[-1]
    assert list(tr.joint_names) == ARM and len(tr.points) == 1
    np.testing.assert_allclose(tr.points[0].positions, rig.policy[:7], atol=1e-9)
    d = tr.points[0].time_from_start
    assert d.sec == 0 and d.nanosec == 50_000_000  # 1 / rate_hz at 20 Hz


def test_udp_glove_drives_the_hand_under_a_service_takeover(rig):
    from std_srvs.srv import SetBool

    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seq = [0]
    angles = np.array([1.2, 0.4])

    def send_udp():
        seq[0] += 1
        tx.sendto(encode_packet(angles, seq[0], 0.0), ("127.0.0.1", rig.udp_port))

    try:
        rig.extra = send_udp
        rig.arm_target = READY + 0.05
        rig.run(0.3)
        rig.clear()  # before the call: its START may arrive while the call is still being answered
        res = rig.call(SetBool, "/bora/teleop/set_takeover", SetBool.Request(data=True))
        assert res.success
        assert rig.run(3.0, until=lambda: len(rig.executed) > 3 and rig.executed[-1].beta == 1.0)
        rig.run(0.3)
        m = rig.executed[-1]
        assert m.is_intervention and m.beta == 1.0 and not m.held  # hard switch: ramp_time_s = 0
        expected_hand = retarget(angles.astype(np.float32))  # [1.01, 0.8]
        np.testing.assert_allclose(m.command.position[7:], expected_hand, atol=1e-6)
        np.testing.assert_allclose(rig.hand_cmds[-1].position, expected_hand, atol=1e-6)
        assert list(rig.hand_cmds[-1].name) == HAND
        np.testing.assert_allclose(rig.arm_cmds[-1].points[0].positions, READY + 0.05, atol=1e-9)
        assert [e.kind for e in rig.interventions] == [0]
        # the UDP stream stops: the takeover has no fresh human input -> hold
        rig.extra = None
        assert rig.run(3.0, until=lambda: rig.executed[-1].held)
        assert rig.executed[-1].hold_reason == "human_stale"
    finally:
        rig.extra = None
        tx.close()


def test_operator_keys_from_a_terminal(rig):
    rig.clear()
    os.write(rig.pty, b"t")  # toggle the takeover off
    assert rig.run(3.0, until=lambda: any(e.kind == 1 for e in rig.interventions))
    rig.run(0.3)
    assert rig.executed[-1].beta == 0.0 and not rig.executed[-1].held
    os.write(rig.pty, b"n")  # new episode
    assert rig.run(3.0, until=lambda: any(e.kind == 0 for e in rig.episodes))
    assert rig.episodes[0].episode_id == 6  # policy's episode 5, + 1
    os.write(rig.pty, b"e")  # e-stop key: latched
    assert rig.run(3.0, until=lambda: rig.executed[-1].hold_reason == "estop")
    rig.run(0.5)
    assert rig.executed[-1].hold_reason == "estop"
    assert "E-STOP latched (key)" in rig.log.read_text()
