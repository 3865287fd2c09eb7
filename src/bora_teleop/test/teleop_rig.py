"""Test rig: starts the teleop node as a separate process (real DDS, loopback only) and drives it.

Used by the node tests; not a test module itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[3]
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
ARM = [f"fr3_joint{i}" for i in range(1, 8)]
HUMAN = ["h_mcp", "h_pip"]
HAND = ["f_mcp", "f_pip"]
# hand = clip(M h + b): f_mcp = 0.8 h_mcp + 0.05; f_pip = 0.5 h_mcp + 0.5 h_pip (coupling)
RETARGET = {
    "human_joints": HUMAN,
    "robot_joints": [
        {"name": "f_mcp", "from": {"h_mcp": 0.8}, "offset": 0.05, "lower": 0.0, "upper": 1.5},
        {"name": "f_pip", "from": {"h_mcp": 0.5, "h_pip": 0.5}, "offset": 0.0, "lower": 0.0, "upper": 1.5},
    ],
}


def retarget(h) -> np.ndarray:
    h = np.asarray(h, float)
    return np.clip([0.8 * h[0] + 0.05, 0.5 * h[0] + 0.5 * h[1]], 0.0, 1.5)


def child_env() -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # loopback only, always
    site = next((ROOT / "install" / "bora_msgs").glob("lib/python3*/site-packages"), None)
    paths = [str(site)] if site else []
    paths += [str(ROOT / "src" / "bora_teleop"), str(ROOT / "src" / "bora_trainer")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_node(tmp: Path, stdin=subprocess.DEVNULL, **params) -> tuple[subprocess.Popen, Path]:
    (tmp / "retarget.yaml").write_text(yaml.safe_dump(RETARGET))
    # the arbiter's rate is the graph's control_hz: a graph file at 20 Hz that the node reads
    (tmp / "graph.yaml").write_text(
        yaml.safe_dump({"control_hz": 20.0, "chunk_size": 16, "cameras": ["left", "front", "right"],
                        "residual_scale": 0.2})
    )
    p = {
        "graph_file": str(tmp / "graph.yaml"),
        "retarget_file": str(tmp / "retarget.yaml"),
        "keyboard": False,
        "arm_max_velocity": [5.0] * 7,
        "hand_max_velocity": 5.0,
        "watchdog_timeout_s": 0.3,
        "human_timeout_s": 0.3,
        "ramp_time_s": 1.0,
        "intervention_penalty": -0.4,
        "recovery_bonus": 0.3,
        "task": "pick_plush_toy",
        "object_set": "standard",
    }
    p.update(params)
    (tmp / "params.yaml").write_text(yaml.safe_dump({"teleop": {"ros__parameters": p}}))
    log = tmp / "node.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bora_teleop.nodes.teleop_node",
            "--ros-args",
            "--params-file",
            str(tmp / "params.yaml"),
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=child_env(),
        stdin=stdin,
    )
    return proc, log


def stop_node(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def free_udp_port() -> int:
    """A free loopback UDP port outside the DDS port ranges of every ROS_DOMAIN_ID this project's runs draw
    (100..199, env.sh and conftest's workers) and of this process's own: the OS's ephemeral ports overlap
    them, and a glove socket there receives RTPS traffic (once a flaky test, now refused by the node)."""
    from bora_teleop.glove import dds_port_range

    taken = [dds_port_range(d) for d in (*range(100, 200), int(os.environ.get("ROS_DOMAIN_ID") or 0))]
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if not any(port in r for r in taken):
            return port
    raise RuntimeError("no free UDP port outside the DDS port ranges of domains 100..199 in 1000 tries")


def serve(rig, proc: subprocess.Popen, log: Path, timeout_s: float = 30.0):
    """Body of a module-scoped rig fixture (``yield from serve(...)``): waits for the node's first
    ExecutedCommands, yields ``rig``, then destroys the rig's node, shuts rclpy down and stops the node."""
    import rclpy

    rig.log = log
    try:
        ok = rig.run(timeout_s, until=lambda: len(rig.executed) >= 3)
        assert ok, f"teleop node produced no ExecutedCommand within {timeout_s:g} s; log:\n{log.read_text()}"
        yield rig
    finally:
        rig.node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)


def make_rig(proc: subprocess.Popen, **kw) -> Rig:
    """``rclpy.init()`` + ``Rig(**kw)`` for a node already started as ``proc``: if either raises (e.g. the
    message types are not built), the node process is stopped before the error propagates, so a failed
    fixture leaves no node behind on the test's ROS domain."""
    import rclpy

    try:
        rclpy.init()
        return Rig(**kw)
    except BaseException:
        rclpy.try_shutdown()
        stop_node(proc)
        raise


