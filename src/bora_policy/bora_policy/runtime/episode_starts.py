"""The policy node's episode inputs: START events from both episode topics, the episodes its observations
name, and the recording session of each recent episode (split from policy_node.py, which stays thin).

A START reaches the policy up to three ways: on /bora/episode, on the latched /bora/episode/current
(``episode_current_topic``), and indirectly, as an observation of a newer episode (the sync node heard the
START first and its observation arrived before the event; ``EpisodeGate.observe``). Each START must reset
the executor once (ours, issue 20 and review). ``EpisodeStarts.start`` applies a START when

* it is new (``StartLatch``): the latched copy of one applied already, or of an older one, is ignored; the
  same START heard again on the other topic is ignored;
* it is not the episode already adopted from its observations (``EpisodeGate.start`` answers False: the
  START only sets the time base). The observations must name the same recording session (or none): a
  START of another session with the same id (a restarted bridge numbering from 1 again) is a new episode.

Before this class the latched topic had the adopted-episode check and /bora/episode did not, so an
observation that overtook its START made the START reset the same episode a second time (found in review).

Library code: no rclpy. Thread-safe: the executor thread reports STARTs, the control tick observations.
"""

from __future__ import annotations

import threading

from bora_policy.common.episode_latch import StartLatch
from bora_policy.runtime.episode_gate import EpisodeGate


class EpisodeStarts:
    def __init__(self, gate: EpisodeGate, keep: int = 8):
        if keep < 1:
            raise ValueError(f"EpisodeStarts: keep must be >= 1, got {keep}")
        self.gate = gate
        self.latch = StartLatch()  # the START applied last (common/episode_latch.py)
        self.keep = int(keep)
        self._sessions: dict[int, str] = {}  # recording session of each recent episode, oldest first
        self._lock = threading.Lock()

    def start(self, session_id: str, episode_id: int, stamp: float, latched: bool = False) -> bool:
        """A START of ``(session_id, episode_id)`` stamped ``stamp`` (seconds), heard on the latched topic
        (``latched``) or on /bora/episode. True when it resets the executor (a new episode at the next tick)."""
        sid, ep, t = str(session_id), int(episode_id), float(stamp)
        if latched and not self.latch.is_new(sid, ep, t):
            return False  # the latched copy of a START applied already, or of an older one
        if self.latch.is_duplicate(sid, ep):
            return False  # heard on the other topic first: applied already
        self.latch.applied(sid, ep, t)
        observed = self.session(ep)  # the session its observations named, if it was adopted from them
        reset = self.gate.start(ep, t, reset_adopted=bool(observed) and observed != sid)
        self._remember(ep, sid)
        return reset

    def observe(self, episode_id: int, step: int, stamp: float, session_id: str = "") -> None:
        """An observation of ``episode_id`` at ``step`` (``EpisodeGate.observe``: adopted when newer than any
        episode known); its session is kept for an episode no START named yet."""
        ep = int(episode_id)
        self.gate.observe(ep, int(step), float(stamp))
        if session_id:
            with self._lock:
                known = ep in self._sessions
            if not known:
                self._remember(ep, str(session_id))

    def session(self, episode_id: int) -> str:
        """The recording session of ``episode_id`` ("" when unknown)."""
        with self._lock:
            return self._sessions.get(int(episode_id), "")

    def _remember(self, ep: int, sid: str) -> None:
        with self._lock:
            self._sessions.pop(ep, None)
            self._sessions[ep] = sid
            while len(self._sessions) > self.keep:
                self._sessions.pop(next(iter(self._sessions)))
