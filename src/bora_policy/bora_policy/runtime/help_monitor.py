"""Help requests from the chunk critic (issue 19; ours, not in the paper): ask the operator to watch or take
over when the critic's value of the executing chunk falls, before the task fails.

The paper's Fig. 11 shows the per-step value v(z_t, i) falling before a failure; a person there still
watches every autonomous second. This monitor turns the value into a request, so the operator is called
rather than watching. Free of rclpy: the policy node feeds it once per control tick and publishes what it
returns as ``bora_msgs/HelpRequest`` on ``/bora/help_request``; the bench and the calibration run the same
code on recorded value sequences.

Signal (per control tick, from the chunk being executed at chunk index i; ``signal``):
  * ``q``  (default): q(z_t, a_{t+i}, i), the value of the step about to be executed (Eq. 1);
  * ``v``: v(z_t, i), the state value at that step;
  * ``q_ahead``: min_{j >= i} q(z_t, a_{t+j}, j), the lowest value left in the chunk (earlier, noisier).
  Without q (no critic) there is no signal and never a request.

Decision (ours): a request fires when the signal stays below ``threshold`` for ``persist_steps``
consecutive ticks while the monitor is *armed*, no earlier than ``grace_steps`` into the episode and at
least ``min_interval_s`` after the previous request. Firing disarms it; it re-arms only once the signal has
risen to ``threshold + hysteresis`` (so a value hovering at the threshold asks once, not every tick).
A second, optional reason: the composite chunk's advantage over the state value (q_i - v_i, the runtime's
one-step estimate of how much the residual-composed action beats the behaviour the critic was trained on)
below ``advantage_threshold`` (None: off), under the same arming and interval.

``predicted_steps_to_failure``: with ``failure_value`` set (the calibration's median value at the last
steps of failed episodes), the first chunk step j >= i whose q (else v) is <= ``failure_value`` gives
j - i; else a linear fit of the last ``slope_window`` signals, extrapolated to ``failure_value`` when it
falls; -1 when unknown.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from bora_policy.common.graph_params import graph_default

SIGNALS = ("q", "v", "q_ahead")
REASON_LOW_VALUE = "low_value"
REASON_NEGATIVE_ADVANTAGE = "negative_advantage"


@dataclass(frozen=True)
class HelpMonitorConfig:
    """See the module docstring. ``threshold`` None: the monitor never asks (not calibrated)."""

    threshold: float | None = None
    hysteresis: float = 0.05
    min_interval_s: float = 3.0
    persist_steps: int = 2
    grace_steps: int = 5
    signal: str = "q"
    advantage_threshold: float | None = None
    failure_value: float | None = None
    slope_window: int = 8
    control_hz: float = field(default_factory=lambda: graph_default("control_hz"))  # config/graph.yaml

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ValueError(f"help monitor: signal must be one of {SIGNALS}, got {self.signal!r}")
        for name in ("hysteresis", "min_interval_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"help monitor: {name} must be a finite number >= 0, got {v!r}")
        for name in ("persist_steps", "slope_window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"help monitor: {name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.grace_steps) < 0:
            raise ValueError(f"help monitor: grace_steps must be >= 0, got {self.grace_steps!r}")
        if not (self.control_hz > 0):
            raise ValueError(f"help monitor: control_hz must be > 0, got {self.control_hz!r}")
        for name in ("threshold", "advantage_threshold", "failure_value"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"help monitor: {name} must be a finite number or None, got {v!r}")

    @property
    def min_interval_steps(self) -> int:
        return int(math.ceil(self.min_interval_s * self.control_hz - 1e-9))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HelpMonitorConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"help monitor config: unknown field(s) {unknown}; expected some of {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class HelpDecision:
    """One request: the fields of ``bora_msgs/HelpRequest``."""

    step: int
    reason: str
    value: float
    threshold: float
    predicted_steps_to_failure: int = -1


def chunk_signal(kind: str, q: Sequence[float] | None, v: Sequence[float] | None, index: int) -> float | None:
    """The monitor's signal at chunk index ``index`` (module docstring), or None without the values."""
    vals = q if kind in ("q", "q_ahead") else v
    if vals is None or len(vals) == 0:
        return None
    i = int(np.clip(index, 0, len(vals) - 1))
    if kind == "q_ahead":
        return float(np.min(np.asarray(vals[i:], np.float64)))
    return float(vals[i])


