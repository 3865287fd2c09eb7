"""Manual takeover in the default simulated graph: the real sim bridge (MuJoCo, scripted operator on)
and the teleop node with config/sim.yaml, over real DDS (loopback). The scripted operator takes over
through its own topics; a person's /bora/takeover overrides it and holds although the scripted operator
publishes its trigger every tick, only the person's arm target reaches the arm, and the person's release
ends the takeover while the scripted trigger is still true; /bora/sim/set_operator switches the
scripted operator off and on."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)
from teleop_rig import child_env, stop_node  # noqa: E402

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parents[3]
BRIDGE = ROOT / "install" / "bora_sim" / "lib" / "bora_sim" / "sim_bridge"
ARM = [f"fr3_joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    from bora_msgs.msg import ExecutedCommand, InterventionEvent

    assert BRIDGE.is_file(), f"{BRIDGE} missing: run `make build`"
    tmp = tmp_path_factory.mktemp("sim_takeover")
    cfg = str(ROOT / "config" / "sim.yaml")
    env = child_env()
    bridge_log, teleop_log = tmp / "bridge.log", tmp / "teleop.log"
    bridge = subprocess.Popen(
        [str(BRIDGE), "--ros-args", "--params-file", cfg, "-p", "render:=false", "-p", "time_limit_s:=120.0"],
        stdout=open(bridge_log, "w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    teleop = subprocess.Popen(
        [sys.executable, "-m", "bora_teleop.nodes.teleop_node", "--ros-args", "--params-file", cfg]
        + ["-p", "keyboard:=false", "-p", "control_thread_priority:=0"],
        stdout=open(teleop_log, "w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    rclpy.init()
    node = rclpy.create_node("sim_takeover_probe")
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    g = type("G", (), {})()
    g.node, g.bridge_log, g.teleop_log = node, bridge_log, teleop_log
    g.executed, g.op_takeover, g.interventions = [], [], []
    node.create_subscription(ExecutedCommand, "/bora/executed_command", g.executed.append, rel)
    node.create_subscription(InterventionEvent, "/bora/intervention", g.interventions.append, rel)
    node.create_subscription(Bool, "/bora/operator/takeover", lambda m: g.op_takeover.append(m.data), rel)
    g.pub_takeover = node.create_publisher(Bool, "/bora/takeover", rel)
    g.pub_glove = node.create_publisher(JointState, "/glove/joint_states", rel)
    g.pub_arm = node.create_publisher(JointState, "/teleop/arm_target", rel)
    g.Bool, g.JointState = Bool, JointState
    try:
        yield g
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_node(teleop)
        stop_node(bridge)


def _spin(g, seconds, until=None, publish=None):
    end = time.monotonic() + seconds
    next_pub = 0.0
    while time.monotonic() < end:
        if publish is not None and time.monotonic() >= next_pub:
            publish()
            next_pub = time.monotonic() + 0.05
        rclpy.spin_once(g.node, timeout_sec=0.01)
        if until is not None and until():
            return True
    return until is None


def test_a_person_takes_over_by_hand_in_the_default_sim(graph):
    from std_srvs.srv import SetBool

    from bora_sim.operator import GLOVE_JOINT_NAMES
    from bora_sim.scene import ARM_HOME

    g = graph
    ok = _spin(g, 90.0, until=lambda: len(g.executed) >= 3 and len(g.op_takeover) >= 5)
    assert ok, (
        f"no graph: bridge log:\n{g.bridge_log.read_text()[-3000:]}\nteleop log:\n{g.teleop_log.read_text()[-3000:]}"
    )
    arm_target = ARM_HOME + np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    glove = np.full(len(GLOVE_JOINT_NAMES), 0.3)

    def person():
        g.pub_glove.publish(g.JointState(name=list(GLOVE_JOINT_NAMES), position=glove.tolist()))
        g.pub_arm.publish(g.JointState(name=ARM, position=arm_target.tolist()))

    # no policy runs, so the arm makes no progress: the scripted operator takes over on its own (its
    # grace 2 s + patience 2.5 s), through its own topics
    assert _spin(g, 30.0, until=lambda: any(e.kind == 0 for e in g.interventions) and g.executed[-1].beta == 1.0)
    assert g.op_takeover[-1] is True and "takeover requested by the scripted operator" in g.teleop_log.read_text()
    scripted = [m for m in g.executed if m.beta == 1.0]
    _spin(g, 0.5, publish=person)
    g.pub_takeover.publish(g.Bool(data=True))  # once: a change of the person's trigger, during the scripted one
    assert _spin(g, 5.0, until=lambda: "overrides the scripted operator" in g.teleop_log.read_text(), publish=person)
    g.executed.clear()
    n_op = len(g.op_takeover)
    _spin(g, 4.0, publish=person)
    # the scripted operator kept publishing its trigger every tick (10 Hz), and the person's takeover held
    assert len(g.op_takeover) - n_op >= 20
    assert len(g.executed) >= 30 and all(m.beta == 1.0 and m.is_intervention for m in g.executed)
    late = g.executed[-10:]  # after the rate limit: the person's arm target, not the scripted operator's
    for m in late:
        assert not m.held, m.hold_reason
        np.testing.assert_allclose(m.command.position[:7], arm_target, atol=1e-6)
    assert not np.allclose(scripted[-1].command.position[:7], arm_target, atol=1e-3)
    # the person releases: the takeover ends, although the scripted operator still asks for one every tick
    g.pub_takeover.publish(g.Bool(data=False))
    assert _spin(g, 5.0, until=lambda: g.executed[-1].beta == 0.0)
    g.executed.clear()
    n_op = len(g.op_takeover)
    _spin(g, 1.5)
    assert all(g.op_takeover[n_op:]) and len(g.op_takeover) - n_op >= 8  # still True, every tick
    assert g.executed and all(m.beta == 0.0 and not m.is_intervention for m in g.executed)
    # the scripted operator off at run time: its trigger stops
    client = g.node.create_client(SetBool, "/bora/sim/set_operator")
    assert client.wait_for_service(timeout_sec=10.0)
    fut = client.call_async(SetBool.Request(data=False))
    assert _spin(g, 10.0, until=fut.done)
    assert fut.result().success and fut.result().message == "scripted operator off"
    _spin(g, 0.5)
    n_off = len(g.op_takeover)
    _spin(g, 1.5, publish=person)
    assert len(g.op_takeover) == n_off
    fut = client.call_async(SetBool.Request(data=True))
    assert _spin(g, 10.0, until=fut.done) and fut.result().message == "scripted operator on"
    assert _spin(g, 3.0, until=lambda: len(g.op_takeover) > n_off + 5)
    assert "takeover requested by a person (topic) (overrides the scripted operator)" in g.teleop_log.read_text()
