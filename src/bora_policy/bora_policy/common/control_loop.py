"""A fixed-rate control loop on its own thread, scheduled on absolute deadlines.

Why not an executor timer: a ROS timer callback waits for a free executor thread and for the wait
set to be rebuilt; when the callback is dispatched more than one period late, the timer silently
drops the missed slot (its next call is re-phased). On a loaded 2-core CPU this cost the policy node
10-20 % of its 10 Hz slots. Here the loop sleeps until ``t0 + n * period`` (monotonic clock) on a
dedicated thread, so the command rate is set by the OS scheduler, not by the executor:

* woken late by less than ``period``: the tick runs at once (late, counted as jitter) and the next
  deadline stays on the grid, so the average rate is exact;
* late by a whole period or more (the thread was descheduled, or the previous tick overran): the
  overdue slots except the newest are skipped, never replayed in a burst (an old command sent late
  is worse than none), counted in ``missed`` and reported to ``on_stall`` with the cause.

Scheduling: with ``priority > 0`` the loop's thread asks the kernel for ``SCHED_FIFO`` at that
priority, as ``ros2_control_node`` does for its update loop, so a busy CPU (camera rendering, a
training process) cannot delay the tick; where that is not permitted (no ``CAP_SYS_NICE`` / rtprio
limit) it runs with normal scheduling and says so in ``realtime_error``. The tick holds the CPU for
a few milliseconds per period, and the kernel's RT throttling bounds it in any case.

Phase lock to an input (:class:`ArrivalPhaseLock`, ours; issue 17): a loop that forwards a periodic input
(the arbiter forwarding the policy's commands) can move its grid so that its tick falls just after the
input arrives, instead of up to a period later. The lock only ever DELAYS ticks (every interval between
ticks stays >= the period), so a per-tick rate limit ``v / control_hz`` still bounds the speed by ``v``.

Library code: no rclpy. The tick function must not raise; an exception is reported through
``on_error`` and the loop goes on (the safety layer downstream holds on a stale command).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def late_phase(stamps, period: float, q: float = 90.0) -> float:
    """The phase (in ``[0, period)``) by which ``q`` % of the stamps have come, modulo the period: their
    circular mean phase plus the ``q``-th percentile of the deviations from it. Robust to a jittery source (a
    simulator stamping after its physics step and rendering): a lock then aims just after the late arrivals
    instead of following each one's jitter."""
    ph = 2.0 * np.pi * (np.asarray(stamps, dtype=np.float64) % period) / period
    mean = float(np.angle(np.mean(np.exp(1j * ph)))) * period / (2.0 * np.pi)
    dev = (np.asarray(stamps, dtype=np.float64) - mean + period / 2) % period - period / 2
    return float((mean + np.percentile(dev, q)) % period)


class ArrivalPhaseLock:
    """Delay-only phase lock of a control loop's ticks to a periodic input (module docstring).

    ``on_arrival(t)`` records each input's arrival time; ``correction(t_tick)`` is the shift for
    ``ControlLoop.shift`` (seconds, always >= 0). Target: ``margin`` after the phase by which 90 % of the last
    ``window`` arrivals came (:func:`late_phase`). Wrapped phase error ``e = tick - target`` in
    ``[-period/2, period/2)``:

    * ``e < 0`` (the tick comes before the input): delay by ``gain * |e|``;
    * ``0 <= e <= tolerance * period`` (just after it): nothing, never move a tick earlier;
    * ``e > tolerance * period``: delay by the step limit until the phase wraps round to ``e < 0``.

    Every shift is at most ``max_shift * period``. No correction (0) with fewer than 4 arrivals, when the
    newest is older than 2 periods (no input: e.g. the operator has control and the policy is silent), or
    when the arrivals are not periodic at this period (median interval off by more than 10 %)."""

    def __init__(self, period: float, margin: float | None = None, window: int = 20, gain: float = 0.5,
                 max_shift: float = 0.05, tolerance: float = 0.25):
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"ArrivalPhaseLock: period must be a finite number > 0 s, got {period!r}")
        if not (0.0 < gain <= 1.0 and 0.0 < max_shift <= 0.5 and 0.0 <= tolerance < 0.5):
            raise ValueError("ArrivalPhaseLock: expected 0 < gain <= 1, 0 < max_shift <= 0.5, 0 <= tolerance < 0.5")
        self.period = float(period)
        self.margin = 0.1 * self.period if margin is None else float(margin)
        self.gain, self.max_shift, self.tolerance = float(gain), float(max_shift), float(tolerance)
        self.arrivals: deque[float] = deque(maxlen=max(4, int(window)))
        self.error_s: float | None = None  # the last phase error (tick - target), for diagnostics

    def on_arrival(self, t: float) -> None:
        self.arrivals.append(float(t))

    def correction(self, t_tick: float) -> float:
        P = self.period
        a = self.arrivals
        if len(a) < 4 or t_tick - a[-1] > 2.0 * P:
            self.error_s = None
            return 0.0
        if abs(float(np.median(np.diff(np.asarray(a)))) - P) > 0.1 * P:
            self.error_s = None
            return 0.0
        target = late_phase(a, P) + self.margin
        e = (t_tick - target + P / 2) % P - P / 2
        self.error_s = e
        lim = self.max_shift * P
        if e < 0:
            return min(self.gain * -e, lim)
        return 0.0 if e <= self.tolerance * P else lim


