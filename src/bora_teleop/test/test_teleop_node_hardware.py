"""The teleop node's real-robot options over real DDS (loopback): the robot description received on a latched
topic tightens the joint limits (a command beyond the URDF limit reaches the driver clamped), the hand adapter
writes std_msgs/Float64MultiArray in the driver's joint order and units, and without a robot description the
node refuses to start (fail closed)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)
import yaml
from teleop_rig import ARM, READY, Rig, child_env, serve, start_node  # noqa: E402

DEG = 57.29577951308232
URDF_J1_UPPER = 0.05  # fr3_joint1 upper limit in the robot description (FR3 YAML: 2.7437)
URDF = (
    '<?xml version="1.0"?><robot name="fr3"><link name="a"/><link name="b"/>'
    + "".join(
        f'<joint name="{n}" type="revolute"><parent link="a"/><child link="b"/>'
        f'<limit lower="-3.0" upper="{URDF_J1_UPPER if n == "fr3_joint1" else 4.0}" effort="87" velocity="10"/>'
        "</joint>"
        for n in ARM
    )
    + "</robot>"
)
# driver: an array [pip, mcp, mcp] in degrees (f_mcp drives two coupled driver joints)
DRIVER = {
    "message_type": "std_msgs/Float64MultiArray",
    "driver_joints": ["drv_pip", "drv_mcp", "drv_mcp2"],
    "joints": [
        {"name": "f_mcp", "driver": ["drv_mcp", "drv_mcp2"], "scale": DEG},
        {"name": "f_pip", "driver": ["drv_pip"], "scale": DEG},
    ],
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64MultiArray, String

    tmp = tmp_path_factory.mktemp("teleop_hw")
    (tmp / "driver.yaml").write_text(yaml.safe_dump(DRIVER))
    rclpy.init()
    r = Rig()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = r.node.create_publisher(String, "/test/robot_description", latched)
    pub.publish(String(data=URDF))  # latched: the node gets it when it starts
    r.driver_cmds = []
    r.node.create_subscription(Float64MultiArray, "/hand/driver_command", r.driver_cmds.append, 10)
    proc, log = start_node(
        tmp,
        hand_driver_file=str(tmp / "driver.yaml"),
        hand_command_topic="/hand/driver_command",
        robot_description_topic="/test/robot_description",
        robot_description_timeout_s=20.0,
    )
    yield from serve(r, proc, log, 40.0)


def test_urdf_limit_clamps_the_arm_and_the_hand_reaches_the_driver_in_its_layout(rig):
    rig.clear()
    rig.driver_cmds.clear()
    rig.policy = np.r_[READY + np.array([0.5, 0.02, 0, 0, 0, 0, 0]), 0.4, 0.7]
    rig.run(1.5)
    last = rig.executed[-1]
    assert not last.held, last.hold_reason
    np.testing.assert_allclose(last.command.position[0], URDF_J1_UPPER, atol=1e-9)  # the URDF's limit, not 0.5
    np.testing.assert_allclose(rig.arm_cmds[-1].data[0], URDF_J1_UPPER, atol=1e-9)
    np.testing.assert_allclose(rig.arm_cmds[-1].data[1], READY[1] + 0.02, atol=1e-9)  # within limits: unchanged
    np.testing.assert_allclose(rig.driver_cmds[-1].data, [0.7 * DEG, 0.4 * DEG, 0.4 * DEG], atol=1e-9)
    assert "joint limits tightened to the robot description" in rig.log.read_text()


def test_without_a_robot_description_the_node_refuses_to_start(tmp_path):
    (tmp_path / "r.yaml").write_text(
        yaml.safe_dump(
            {"human_joints": ["h"], "robot_joints": [{"name": "f", "from": {"h": 1.0}, "lower": 0.0, "upper": 1.0}]}
        )
    )
    params = {
        "retarget_file": str(tmp_path / "r.yaml"),
        "keyboard": False,
        "robot_description_topic": "/test/nobody_publishes_this",
        "robot_description_timeout_s": 1.0,
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"teleop": {"ros__parameters": params}}))
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "bora_teleop.nodes.teleop_node", "--ros-args", "--params-file"]
    proc = subprocess.run(cmd + [str(tmp_path / "p.yaml")], capture_output=True, text=True, env=child_env(), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "robot_description_topic='/test/nobody_publishes_this': no robot description received" in proc.stderr
    assert time.monotonic() - t0 < 30