class HelpMonitor:
    """Feed :meth:`update` once per control tick; it returns a :class:`HelpDecision` when it asks."""

    def __init__(self, cfg: HelpMonitorConfig | None = None):
        self.cfg = cfg or HelpMonitorConfig()
        self.requests = 0
        self.reset()

    def reset(self) -> None:
        """A new episode: armed, no previous request, no history."""
        self.armed = True
        self.below = 0
        self.last_request_step: int | None = None
        self.history: deque[float] = deque(maxlen=self.cfg.slope_window)
        self.last_signal: float | None = None

    def _predict(self, signal: float, q, v, index: int) -> int:
        fv = self.cfg.failure_value
        if fv is None:
            return -1
        vals = q if q is not None and len(q) else v
        if vals is not None and len(vals):
            ahead = np.asarray(vals[int(np.clip(index, 0, len(vals) - 1)):], np.float64)
            hit = np.flatnonzero(ahead <= fv)
            if hit.size:
                return int(hit[0])
        if signal <= fv:
            return 0
        if len(self.history) >= 2:
            y = np.asarray(self.history, np.float64)
            slope = float(np.polyfit(np.arange(len(y), dtype=np.float64), y, 1)[0])
            if slope < 0:
                return int(math.ceil((signal - fv) / -slope))
        return -1

    def update(
        self,
        step: int,
        q: Sequence[float] | None,
        v: Sequence[float] | None = None,
        index: int = 0,
        advantage: Sequence[float] | None = None,
    ) -> HelpDecision | None:
        """One control tick at episode step ``step``, executing chunk index ``index`` of the chunk whose
        critic outputs are ``q``, ``v`` (and ``advantage`` = q - v)."""
        c = self.cfg
        s = chunk_signal(c.signal, q, v, index)
        if s is None:
            return None
        self.history.append(s)
        self.last_signal = s
        if c.threshold is None:
            return None
        reason, value, thr = "", s, float(c.threshold)
        low = s < c.threshold
        if not low and c.advantage_threshold is not None and advantage is not None and len(advantage):
            a = float(advantage[int(np.clip(index, 0, len(advantage) - 1))])
            if a < c.advantage_threshold:
                low, value, thr = True, a, float(c.advantage_threshold)
                reason = REASON_NEGATIVE_ADVANTAGE
        self.below = self.below + 1 if low else 0
        if not self.armed:
            adv_ok = (
                c.advantage_threshold is None
                or advantage is None
                or not len(advantage)
                or float(advantage[int(np.clip(index, 0, len(advantage) - 1))])
                >= c.advantage_threshold + c.hysteresis
            )
            if s >= c.threshold + c.hysteresis and adv_ok:
                self.armed = True
            return None
        if self.below < c.persist_steps or step < c.grace_steps:
            return None
        if self.last_request_step is not None and step - self.last_request_step < c.min_interval_steps:
            return None
        self.armed = False
        self.last_request_step = int(step)
        self.requests += 1
        return HelpDecision(
            step=int(step),
            reason=reason or REASON_LOW_VALUE,
            value=float(value),
            threshold=thr,
            predicted_steps_to_failure=self._predict(s, q, v, index),
        )

    def run(self, signals: Sequence[float]) -> list[HelpDecision]:
        """Replay a per-step signal sequence (one value per tick, step = its index) from a fresh episode:
        the requests this monitor would have made. Used by the calibration and the bench."""
        self.reset()
        out = []
        for t, x in enumerate(signals):
            d = self.update(t, [float(x)], [float(x)], 0)
            if d is not None:
                out.append(d)
        return out


__all__ = [
    "REASON_LOW_VALUE",
    "REASON_NEGATIVE_ADVANTAGE",
    "SIGNALS",
    "HelpDecision",
    "HelpMonitor",
    "HelpMonitorConfig",
    "chunk_signal",
]
