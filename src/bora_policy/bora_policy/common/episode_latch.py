"""Which episode START a node applied last, and whether a START heard again is a new one.

Episode events on /bora/episode are volatile: a node that connects after a START (the sim bridge
publishes episode 1 in its constructor, before the sync, policy and teleop nodes have matched, or a node
restarted mid-episode) never sees it, and stamps observations, commands and ExecutedCommands with
episode id 0 (issue 20, item 3). The node that numbers episodes therefore also publishes the current
episode's START on a latched topic (``episode_current_topic``, default /bora/episode/current,
TRANSIENT_LOCAL, depth 1: a late reader gets the last one). Every reader hears that START twice (on both
topics) and, after a restart, once more, so it is applied only when it is new (ours, no paper):

* the same ``(session_id, episode_id)`` as the START applied last: a duplicate, ignored;
* the same session and a smaller episode id: an older episode (ids only grow within a recording
  session), ignored;
* another session (a restarted bridge, or the teleop numbering episodes of its own): newer only if its
  stamp is later than the applied START's stamp.

Library code: no rclpy.
"""

from __future__ import annotations

import math

# the outcomes the sim bridge keeps on its latched /bora/episode/ended for late subscribers, and the depth the
# restarted live trainer subscribes with (one value for both: bora_policy/common/episode_events.py,
# bora_trainer/online/episode_ends.py): the robot runs at most a round's episodes past the last one taken in while
# the trainer is down, far fewer than this
ENDED_DEPTH = 100


class StartLatch:
    def __init__(self):
        self.session_id: str | None = None  # None: no START applied yet
        self.episode_id = 0
        self.stamp = -math.inf

    def is_new(self, session_id: str, episode_id: int, stamp: float) -> bool:
        """Whether a START of ``(session_id, episode_id)`` stamped ``stamp`` (seconds) should be applied."""
        if self.session_id is None:
            return True
        if str(session_id) == self.session_id:
            return int(episode_id) > self.episode_id
        return float(stamp) > self.stamp

    def is_duplicate(self, session_id: str, episode_id: int) -> bool:
        """The START applied last, heard again (on the other topic)."""
        return self.session_id == str(session_id) and self.episode_id == int(episode_id)

    def applied(self, session_id: str, episode_id: int, stamp: float) -> None:
        """Record the START the node has just applied."""
        self.session_id, self.episode_id, self.stamp = str(session_id), int(episode_id), float(stamp)
