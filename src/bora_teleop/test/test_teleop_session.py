"""The teleop node keeps each episode's recording session (bora_msgs ``session_id``, issue 16) on every
message it publishes for that episode: the session of the node that numbered the episode (the sim
bridge's START), or its own UUID for episodes it starts itself (MarkEpisode START).

Real teleop node process over loopback DDS (``teleop_rig``)."""

from __future__ import annotations

import uuid

import rclpy  # noqa: E402
from teleop_rig import READY, make_rig, start_node, stop_node  # noqa: E402


def test_every_message_of_an_episode_carries_its_session(tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent
    from bora_msgs.srv import MarkEpisode

    proc, log = start_node(tmp_path, ramp_time_s=0.2)
    rig = make_rig(proc)
    try:
        assert rig.run(30.0, until=lambda: len(rig.executed) >= 3), log.read_text()
        pub = rig.node.create_publisher(
            EpisodeEvent, "/bora/episode", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        bridge = "bridge-session-0001"
        pub.publish(EpisodeEvent(episode_id=5, session_id=bridge, kind=EpisodeEvent.START, task="t"))
        assert rig.run(5.0, until=lambda: any(m.command.session_id == bridge for m in rig.executed)), log.read_text()
        rig.clear()
        rig.run(0.3)
        assert rig.executed and {m.command.session_id for m in rig.executed} == {bridge}
        # a takeover in that episode: its events carry the bridge's session
        rig.arm_target = READY + 0.05
        rig.pub_takeover.publish(rig.Bool(data=True))
        assert rig.run(5.0, until=lambda: any(e.kind == 0 for e in rig.interventions))
        rig.pub_takeover.publish(rig.Bool(data=False))
        assert rig.run(5.0, until=lambda: any(e.kind == 1 for e in rig.interventions))
        assert {e.session_id for e in rig.interventions} == {bridge}
        rig.arm_target = None
        # an episode the teleop starts itself: its own UUID, on the event and on the executed commands
        rig.clear()
        res = rig.call(MarkEpisode, "/bora/mark_episode", MarkEpisode.Request(kind=MarkEpisode.Request.START))
        assert res.success and res.episode_id == 6
        rig.episode_id = 6  # the policy follows the new episode
        assert rig.run(3.0, until=lambda: any(e.kind == 0 for e in rig.episodes))
        own = next(e for e in rig.episodes if e.kind == 0).session_id
        assert own != bridge and str(uuid.UUID(own)) == own
        rig.clear()
        rig.run(0.5)
        assert rig.executed and {m.command.session_id for m in rig.executed} == {own}
        rig.node.destroy_publisher(pub)
    finally:
        rig.node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)
