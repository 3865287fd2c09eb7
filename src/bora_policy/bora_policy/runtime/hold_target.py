"""Where the policy node holds in HOLD mode (SetMode HOLD), and when it sends nothing (no rclpy, no torch).

HOLD used to publish the newest observation's measured joint state at every control tick (found in review):

* while the observations were stale (the sync node or a camera down) it went on sending that old state as a
  fresh command, so the teleop arbiter's watchdog hold never engaged, and whatever had moved the robot since
  (a takeover, a person's reset) was undone at the arbiter's rate limit;
* commanding the measured state anew every tick follows it: a position-controlled arm rests slightly below
  its command under gravity and the fingers of a grasp rest short of theirs, so each tick's "hold" lowered
  the arm and loosened the grip (the arbiter's safety layer captures its hold anchor once for this reason,
  bora_teleop/safety.py).

Now (ours), the HOLD command of a tick is:

* the last command this node published, if it published one within ``max_gap_s`` (its command stream is
  unbroken, so the arbiter has been following it): AUTONOMOUS -> HOLD stops where the policy was commanding
  the robot, and later HOLD ticks repeat it;
* otherwise (HOLD after PAUSED, after stale observations or a stall, at a new episode, during and after a
  takeover: ``forget``) the measured state of the newest observation the caller passes, captured once: it is
  then the last command published, so the hold does not follow the sagging measurement;
* nothing when the caller passes no measured state and nothing was sent recently. The node passes none while
  its newest observation is older than ``stale_observation_s`` (and sends nothing then, as in AUTONOMOUS
  mode): the arbiter's watchdog then holds its last command sent, re-anchored at the measured position if
  the robot was moved (bora_teleop/safety.py), from joint states fresher than the node's.

The node calls :meth:`sent` for every command it publishes, in any mode.
"""

from __future__ import annotations

import numpy as np


class HoldTarget:
    def __init__(self, max_gap_s: float):
        """``max_gap_s``: the longest time between two published commands that still counts as one unbroken
        stream (the node: 2 control periods, the control loop's stall threshold; at 10 Hz also the teleop
        arbiter's default watchdog_timeout_s of 0.2 s)."""
        if not max_gap_s > 0:
            raise ValueError(f"HoldTarget: max_gap_s must be > 0, got {max_gap_s!r}")
        self.max_gap_s = float(max_gap_s)
        self._last: tuple[float, np.ndarray, list[str]] | None = None  # (time, position, joint names) sent

    def sent(self, t: float, position, names) -> None:
        """A command with ``position`` (joint ``names``) was published at ``t``."""
        self._last = (float(t), np.asarray(position, np.float64).reshape(-1).copy(), list(names))

    def forget(self) -> None:
        """The last command no longer says where the robot is held (a new episode, a takeover): the next
        target is captured from the measured state."""
        self._last = None

    def target(self, t: float, measured=None) -> tuple[np.ndarray, list[str]] | None:
        """The HOLD command ``(position, names)`` of the tick at ``t`` (module docstring). ``measured``: the
        newest fresh observation's ``(state, names)``, or None (stale, none yet, or of another episode)."""
        last = self._last
        if last is not None and 0.0 <= t - last[0] <= self.max_gap_s:
            return last[1].copy(), list(last[2])
        if measured is None:
            return None
        state = np.asarray(measured[0], np.float64).reshape(-1)
        if not np.all(np.isfinite(state)):
            return None  # a NaN reading held would be sent at every tick (as at an episode's start)
        return state.copy(), list(measured[1])
