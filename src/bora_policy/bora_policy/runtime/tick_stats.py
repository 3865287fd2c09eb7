"""Control-loop timing statistics of the policy node (library code: no rclpy)."""

from __future__ import annotations

from collections import deque

import numpy as np


class TickStats:
    """Control-loop timing: periods between ticks, callback durations, late ticks (an interval over 1.5
    periods: a slot served late). Skipped slots are counted by the ``ControlLoop`` itself."""

    def __init__(self, period: float, window: int = 600):
        self.period = period
        self.intervals: deque[float] = deque(maxlen=window)
        self.durations: deque[float] = deque(maxlen=window)
        self.latencies: deque[float] = deque(maxlen=window)
        self.inference: deque[float] = deque(maxlen=window)
        self.last: float | None = None
        self.ticks = 0
        self.late = 0

    def tick(self, t: float) -> float | None:
        """Record a tick at ``t``; returns the interval since the previous one when it was late (over 1.5
        periods), else None."""
        dt = None
        if self.last is not None:
            dt = t - self.last
            self.intervals.append(dt)
            self.late += int(dt > 1.5 * self.period)
        self.last = t
        self.ticks += 1
        return dt if dt is not None and dt > 1.5 * self.period else None

    def summary(self, missed: int = 0) -> dict[str, float]:
        iv = np.asarray(self.intervals) if self.intervals else np.zeros(1)
        dev = np.abs(iv - self.period)
        out = {
            "ticks": float(self.ticks),
            "missed_ticks": float(missed),
            "late_ticks": float(self.late),
            "period_mean_ms": float(iv.mean() * 1e3),
            "jitter_std_ms": float(iv.std() * 1e3),
            "jitter_p99_ms": float(np.percentile(dev, 99) * 1e3),
            "jitter_max_ms": float(dev.max() * 1e3),
            "tick_duration_max_ms": float(max(self.durations, default=0.0) * 1e3),
        }
        if self.latencies:
            lat = np.asarray(self.latencies)
            out.update(
                obs_to_command_ms_mean=float(lat.mean() * 1e3),
                obs_to_command_ms_p99=float(np.percentile(lat, 99) * 1e3),
            )
        if self.inference:
            inf = np.asarray(self.inference)
            out.update(inference_ms_mean=float(inf.mean()), inference_ms_max=float(inf.max()))
        return out
