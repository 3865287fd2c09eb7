"""Which episode the policy's commands belong to, and whether that episode may still be commanded.

Two faults of the live graph (issue 20) came from the policy knowing the episode only from START events:

* a policy (re)started mid-episode never sees that episode's START (events are not latched), so its
  commands carried ``episode_id`` 0 while its chunks, planned from observations, carried the real id;
  the arbiter follows the commands' ids, so ExecutedCommand and InterventionEvent got 0 too;
* a START or an outcome reaches the policy one DDS hop after it happened: a tick in between sent a
  command of the episode that had just ended (observed 11 ms after the new START).

``EpisodeGate`` (ours; no paper equation) therefore takes the episode from three sources, in this order
of authority: a START event (applied by the control tick, so a tick never mixes the old chunk with the
new id); an observation of a NEWER episode than the current one (the sync node stamps each observation
with the episode it saw START for, and its step on the episode's time base): the episode is adopted
with its time base recovered from the observation, ``t_start = stamp - step / control_hz``; an outcome
(SUCCESS / FAILURE / ABORT) of the current episode, after which the episode is over and no command of it
is sent (``may_command`` is False) until the next episode begins. ``may_command`` is also False while a
newer START waits for the next tick, so a START that arrives during a tick stops that tick's command.

An observation without an episode (id 0: its sync node saw no START, e.g. it was restarted mid-episode)
is taken as one of the current episode once an episode is known, if it was taken at or after the
episode's start (its stamp >= ``t_start``, the sync node's own rule, runtime/episode_labels.py): it is the
same robot's fresh state, and refusing it would leave the policy repeating its last chunk's final row
without a word. One stamped before the start is the previous episode's (the robot before its reset):
found in review, the newest observation when a START came, id 0, was held and planned from as the new
episode's first state.

Ids only move forward (an observation of an older episode than the current one, e.g. the previous
episode's last frame in flight, is ignored); a START event is authoritative and may set any id. The
START of the episode already adopted from its observations resets nothing (``start``): one reset per
episode.
Thread-safe: the executor thread reports events, the control tick and the inference thread read.
Library code: no rclpy.
"""

from __future__ import annotations

import threading


class EpisodeGate:
    def __init__(self, control_hz: float):
        if not control_hz > 0:
            raise ValueError(f"EpisodeGate: control_hz must be > 0, got {control_hz!r}")
        self.control_hz = float(control_hz)
        self._lock = threading.Lock()
        self.episode_id = 0  # 0: no episode known (nobody in the graph saw a START yet)
        self.t_start: float | None = None  # the current episode's time base (its START stamp)
        self.ended = False  # an outcome of the current episode was received
        self.last_ended = 0  # the newest episode id an outcome was received for
        self.source = ""  # how the current episode became known: "start" or "observation"
        self._pending: tuple[int, float, str] | None = None

    # ------------------------------------------------------------------ events (executor thread)
    def start(self, episode_id: int, stamp: float, reset_adopted: bool = False) -> bool:
        """A START event: the episode begins at ``stamp`` (applied by the next ``take_pending``). True when
        it starts a new episode (a reset at the next tick).

        False for the START of the episode already adopted from its observations (the current one, or the
        one waiting for the tick, with source "observation": the sync node heard the START first and its
        observation reached this node before the event did): the same episode, so no reset of its own. Its
        START stamp becomes the time base and "start" the source. Found in review: that late START reset
        the executor a second time, dropping the episode's first chunk. ``reset_adopted``: treat it as a
        new episode anyway (the caller knows the observations named another recording session).
        """
        ep, t = int(episode_id), float(stamp)
        with self._lock:
            p = self._pending
            if not reset_adopted and p is not None and p[0] == ep and p[2] == "observation":
                self._pending = (ep, t, "start")  # the one reset stays, on the START's time base
                return False
            adopted = self.known and self.episode_id == ep and self.source == "observation"
            if not reset_adopted and p is None and adopted:
                self.t_start, self.source = t, "start"
                return False
            self._pending = (ep, t, "start")
            return True

    def outcome(self, episode_id: int) -> None:
        """SUCCESS / FAILURE / ABORT of ``episode_id``: no further command of it."""
        ep = int(episode_id)
        with self._lock:
            self.last_ended = max(self.last_ended, ep)
            if ep == self.episode_id or (self.episode_id == 0 and self.t_start is None):
                self.ended = True
            if self._pending is not None and self._pending[0] == ep:
                self._pending = None  # its START never reached a tick: nothing of it is commanded

    def observe(self, episode_id: int, step: int, stamp: float) -> None:
        """An observation of ``episode_id`` at control step ``step`` (stamp ``stamp``): adopt the episode
        when it is newer than every one known here (its START was missed)."""
        ep = int(episode_id)
        if ep == 0:
            return
        with self._lock:
            newest = max(self.episode_id, self._pending[0] if self._pending else 0, self.last_ended)
            if ep > newest:
                self._pending = (ep, float(stamp) - max(int(step), 0) / self.control_hz, "observation")

    # ------------------------------------------------------------------ the control tick
    def take_pending(self) -> tuple[int, float, str] | None:
        """Apply a waiting new episode: returns ``(episode_id, t_start, source)`` (the caller resets its
        executor) or None."""
        with self._lock:
            p, self._pending = self._pending, None
            if p is None:
                return None
            self.episode_id, self.t_start, self.source = p
            self.ended = p[0] <= self.last_ended and p[2] != "start"
            return p

    @property
    def known(self) -> bool:
        """An episode id is known (from a START or an observation)."""
        return self.t_start is not None

    def may_command(self) -> bool:
        """True unless the current episode has ended or a newer one waits for the next tick."""
        with self._lock:
            return not self.ended and self._pending is None

    def belongs(self, episode_id: int, stamp: float) -> bool:
        """An observation of ``episode_id`` stamped ``stamp`` is one of the current episode: no episode is
        known yet, the ids are equal, or the observation carries none (0) and was taken at or after the
        episode's start."""
        ep = int(episode_id)
        if self.t_start is None or ep == self.episode_id:
            return True
        return ep == 0 and float(stamp) >= self.t_start

    def accepts(self, episode_id: int, stamp: float) -> bool:
        """Whether a chunk planned from an observation of ``episode_id`` stamped ``stamp`` belongs to the
        episode that is being commanded (False for an ended episode or an older/other one)."""
        with self._lock:
            if self._pending is not None or self.ended:
                return False
            return self.belongs(episode_id, stamp)
