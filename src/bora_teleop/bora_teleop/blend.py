"""Linear takeover blending (Sec. 3.2, Algorithm 1 lines 16-20), pure Python.

    A_exec = (1 - beta) * A_final + beta * A_human

``beta`` ramps linearly at ``1 / ramp_time_s`` per second towards 1 while the operator requests a
takeover and back towards 0 after the release (a request reversed mid-ramp turns around from the
current beta, so beta is continuous). ``ramp_time_s = 0`` is the hard switch of HIL-SERL.
Time is whatever clock the caller passes (the node's ROS clock, so sim time works too); a
request change is dated with its own time, so the ramp does not depend on the tick phase.

``is_intervention`` (Algorithm 1 line 17) is true while the takeover is requested or beta > 0
(ramping down still counts: the human shaped those commands). Events, reported by the
:meth:`TakeoverBlender.update` call of the tick where they take effect:

* ``START``: is_intervention rises (r_int applies, Algorithm 1 line 17);
* ``RECOVERED``: the operator reported that the correction completed with the task recovered
  (``/bora/recovered`` true, the ``r`` key or the ``/bora/teleop/mark_recovered`` service);
  at most once per takeover, ignored outside one, and still reported when the release arrives
  in the same tick (the sim operator sends both at hand-back) (r_rec, Algorithm 1 line 22);
* ``END``: is_intervention falls (beta back at 0 after the release).

A takeover never spans two episodes: :meth:`TakeoverBlender.end_now` ends it at once (beta 0, no
ramp) when the episode ends (a SUCCESS under the takeover counts as recovered) or a new one starts;
the arbiter holds at a new episode until the policy's first command of it, so the cut reaches no
driver as a jump.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

START, END, RECOVERED = "START", "END", "RECOVERED"


@dataclass
class BlendConfig:
    """ramp_time_s: seconds for beta to go 0 -> 1 (and 1 -> 0); 0 = hard switch.
    release_on_recovered: a RECOVERED report also releases the takeover (default: the operator
    releases explicitly)."""

    ramp_time_s: float = 0.5
    release_on_recovered: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite(self.ramp_time_s) or self.ramp_time_s < 0:
            raise ValueError(f"BlendConfig.ramp_time_s must be a finite number >= 0, got {self.ramp_time_s}")


@dataclass
class BlendState:
    beta: float
    is_intervention: bool
    events: list[str] = field(default_factory=list)


class TakeoverBlender:
    """Tracks the takeover request and ramps beta; see the module docstring."""

    def __init__(self, cfg: BlendConfig | None = None):
        self.cfg = cfg or BlendConfig()
        self.beta = 0.0
        self.requested = False
        self.is_intervention = False
        self._t: float | None = None
        self._recovered_pending = False
        self._recovered_done = False

    def _advance(self, t: float) -> None:
        if self._t is None:
            self._t = t
            return
        dt = max(0.0, t - self._t)
        self._t = max(self._t, t)
        direction = 1.0 if self.requested else -1.0
        if self.cfg.ramp_time_s == 0.0:
            self.beta = 1.0 if self.requested else 0.0
        else:
            self.beta = float(np.clip(self.beta + direction * dt / self.cfg.ramp_time_s, 0.0, 1.0))

    def request(self, takeover: bool, t: float) -> bool:
        """Operator asks for (True) or releases (False) the takeover at time ``t`` (changed?)."""
        takeover = bool(takeover)
        if takeover == self.requested:
            return False
        self._advance(t)
        self.requested = takeover
        if self.cfg.ramp_time_s == 0.0:
            self.beta = 1.0 if takeover else 0.0
        return True

    def toggle(self, t: float) -> bool:
        self.request(not self.requested, t)
        return self.requested

    def mark_recovered(self) -> tuple[bool, str]:
        """Operator reports the correction completed. Accepted once per takeover, only during one."""
        if not (self.is_intervention or self.requested):
            return False, "no takeover in progress"
        if self._recovered_done or self._recovered_pending:
            return False, "recovery already reported for this takeover"
        self._recovered_pending = True
        return True, "recovery reported"

    def end_now(self, success: bool = False) -> list[str]:
        """End a takeover at once (the episode it belongs to is over): beta 0, not requested. Returns the
        events still owed to it: ``RECOVERED`` if one was accepted but not reported yet, or if the
        episode ended in success under the takeover (the correction completed the task), then ``END``;
        none if no takeover had started (a request not yet seen by a tick is simply dropped)."""
        events: list[str] = []
        if self.is_intervention:
            if self._recovered_pending or (success and not self._recovered_done):
                events.append(RECOVERED)
            events.append(END)
        self.requested, self.beta, self.is_intervention = False, 0.0, False
        self._recovered_pending = False
        self._recovered_done = False
        return events

    def update(self, now: float) -> BlendState:
        """Advance beta to ``now`` and report this tick's beta, is_intervention and events."""
        events: list[str] = []
        self._advance(now)
        active = self.requested or self.beta > 0.0
        if active and not self.is_intervention:
            events.append(START)
            self._recovered_done = False
        if self._recovered_pending:
            # accepted during this takeover: reported even when the release arrived in the same tick
            self._recovered_pending = False
            events.append(RECOVERED)
            self._recovered_done = True
            if self.cfg.release_on_recovered and self.requested:
                self.request(False, now)
        if not active and self.is_intervention:
            events.append(END)
        self.is_intervention = active
        return BlendState(self.beta, active, events)


def blend(a_final: np.ndarray | None, a_human: np.ndarray | None, beta: float) -> np.ndarray:
    """A_exec = (1 - beta) A_final + beta A_human (Algorithm 1 line 17); beta=0 needs no A_human,
    beta=1 needs no A_final (so a stale policy does not matter under full human control)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if beta == 0.0:
        if a_final is None:
            raise ValueError("beta = 0 needs A_final")
        return np.asarray(a_final, dtype=np.float64).copy()
    if beta == 1.0:
        if a_human is None:
            raise ValueError("beta = 1 needs A_human")
        return np.asarray(a_human, dtype=np.float64).copy()
    if a_final is None or a_human is None:
        raise ValueError(f"0 < beta={beta} < 1 needs both A_final and A_human")
    return (1.0 - beta) * np.asarray(a_final, np.float64) + beta * np.asarray(a_human, np.float64)
