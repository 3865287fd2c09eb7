"""The episode events of the node that numbers episodes (the sim bridge; the teleop for MarkEpisode / keys): each
one on ``/bora/episode``, and again on two latched topics for nodes that connect later (both bora_msgs/EpisodeEvent,
reliable, transient local, not recorded; an empty topic: off).

* ``/bora/episode/current`` (depth 1): each START, so a node that connects after it (episode 1 starts in the
  bridge's constructor, before the graph has matched) or restarts mid-episode still learns the running episode
  (bora_policy/common/episode_latch.py);
* ``/bora/episode/ended`` (depth ``ENDED_DEPTH``, 100): each outcome (SUCCESS, FAILURE, ABORT), so a live trainer
  restarted after a crash learns which episodes ended while it recorded nothing and skips them, instead of its
  round gate waiting for them for good (bora_trainer/online/episode_ends.py).

A transient-local publisher serves volatile subscribers too (DDS QoS matching), so existing subscribers are
unaffected. ``/bora/episode`` itself stays volatile: ``ros2 bag record`` subscribes transient local when every
publisher offers it and would then record earlier events again at the start of each bag.

Shared by the sim bridge (bora_sim/nodes/bridge_node.py) and the teleop (bora_teleop/nodes/teleop_node.py), which
may import nothing of ours but ``bora_policy.common``: hence here, one of the two ``common`` modules that use rclpy
(with common/node.py; docs/architecture.md).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from bora_policy.common.episode_latch import ENDED_DEPTH

RELIABLE = ReliabilityPolicy.RELIABLE


class EpisodeEvents:
    """Publishers of one node's episode events (module docstring)."""

    def __init__(self, node, msg_cls, episode: str, current: str, ended: str):
        self._cls = msg_cls

        def latched(depth: int) -> QoSProfile:
            return QoSProfile(depth=depth, reliability=RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

        self.episode = node.create_publisher(msg_cls, episode, QoSProfile(depth=100, reliability=RELIABLE))
        self.current = node.create_publisher(msg_cls, current, latched(1)) if current else None
        self.ended = node.create_publisher(msg_cls, ended, latched(ENDED_DEPTH)) if ended else None

    def publish(self, ev) -> None:
        """``ev`` on the events topic, and a START on the current one, an outcome on the ended one."""
        self.episode.publish(ev)
        latched = self.current if ev.kind == self._cls.START else self.ended
        if latched is not None:
            latched.publish(ev)
