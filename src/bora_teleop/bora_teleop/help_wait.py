"""A help request from the policy waits for the operator (issue 19; pure Python, the node is thin).

The policy's help monitor publishes ``bora_msgs/HelpRequest`` on ``/bora/help_request``. The teleop shows
it (a terminal bell and one line where the keyboard tool runs, ``help_requested`` on /diagnostics) and
keeps it *pending* until the operator answers with a takeover, the episode ends, a newer episode starts,
or ``timeout_s`` passes. With ``hold_policy`` (parameter ``help_hold_policy``, off by default) the
arbiter holds the robot (hold reason ``help_wait``) while a request is pending and nobody has taken over:
the policy does not drive on into the failure the critic predicts while the operator gets to the robot
(ours; a takeover ends the hold at once, its beta ramp starting from the held pose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BELL = "\a"


@dataclass(frozen=True)
class PendingHelp:
    episode_id: int
    step: int
    reason: str
    value: float
    threshold: float
    predicted_steps_to_failure: int
    t: float


def help_line(r: PendingHelp) -> str:
    """The operator's line for one request."""
    eta = (
        f"; failure predicted in {r.predicted_steps_to_failure} steps" if r.predicted_steps_to_failure >= 0 else ""
    )
    return (
        f"HELP REQUESTED by the policy: episode {r.episode_id} step {r.step}, {r.reason} "
        f"{r.value:+.3f} < {r.threshold:+.3f}{eta} -- press t to take over"
    )


class HelpWait:
    def __init__(self, hold_policy: bool = False, timeout_s: float = 10.0):
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"help_wait_timeout_s must be a finite number > 0, got {timeout_s}")
        self.hold_policy = bool(hold_policy)
        self.timeout_s = float(timeout_s)
        self.pending: PendingHelp | None = None
        self.requests = 0
        self.answered = 0
        self.timed_out = 0
        self.last: PendingHelp | None = None

    def request(self, r: PendingHelp, current_episode: int | None) -> str:
        """A request arrived; returns "" when it is ignored (another episode than the current one), else
        the line to show."""
        if current_episode is not None and int(r.episode_id) != int(current_episode):
            return ""
        self.requests += 1
        self.pending = self.last = r
        return help_line(r)

    def update(self, now: float, taken_over: bool) -> str:
        """Per tick: a takeover answers the pending request; returns "answered" / "timeout" / ""."""
        if self.pending is None:
            return ""
        if taken_over:
            self.pending = None
            self.answered += 1
            return "answered"
        if now - self.pending.t >= self.timeout_s:
            self.pending = None
            self.timed_out += 1
            return "timeout"
        return ""

    def end_episode(self) -> None:
        self.pending = None

    def holds(self) -> bool:
        """Whether the arbiter holds the robot now (``hold_policy`` and a request pending)."""
        return self.hold_policy and self.pending is not None
