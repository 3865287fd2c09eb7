"""The simulation bridge with ``auto_reset: false`` over real DDS: after an episode's outcome nothing moves and no
further outcome is sent until ``/bora/sim/reset`` (found in review: it stepped on and sent an ABORT every tick).

The first episode's outcome is awaited on the latched ``/bora/episode/ended`` (config/sim.yaml): the episode lasts
1 s from the bridge's start, so on a loaded machine (CI, two test workers) the probe's volatile ``/bora/episode``
subscription could be matched only after that ABORT had been published, and it then waited 30 s for nothing
(seen once in CI, 2026-12-08)."""

from __future__ import annotations

import os
import subprocess

import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)
from test_bridge import EXE, ROOT
from test_bridge import spin as _spin


def test_without_auto_reset_an_ended_episode_stays_ended_until_reset():
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from bora_msgs.msg import EpisodeEvent

    assert EXE.is_file(), f"{EXE} missing: run `make build`"
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.Popen(
        [str(EXE), "--ros-args", "--params-file", str(ROOT / "config" / "sim.yaml"), "-r", "__node:=sim_bridge",
         "-p", "time_limit_s:=1.0", "-p", "operator_enabled:=false", "-p", "auto_reset:=false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    rclpy.init()
    node = rclpy.create_node("bridge_auto_reset_probe")
    ev, ended, arm = [], [], []
    rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(EpisodeEvent, "/bora/episode", ev.append, rel)
    node.create_subscription(EpisodeEvent, "/bora/episode/ended", ended.append, latched)
    node.create_subscription(JointState, "/franka/joint_states", arm.append, rel)
    try:
        assert _spin(node, lambda: any(m.kind == EpisodeEvent.ABORT for m in ended), 30)
        _spin(node, lambda: False, 0.5)  # messages of the outcome's tick still on their way
        n_arm, n_ev = len(arm), len(ev)
        _spin(node, lambda: False, 1.5)  # 15 ticks at 10 Hz
        assert [m.kind for m in ended] == [EpisodeEvent.ABORT] and len(ev) == n_ev  # one outcome, nothing after it
        assert len(arm) == n_arm  # no physics step, nothing published
        cli = node.create_client(Trigger, "/bora/sim/reset")
        assert cli.wait_for_service(timeout_sec=10)
        fut = cli.call_async(Trigger.Request())
        assert _spin(node, fut.done, 10) and fut.result().success
        assert _spin(node, lambda: [m.kind for m in ev[n_ev:]].count(EpisodeEvent.START) >= 1 and len(arm) > n_arm, 10)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.send_signal(2)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