@dataclass(frozen=True)
class Stall:
    """Slots skipped at one wake-up: how late the loop was, and how long the tick before it ran (a
    tick longer than the period is an overrun of our own; otherwise the thread was not scheduled)."""

    skipped: int
    late_s: float
    previous_tick_s: float

    @property
    def cause(self) -> str:
        return "tick overran" if self.previous_tick_s >= self.late_s else "thread not scheduled in time"

    def describe(self) -> str:
        return (
            f"{self.skipped} control slot(s) skipped: woke {self.late_s * 1e3:.0f} ms late, previous tick "
            f"{self.previous_tick_s * 1e3:.0f} ms ({self.cause})"
        )


class ControlLoop:
    """Call ``tick()`` every ``period`` seconds on a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        period: float,
        tick: Callable[[], None],
        name: str = "control-loop",
        on_error: Callable[[BaseException], None] | None = None,
        on_stall: Callable[[Stall], None] | None = None,
        priority: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ):
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"ControlLoop: period must be a finite number > 0 s, got {period!r}")
        if not 0 <= int(priority) <= 99:
            raise ValueError(
                f"ControlLoop: priority must be 0 (normal scheduling) or 1..99 (SCHED_FIFO), got {priority!r}"
            )
        self.period = float(period)
        self.priority = int(priority)
        self._tick = tick
        self._on_error = on_error
        self._on_stall = on_stall
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or (lambda dt: self._stop.wait(dt))
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()
        self.ticks = 0
        self.missed = 0
        self.errors = 0
        self.late_max_s = 0.0  # the latest a served slot started after its deadline
        self._shift = 0.0
        self.realtime = False
        self.realtime_error = ""

    def start(self) -> ControlLoop:
        self._thread.start()
        self._started.wait(1.0)  # the scheduling policy is known once start() returns
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def shift(self, seconds: float) -> None:
        """Move every following deadline by ``seconds`` (positive: later), from the next one on: a phase
        correction asked for by the tick function (``chunk_scheduler.phase_correction``)."""
        if not math.isfinite(seconds):
            raise ValueError(f"ControlLoop.shift: seconds must be finite, got {seconds!r}")
        self._shift += float(seconds)

    def overdue(self, deadline: float, now: float) -> tuple[float, int]:
        """The slot to serve at time ``now`` when the next scheduled one was ``deadline``, and the number
        of slots skipped: the newest slot whose deadline has passed if ``deadline`` is a whole period or
        more behind (the older ones are skipped), else ``deadline`` itself (served late, or on time)."""
        if now < deadline + self.period:
            return deadline, 0
        skipped = int((now - deadline) / self.period + 1e-9)  # (the epsilon: float grid points)
        return deadline + skipped * self.period, skipped

    def _set_realtime(self) -> None:
        if self.priority <= 0:
            return
        try:  # pid 0: the calling thread (Linux schedules threads individually)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
            self.realtime = True
        except (AttributeError, OSError) as e:
            self.realtime_error = f"SCHED_FIFO priority {self.priority} not permitted ({e}); normal scheduling"

    def _run(self) -> None:
        self._set_realtime()
        self._started.set()
        deadline = self._clock()
        previous_tick = 0.0
        while not self._stop.is_set():
            delay = deadline - self._clock()
            if delay > 0:
                self._sleep(delay)
                if self._stop.is_set():
                    break
            now = self._clock()
            late = now - deadline
            deadline, skipped = self.overdue(deadline, now)
            if skipped:
                self.missed += skipped
                if self._on_stall is not None:
                    self._on_stall(Stall(skipped, late, previous_tick))
            self.late_max_s = max(self.late_max_s, now - deadline)
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - report and keep the loop alive
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(e)
            self.ticks += 1
            previous_tick = self._clock() - now
            deadline += self.period + self._shift
            self._shift = 0.0
