"""The teleop node and the latched current-episode START (/bora/episode/current, issue 20 item 3).

Real teleop node process over loopback DDS (``teleop_rig``):
* a START published (latched) BEFORE the node starts, and never on /bora/episode, is applied: the
  executed commands carry its episode and session;
* an older START of the same session on the latched topic is ignored (the commands keep the newer id);
* a MarkEpisode START is published latched too: a reader that connects afterwards gets it.
"""

from __future__ import annotations

import time
import uuid

import rclpy  # noqa: E402
from teleop_rig import Rig, start_node, stop_node  # noqa: E402


def _latched_reader(rig, got: list):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent

    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return rig.node.create_subscription(EpisodeEvent, "/bora/episode/current", got.append, qos)


def test_teleop_applies_the_latched_start_and_publishes_its_own(tmp_path):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent
    from bora_msgs.srv import MarkEpisode

    rclpy.init()
    rig = Rig()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = rig.node.create_publisher(EpisodeEvent, "/bora/episode/current", latched)
    bridge = "bridge-session-latch"
    pub.publish(EpisodeEvent(episode_id=7, session_id=bridge, kind=EpisodeEvent.START, task="t"))
    proc, log = start_node(tmp_path, ramp_time_s=0.2)  # connects after the START was published
    try:
        rig.episode_id = 7  # the policy's commands are of episode 7
        ok = rig.run(40.0, until=lambda: sum(not m.held for m in rig.executed) >= 5)
        assert ok, log.read_text()[-3000:]
        assert "episode 7 START" in log.read_text()
        rig.clear()
        # an older START of the same session (e.g. a stale latched copy): ignored
        pub.publish(EpisodeEvent(episode_id=6, session_id=bridge, kind=EpisodeEvent.START, task="t"))
        rig.run(1.0)
        ids = {(int(m.command.episode_id), m.command.session_id) for m in rig.executed}
        assert ids == {(7, bridge)}, ids
        assert "episode 6 START" not in log.read_text()
        rig.node.destroy_publisher(pub)
        # the teleop numbers an episode itself: its START is latched too
        res = rig.call(MarkEpisode, "/bora/mark_episode", MarkEpisode.Request(kind=MarkEpisode.Request.START))
        assert res.success and res.episode_id == 8, res
        time.sleep(0.5)
        got: list = []
        _latched_reader(rig, got)  # connects after the START
        assert rig.run(10.0, until=lambda: bool(got)), "no latched START from the teleop"
        ev = got[-1]
        assert (ev.kind, ev.episode_id) == (EpisodeEvent.START, 8) and ev.session_id != bridge
        assert str(uuid.UUID(ev.session_id)) == ev.session_id
    finally:
        rig.node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)
