"""The sim bridge's episode bookkeeping, free of ROS (``bora_sim/nodes/bridge_node.py`` is the node around it).

Episode ids count from 1 in every recording session (a UUID made when the bridge starts: bora_msgs
EpisodeEvent.session_id); episode ``e`` runs the env seed ``seed + e - 1``. Each control tick
(:meth:`BridgeEpisodes.tick`) does one of four things:

* ``wait``: the next episode may not start yet: its id is above the trainer's gate (``episode_gate_topic``,
  the highest episode id that may start; with a gate even episode 1 waits for its first value);
* ``idle``: the episode has its outcome and ``auto_reset`` is off: nothing moves until a reset is requested;
* ``start``: the next episode starts (the caller resets the env and calls :meth:`BridgeEpisodes.start`);
* ``step``: the running episode advances one control step.

A reset requested while an episode runs (``/bora/sim/reset``) ends it at once: the node sends its outcome, an
ABORT noted ``RESET_NOTE`` (outcome ``abort``, a truncation, in bora_trainer.data.bag_records.outcome_of).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

WAIT, IDLE, START, STEP = "wait", "idle", "start", "step"
RESET_NOTE = "reset: the bridge's reset service"
"""Note of the ABORT that ends an episode reset while it ran (not ``timeout...``: its outcome is ``abort``)."""


@dataclass(frozen=True)
class Tick:
    """What one control tick does (``action``: WAIT, IDLE, START or STEP) and a line for the log ('' none)."""

    action: str
    log: str = ""


class BridgeEpisodes:
    """Which episode runs, whether the next one may start, and what a control tick does (module docstring)."""

    def __init__(self, seed: int, auto_reset: bool, gated: bool, session_id: str | None = None) -> None:
        self.seed, self.auto_reset = int(seed), bool(auto_reset)
        self.session_id = str(uuid.uuid4()) if session_id is None else str(session_id)
        self.episode_id = 0  # the last episode started (0: none yet)
        self.gate: int | None = 0 if gated else None  # closed until the trainer's first value
        self.reset_pending = bool(gated)  # without a gate the node starts episode 1 at once (start())
        self.ended = False  # the current episode has its outcome
        self.gate_waiting = False
        self.dropped_commands = 0  # direct commands refused (refuse_command)

    def env_seed(self, episode_id: int | None = None) -> int:
        """The env seed of ``episode_id`` (default: the current episode): ``seed + episode_id - 1``."""
        return self.seed + (self.episode_id if episode_id is None else int(episode_id)) - 1

    @property
    def running(self) -> bool:
        """An episode has started and has no outcome yet."""
        return self.episode_id > 0 and not self.ended

    def refuse_command(self, episode_id: int, session_id: str = "") -> str:
        """Why a direct command stamped (``session_id``, ``episode_id``) may not drive the robot, '' when it may;
        each refusal is counted in ``dropped_commands``. Refused: a command of another recording session (an empty
        session id is unknown and passes) or of another episode than the current one -- before this check a
        command the policy planned for the previous episode, still in flight at a START, moved the freshly reset
        robot (found in review). A command of the current episode after its outcome passes: nothing steps until
        the next START, whose reset replaces the target."""
        why = ""
        if session_id and session_id != self.session_id:
            why = f"direct command of session {session_id} dropped: this run's session is {self.session_id}"
        elif int(episode_id) != self.episode_id:
            why = f"direct command of episode {int(episode_id)} dropped: the current episode is {self.episode_id}"
        self.dropped_commands += bool(why)
        return why

    def set_gate(self, value: int) -> None:
        """The trainer's gate: the highest episode id that may start."""
        self.gate = int(value)

    def start(self) -> int:
        """The next episode starts now; returns its id."""
        self.episode_id += 1
        self.reset_pending = self.ended = self.gate_waiting = False
        return self.episode_id

    def end(self) -> None:
        """The current episode's outcome was sent: with ``auto_reset`` the next one starts at the next tick
        (gate permitting), else nothing moves until :meth:`request_reset`."""
        self.ended, self.reset_pending = True, self.auto_reset

    def request_reset(self) -> bool:
        """``/bora/sim/reset``: the next episode starts at the next tick, or when the gate lets it. Returns whether
        an episode was running: it has ended now, and the caller sends its outcome (ABORT, ``RESET_NOTE``).
        Before, the next START followed without an outcome, so recorders and the trainer never saw the episode
        end (found in review; an episode without an outcome holds the trainer's round)."""
        was_running = self.running
        self.ended = self.reset_pending = True
        return was_running

    def tick(self) -> Tick:
        """What this control tick does (module docstring); logs once when the next episode starts waiting for
        the gate and once when the gate lets it start."""
        if self.reset_pending and self.gate is not None and self.episode_id + 1 > self.gate:
            if self.gate_waiting:
                return Tick(WAIT)
            self.gate_waiting = True  # the robot waits at a round boundary: no step, no new episode
            return Tick(WAIT, f"episode {self.episode_id + 1} waits for the trainer (gate {self.gate})")
        if self.ended and not self.reset_pending:  # auto_reset off: nothing moves after the outcome
            return Tick(IDLE)
        if self.reset_pending:
            log = f"gate {self.gate}; episode {self.episode_id + 1} starts" if self.gate_waiting else ""
            return Tick(START, log)
        return Tick(STEP)


__all__ = ["IDLE", "RESET_NOTE", "START", "STEP", "WAIT", "BridgeEpisodes", "Tick"]
