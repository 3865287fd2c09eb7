"""The simulation bridge over real DDS: driver topics (Image, CameraInfo, JointState), the arbiter's
command topics move the simulated arm, episodes end at the time limit and reset by service, outcomes are latched
for subscribers that connect later."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)

ROOT = Path(__file__).resolve().parents[3]
EXE = ROOT / "install" / "bora_sim" / "lib" / "bora_sim" / "sim_bridge"


@pytest.fixture(scope="module")
def bridge():
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from bora_msgs.msg import EpisodeEvent

    assert EXE.is_file(), f"{EXE} missing: run `make build`"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.Popen(
        [
            str(EXE),
            "--ros-args",
            "--params-file",
            str(ROOT / "config" / "sim.yaml"),
            "-r",
            "__node:=sim_bridge",
            "-p",
            "time_limit_s:=3.0",
            "-p",
            "operator_enabled:=false",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    rclpy.init()
    node = rclpy.create_node("bridge_test_probe")
    rx = {k: [] for k in ("color", "depth", "info", "arm", "hand", "ep")}
    rel = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    for key, typ, topic in (
        ("color", Image, "/cameras/front/color/image_raw"),
        ("depth", Image, "/cameras/front/aligned_depth_to_color/image_raw"),
        ("info", CameraInfo, "/cameras/front/color/camera_info"),
        ("arm", JointState, "/franka/joint_states"),
        ("hand", JointState, "/hand/joint_states"),
        ("ep", EpisodeEvent, "/bora/episode"),
    ):
        node.create_subscription(
            typ,
            topic,
            lambda m, k=key: rx[k].append((time.monotonic(), m)),
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE) if key == "ep" else rel,
        )
    yield node, rx, proc
    node.destroy_node()
    rclpy.try_shutdown()
    proc.send_signal(2)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def spin(node, pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
        if pred():
            return True
    return False


def test_driver_topics(bridge):
    node, rx, _ = bridge
    assert spin(node, lambda: all(rx[k] for k in ("color", "depth", "info", "arm", "hand")), 60), {
        k: len(v) for k, v in rx.items()
    }
    c, d, i = rx["color"][-1][1], rx["depth"][-1][1], rx["info"][-1][1]
    assert (c.encoding, c.height, c.width, c.step) == ("rgb8", 96, 96, 288)
    assert (d.encoding, d.height, d.width) == ("32FC1", 96, 96)
    depth = np.frombuffer(bytes(d.data), np.float32)
    assert 0.2 < np.median(depth) < 3.0  # metres: the table seen by the front camera
    fy = 0.5 * 96 / np.tan(np.deg2rad(58.0) / 2)  # pinhole of the sim camera (fovy 58 deg)
    assert i.k[0] == pytest.approx(fy) and i.k[2] == pytest.approx(47.5) and i.k[8] == 1.0
    arm, hand = rx["arm"][-1][1], rx["hand"][-1][1]
    assert list(arm.name) == [f"fr3_joint{j}" for j in range(1, 8)] and len(hand.position) == 18
    assert c.header.stamp == arm.header.stamp == i.header.stamp  # one stamp per control tick


def test_arm_command_moves_the_arm(bridge):
    from std_msgs.msg import Float64MultiArray

    node, rx, _ = bridge
    pub = node.create_publisher(Float64MultiArray, "/arm_controller/commands", 10)
    assert spin(node, lambda: pub.get_subscription_count() > 0, 20), (
        "bridge does not subscribe to the arm command"
    )
    q0 = np.asarray(rx["arm"][-1][1].position)
    target = q0.copy()
    target[0] += 0.3
    target[3] += 0.2
    end = time.monotonic() + 12.0
    while time.monotonic() < end:
        pub.publish(Float64MultiArray(data=target.tolist()))
        rclpy.spin_once(node, timeout_sec=0.1)
        q = np.asarray(rx["arm"][-1][1].position)
        if np.abs(q - target).max() < 0.02:
            break
    assert np.abs(q - target).max() < 0.05, q - target
    assert abs(q[0] - q0[0]) > 0.25


def test_a_malformed_driver_command_is_refused_with_a_log_line(bridge):
    from rcl_interfaces.msg import Log
    from std_msgs.msg import Float64MultiArray

    node, rx, _ = bridge
    logs = []
    node.create_subscription(Log, "/rosout", lambda m: logs.append(m), 100)
    pub = node.create_publisher(Float64MultiArray, "/arm_controller/commands", 10)
    assert spin(node, lambda: pub.get_subscription_count() > 0, 20)
    time.sleep(0.5)  # /rosout discovery

    def refused():
        return [m.msg for m in logs if m.name == "sim_bridge" and "malformed commands so far" in m.msg]

    end = time.monotonic() + 10.0
    while not refused() and time.monotonic() < end:
        pub.publish(Float64MultiArray(data=[0.5] * 5))  # 5 values for a 7-joint arm
        spin(node, lambda: False, 0.3)
    assert refused(), [m.msg for m in logs][-5:]
    assert "arm command with 5 values ignored (expected 7)" in refused()[0]


def test_episode_events_carry_the_run_session(bridge):
    # every episode event of this run carries the run's recording session (a UUID made at start-up;
    # episode ids restart at 1 in every run, issue 16)
    import uuid

    node, rx, _ = bridge
    assert spin(node, lambda: len(rx["ep"]) >= 1, 30)
    sessions = {m.session_id for _, m in rx["ep"]}
    assert len(sessions) == 1 and str(uuid.UUID(next(iter(sessions)))) == next(iter(sessions))


def test_time_limit_timeout_and_reset_service(bridge):
    from std_srvs.srv import Trigger

    from bora_msgs.msg import EpisodeEvent
    from bora_sim.bridge_episodes import RESET_NOTE

    node, rx, _ = bridge
    # the time limit is a truncation: ABORT with the "timeout" note (converted to outcome "timeout", not a
    # terminal failure), as the simulator's datasets and the in-process online loop label it
    assert spin(node, lambda: any(m.kind == EpisodeEvent.ABORT for _, m in rx["ep"]), 30)
    fail = next(m for _, m in rx["ep"] if m.kind == EpisodeEvent.ABORT)
    assert fail.note == "timeout: time limit"
    assert not any(m.kind == EpisodeEvent.FAILURE for _, m in rx["ep"])
    # 3 s at 10 Hz: 30 physics steps after START; the event's step is on the wall-clock time base
    # (bora_policy.runtime.observation.episode_step), later only if the bridge's timer dropped ticks
    assert 30 <= fail.step <= 36 and fail.task == "pick_plush_toy"
    assert spin(
        node,
        lambda: any(
            m.kind == EpisodeEvent.START and m.episode_id == fail.episode_id + 1 for _, m in rx["ep"]
        ),
        10,
    )
    cli = node.create_client(Trigger, "/bora/sim/reset")
    assert cli.wait_for_service(timeout_sec=10)

    def n_start():
        return sum(m.kind == EpisodeEvent.START for _, m in rx["ep"])

    n = n_start()
    assert spin(node, lambda: n_start() > n, 10)  # a fresh episode: 3 s to its time limit, the reset comes first
    running, n = max(m.episode_id for _, m in rx["ep"] if m.kind == EpisodeEvent.START), n_start()
    fut = cli.call_async(Trigger.Request())
    assert spin(node, fut.done, 10) and fut.result().success
    assert fut.result().message.startswith(f"episode {running} aborted; episode {running + 1} starts")
    assert spin(node, lambda: n_start() > n, 10)
    # the reset ended the running episode with an outcome (before: the next START came without one), sent
    # before the next START on the same topic
    evs = [m for _, m in rx["ep"] if m.episode_id in (running, running + 1)]
    assert [(m.episode_id, m.kind) for m in evs] == [
        (running, EpisodeEvent.START), (running, EpisodeEvent.ABORT), (running + 1, EpisodeEvent.START)
    ]
    assert evs[1].note == RESET_NOTE


def test_outcomes_are_latched_for_a_subscriber_that_connects_later(bridge):
    """Each outcome is published again on /bora/episode/ended (transient local, the last 100): a subscriber that
    connects after it, as a restarted live trainer does, receives it (the same session, id, kind and step as on
    /bora/episode), and no START."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent

    node, rx, _ = bridge
    assert spin(node, lambda: any(m.kind != EpisodeEvent.START for _, m in rx["ep"]), 30)
    ended = [(m.session_id, m.episode_id, m.kind, m.step) for _, m in rx["ep"] if m.kind != EpisodeEvent.START]
    late = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(EpisodeEvent, "/bora/episode/ended", late.append, qos)
    assert spin(node, lambda: len(late) >= len(ended), 10), (ended, late)
    assert [(m.session_id, m.episode_id, m.kind, m.step) for m in late][: len(ended)] == ended
    assert all(m.kind != EpisodeEvent.START for m in late)


def test_arm_mesh_parameter_offers_exactly_the_scenes_choices():
    """The bridge's arm_mesh choices are bora_sim.scene.ARM_MESHES and its default is the env's (detailed)."""
    import inspect

    from bora_sim.env import BoraSimEnv
    from bora_sim.nodes.bridge_node import SPECS
    from bora_sim.scene import ARM_MESHES

    spec = next(s for s in SPECS if s.name == "arm_mesh")
    assert sorted(spec.choices) == sorted(ARM_MESHES)
    assert spec.default == inspect.signature(BoraSimEnv).parameters["arm_mesh"].default == "detailed"
