"""The teleop node and the latched current-episode START (/bora/episode/current, issue 20 item 3).

Real teleop node process over loopback DDS (``teleop_rig``):
* a START published (latched) BEFORE the node starts, and never on /bora/episode, is applied: the
  executed commands carry its episode and session;
* an older START of the same session on the latched topic is ignored (the commands keep the newer id);
* a MarkEpisode START is published latched too: a reader that connects afterwards gets it;
* the outcomes the operator marks (MarkEpisode, as on the real robot; the keys take the same path) are published
  again on /bora/episode/ended (transient local, the last ENDED_DEPTH): a restarted live trainer's subscription,
  created after them, receives each of them and no START; ``episode_ended_topic: ""`` switches that off.
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


def _mark(rig, kind: int):
    from bora_msgs.srv import MarkEpisode

    res = rig.call(MarkEpisode, "/bora/mark_episode", MarkEpisode.Request(kind=kind, note=f"k{kind}"))
    assert res.success, res
    return int(res.episode_id)


def _late_readers(rig):
    """Subscriptions created now, as a restarted trainer's (bora_trainer/nodes/trainer_node.py: transient local,
    depth ENDED_DEPTH) on /bora/episode/ended, and one on /bora/episode/current."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent
    from bora_policy.common.episode_latch import ENDED_DEPTH

    def qos(depth):
        rel, tl = ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL
        return QoSProfile(depth=depth, reliability=rel, durability=tl)

    ended, current = [], []
    rig.node.create_subscription(EpisodeEvent, "/bora/episode/ended", ended.append, qos(ENDED_DEPTH))
    rig.node.create_subscription(EpisodeEvent, "/bora/episode/current", current.append, qos(1))
    return ended, current


def _operator_marks_three_episodes(rig) -> list[tuple[int, int]]:
    """START / SUCCESS, START / ABORT, START / FAILURE through MarkEpisode; returns the (kind, episode) outcomes,
    once all six events have come on /bora/episode (the ended copy is published right after each)."""
    from bora_msgs.msg import EpisodeEvent as E

    # the node is up and matched both ways (its driver commands come), then no more policy commands
    assert rig.run(40.0, until=lambda: len(rig.executed) >= 3), "teleop node produced no ExecutedCommand"
    rig.policy = None
    rig.clear()
    outcomes = []
    for end in (E.SUCCESS, E.ABORT, E.FAILURE):
        ep = _mark(rig, E.START)
        assert _mark(rig, end) == ep
        outcomes.append((end, ep))
    assert [b[1] - a[1] for a, b in zip(outcomes, outcomes[1:])] == [1, 1]  # each START numbers the next
    assert rig.run(10.0, until=lambda: len(rig.episodes) >= 6), [(m.kind, m.episode_id) for m in rig.episodes]
    return outcomes


def test_teleop_outcomes_reach_a_late_subscriber_of_episode_ended(tmp_path):
    from bora_msgs.msg import EpisodeEvent

    proc, log = start_node(tmp_path, ramp_time_s=0.2)
    rclpy.init()
    rig = Rig()
    try:
        outcomes = _operator_marks_three_episodes(rig)
        ended, current = _late_readers(rig)  # created after every outcome was published
        assert rig.run(10.0, until=lambda: len(ended) >= 3 and current), log.read_text()[-3000:]
        rig.run(0.5)  # nothing more comes
        assert [(m.kind, m.episode_id) for m in ended] == outcomes
        # the same messages as on /bora/episode (session, stamp, note), STARTs excluded
        sent = [m for m in rig.episodes if m.kind != EpisodeEvent.START]
        key = [(m.session_id, m.header.stamp.sec, m.header.stamp.nanosec, m.note, m.task) for m in ended]
        assert key == [(m.session_id, m.header.stamp.sec, m.header.stamp.nanosec, m.note, m.task) for m in sent]
        assert str(uuid.UUID(ended[0].session_id)) == ended[0].session_id and ended[0].task == "pick_plush_toy"
        assert [(m.kind, m.episode_id) for m in current] == [(EpisodeEvent.START, outcomes[-1][1])]
    finally:
        rig.node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)


def test_episode_ended_topic_empty_publishes_no_outcome_copy(tmp_path):
    proc, log = start_node(tmp_path, ramp_time_s=0.2, episode_ended_topic="")
    rclpy.init()
    rig = Rig()
    try:
        _operator_marks_three_episodes(rig)
        ended, current = _late_readers(rig)
        # the latched START reaches the late reader (discovery done); no outcome copy exists to reach it
        assert rig.run(10.0, until=lambda: bool(current)), log.read_text()[-3000:]
        rig.run(1.0)
        assert ended == [] and rig.node.count_publishers("/bora/episode/ended") == 0
        assert rig.node.count_publishers("/bora/episode/current") == 1
    finally:
        rig.node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)
