"""Which episodes of the robot ended while the live trainer recorded nothing (ours).

A live trainer (``live:=true``: it is the recorder) that crashes is restarted by the supervisor, and the simulated
robot runs episodes up to the published round gate meanwhile. No recording holds the outcome of an episode that
ended in that window, and the gate, which counts every id above the last one taken in as still to come, would wait
for it for good (the robot with it).

The sim bridge, and the teleop for the outcomes it marks (on the real robot the only source), say every outcome
twice (bora_policy/common/episode_events.py): on ``/bora/episode`` (recorded) and again on ``/bora/episode/ended``
(bora_msgs/EpisodeEvent, transient local, the last :data:`ENDED_DEPTH` outcomes; not recorded), so a trainer that
connects later receives the outcomes it missed. :class:`EpisodeEnds` collects them (:meth:`EpisodeEnds.event`);
:meth:`EpisodeEnds.unrecorded` lists those whose outcome no recording holds. Only an explicit outcome counts: an
episode whose START was seen and whose outcome was not (it is running, e.g. the recorder was restarted mid-episode)
is never listed. An end counts ``wait_s`` after it was received, so the same outcome on ``/bora/episode`` has reached
the recording and a poll has converted it (the two are separate messages, delivered in either order).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bora_policy.common.episode_latch import ENDED_DEPTH  # noqa: F401  (the one value; re-exported)

# bora_msgs/EpisodeEvent kinds that end an episode: SUCCESS, FAILURE, ABORT (START = 0)
OUTCOME_KINDS = (1, 2, 3)


class EpisodeEnds:
    """The outcomes received on the ended-episodes topic, by (session, id), with the time each was received
    (module docstring). :meth:`event` runs on the subscriptions' thread, :meth:`unrecorded` on the loop's."""

    def __init__(self, wait_s: float, clock: Callable[[], float] = time.monotonic):
        if not wait_s >= 0:
            raise ValueError(f"EpisodeEnds.wait_s must be >= 0 seconds, got {wait_s}")
        self.wait_s, self._clock = float(wait_s), clock
        self._ends: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def event(self, session: str, episode_id: int, kind: int) -> None:
        """An episode event; only an outcome (:data:`OUTCOME_KINDS`) of a known session is kept (a START says
        nothing about an end, and without a session an id cannot be matched to the recordings)."""
        if int(kind) not in OUTCOME_KINDS or not session:
            return
        with self._lock:
            self._ends.setdefault((str(session), int(episode_id)), self._clock())  # a repeat keeps its first time

    def unrecorded(self, seen: Callable[[str], int], recorded: set[tuple[str, int]]) -> list[tuple[str, int]]:
        """(session, id) of the episodes that ended at least ``wait_s`` ago, above ``seen(session)`` (the highest
        id of that session taken in: ingested or skipped) and whose outcome is not in ``recorded`` ((session, id) of
        every outcome the recordings hold), sorted."""
        now, top = self._clock(), {}
        with self._lock:
            ends = [k for k, t in self._ends.items() if now - t >= self.wait_s and k not in recorded]
        for sess, _ in ends:
            if sess not in top:
                top[sess] = int(seen(sess))
        return sorted(k for k in ends if k[1] > top[k[0]])
