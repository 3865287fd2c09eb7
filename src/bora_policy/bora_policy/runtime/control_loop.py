"""A fixed-rate control loop on its own thread, scheduled on absolute deadlines.

Why not an executor timer: a ROS timer callback waits for a free executor thread and for the wait
set to be rebuilt; when the callback is dispatched more than one period late, the timer silently
drops the missed slot (its next call is re-phased). On a loaded 2-core CPU this cost the policy node
10-20 % of its 10 Hz slots. Here the loop sleeps until ``t0 + n * period`` (monotonic clock) on a
dedicated thread, so the command rate is set by the OS scheduler, not by the executor:

* woken late by less than ``period``: the tick runs at once (late, counted as jitter) and the next
  deadline stays on the grid, so the average rate is exact;
* late by a whole period or more (the process was descheduled): the missed slots are skipped, never
  replayed in a burst (an old command sent late is worse than none), and counted in ``missed``.

Library code: no rclpy. The tick function must not raise; an exception is reported through
``on_error`` and the loop goes on (the safety layer downstream holds on a stale command).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class ControlLoop:
    """Call ``tick()`` every ``period`` seconds on a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        period: float,
        tick: Callable[[], None],
        name: str = "control-loop",
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ):
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"ControlLoop: period must be a finite number > 0 s, got {period!r}")
        self.period = float(period)
        self._tick = tick
        self._on_error = on_error
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or (lambda dt: self._stop.wait(dt))
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.missed = 0
        self.errors = 0

    def start(self) -> ControlLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def next_deadline(self, deadline: float, now: float) -> tuple[float, int]:
        """The deadline of the next tick after the one scheduled at ``deadline``, given the time ``now``
        its tick returned, and the number of slots skipped. Deadlines stay on the grid
        ``deadline + n * period``: the next slot is served even if already late by less than a period;
        slots older than that are skipped (the newest overdue slot is served at once)."""
        nxt = deadline + self.period
        if now < nxt + self.period:
            return nxt, 0
        skipped = int((now - nxt) / self.period + 1e-9)  # (the epsilon: float grid points)
        return nxt + skipped * self.period, skipped

    def _run(self) -> None:
        deadline = self._clock()
        while not self._stop.is_set():
            delay = deadline - self._clock()
            if delay > 0:
                self._sleep(delay)
                if self._stop.is_set():
                    break
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - report and keep the loop alive
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(e)
            self.ticks += 1
            deadline, skipped = self.next_deadline(deadline, self._clock())
            self.missed += skipped
