"""A node's health as a diagnostic level over a recent window (ours; the REP-107 levels OK/WARN/ERROR).

Counters alone hid faults: the policy's /diagnostics said OK with "39 missed ticks" after a 3.9 s stall
(issue 20). ``HealthWindow`` keeps every reported fault (its time, level and one-line text) and answers
with the highest level among the faults of the last ``window_s`` seconds, the newest fault's text and
the count per kind. After ``window_s`` seconds without a fault the level is OK again; the totals stay.

Library code: no rclpy. ``clock`` is injectable (tests); thread-safe (the control loop, the inference
thread and the executor report).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


@dataclass(frozen=True)
class Fault:
    t: float
    level: int
    kind: str
    text: str


class HealthWindow:
    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic, keep: int = 256):
        if not window_s > 0:
            raise ValueError(f"HealthWindow: window_s must be > 0, got {window_s!r}")
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque(maxlen=keep)
        self.totals: dict[str, int] = {}
        self.last: Fault | None = None

    def report(self, kind: str, text: str, level: int = WARN, count: int = 1) -> None:
        if level not in (WARN, ERROR):
            raise ValueError(f"HealthWindow.report: level must be WARN (1) or ERROR (2), got {level!r}")
        f = Fault(self._clock(), int(level), str(kind), " ".join(str(text).split())[:300])
        with self._lock:
            self._faults.append(f)
            self.totals[kind] = self.totals.get(kind, 0) + int(count)
            self.last = f

    def recent(self) -> list[Fault]:
        """The faults of the last ``window_s`` seconds, oldest first."""
        now = self._clock()
        with self._lock:
            return [f for f in self._faults if now - f.t <= self.window_s]

    def status(self) -> tuple[int, str]:
        """``(level, text)``: the highest level of the recent faults (OK when none) and a message naming
        how many faults of which kind happened in the window and the newest one's text."""
        recent = self.recent()
        if not recent:
            return OK, ""
        level = max(f.level for f in recent)
        kinds: dict[str, int] = {}
        for f in recent:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
        newest = recent[-1]
        return level, f"in the last {self.window_s:g} s: {counts}; last: {newest.text}"