class Rig:
    """The test's side of the graph: publishes the node's inputs, records its outputs."""

    def __init__(self, arm_command_type: str = "forward"):
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64MultiArray
        from trajectory_msgs.msg import JointTrajectory

        from bora_msgs.msg import EpisodeEvent, ExecutedCommand, InterventionEvent, JointCommand

        self.rclpy = rclpy
        self.JointCommand, self.JointState, self.Bool = JointCommand, JointState, Bool
        self.node = rclpy.create_node("teleop_test_rig")
        rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        n = self.node
        self.pub_policy = n.create_publisher(JointCommand, "/bora/policy_command", rel)
        self.pub_arm_state = n.create_publisher(JointState, "/franka/joint_states", rel)
        self.pub_hand_state = n.create_publisher(JointState, "/hand/joint_states", rel)
        self.pub_glove = n.create_publisher(JointState, "/glove/joint_states", rel)
        self.pub_arm_target = n.create_publisher(JointState, "/teleop/arm_target", rel)
        self.pub_takeover = n.create_publisher(Bool, "/bora/takeover", rel)
        self.pub_recovered = n.create_publisher(Bool, "/bora/recovered", rel)
        self.pub_estop = n.create_publisher(Bool, "/bora/estop", latched)
        self.arm_cmds, self.hand_cmds, self.executed, self.interventions, self.episodes = [], [], [], [], []
        arm_type = Float64MultiArray if arm_command_type == "forward" else JointTrajectory
        n.create_subscription(arm_type, "/arm_controller/commands", self.arm_cmds.append, rel)
        n.create_subscription(JointState, "/hand/command", self.hand_cmds.append, rel)
        n.create_subscription(ExecutedCommand, "/bora/executed_command", self.executed.append, rel)
        n.create_subscription(InterventionEvent, "/bora/intervention", self.interventions.append, rel)
        n.create_subscription(EpisodeEvent, "/bora/episode", self.episodes.append, rel)
        # what the test feeds every cycle (None = stop publishing that input)
        self.policy = np.r_[READY, 0.3, 0.3]
        self.policy_names = ARM + HAND
        self.measured = np.r_[READY, 0.3, 0.3]
        self.glove = None
        self.arm_target = None
        self.step = 0
        self.episode_id = 5  # of the policy commands
        self.extra = None  # called every cycle (e.g. to send UDP glove packets)

    def publish_inputs(self) -> None:
        JS = self.JointState
        if self.measured is not None:
            self.pub_arm_state.publish(JS(name=ARM, position=self.measured[:7].tolist()))
            self.pub_hand_state.publish(JS(name=HAND, position=self.measured[7:].tolist()))
        if self.policy is not None:
            self.step += 1
            self.pub_policy.publish(
                self.JointCommand(
                    episode_id=self.episode_id,
                    step=self.step,
                    joint_names=self.policy_names,
                    position=[float(x) for x in self.policy],
                )
            )
        if self.glove is not None:
            self.pub_glove.publish(JS(name=HUMAN, position=[float(x) for x in self.glove]))
        if self.extra is not None:
            self.extra()
        if self.arm_target is not None:
            self.pub_arm_target.publish(JS(name=ARM, position=[float(x) for x in self.arm_target]))

    def run(self, seconds: float, until=None, period: float = 0.02) -> bool:
        """Publish inputs every ``period`` and spin for ``seconds`` (or until ``until()`` is true)."""
        deadline = time.monotonic() + seconds
        next_pub = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_pub:
                self.publish_inputs()
                next_pub = time.monotonic() + period
            self.rclpy.spin_once(self.node, timeout_sec=0.005)
            if until is not None and until():
                return True
        return until is None

    def clear(self) -> None:
        for lst in (self.arm_cmds, self.hand_cmds, self.executed, self.interventions, self.episodes):
            lst.clear()

    def call(self, srv_type, name: str, request, timeout: float = 15.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            fut = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < deadline:
                self.publish_inputs()
                self.rclpy.spin_once(self.node, timeout_sec=0.02)
            assert fut.done(), f"service {name} did not answer"
            return fut.result()
        finally:
            self.node.destroy_client(client)


def stamp(msg) -> float:
    return msg.sec + msg.nanosec * 1e-9
