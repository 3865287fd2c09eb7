"""A node's health as a diagnostic level over a recent window (ours; the REP-107 levels OK/WARN/ERROR).

Counters alone hid faults: the policy's /diagnostics said OK with "39 missed ticks" after a 3.9 s stall
(issue 20). ``HealthWindow`` keeps every reported fault (its time, level and one-line text) and answers
with the highest level among the faults of the last ``window_s`` seconds, the newest fault's text and
the count per kind. After ``window_s`` seconds without a fault the level is OK again; the totals stay.

A lasting condition (the policy's observations going stale) is reported with ``begin`` at its onset, as
one fault, and ``end`` when it is over: while it lasts the level stays at least the condition's and the
message says "ongoing for N s", also after its onset has left the window (ours: a one-off fault alone would
let /diagnostics say OK while the condition still held).

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
        self._ongoing: dict[str, Fault] = {}  # lasting conditions: their onset, until end()

    def _fault(self, kind: str, text: str, level: int) -> Fault:
        if level not in (WARN, ERROR):
            raise ValueError(f"HealthWindow.report: level must be WARN (1) or ERROR (2), got {level!r}")
        return Fault(self._clock(), int(level), str(kind), " ".join(str(text).split())[:300])

    def _add(self, f: Fault, count: int) -> None:  # with _lock held
        self._faults.append(f)
        self.totals[f.kind] = self.totals.get(f.kind, 0) + int(count)
        self.last = f

    def report(self, kind: str, text: str, level: int = WARN, count: int = 1) -> None:
        f = self._fault(kind, text, level)
        with self._lock:
            self._add(f, count)

    def begin(self, kind: str, text: str, level: int = WARN) -> bool:
        """A lasting condition ``kind`` begins: reported once, as a fault, and kept in ``status()`` until
        ``end(kind)``. False (nothing reported) while ``kind`` is ongoing already."""
        f = self._fault(kind, text, level)
        with self._lock:
            if kind in self._ongoing:
                return False
            self._add(f, 1)
            self._ongoing[kind] = f
            return True

    def end(self, kind: str) -> Fault | None:
        """The condition ``kind`` is over: its onset fault (None when it was not ongoing)."""
        with self._lock:
            return self._ongoing.pop(kind, None)

    def recent(self) -> list[Fault]:
        """The faults of the last ``window_s`` seconds, oldest first."""
        now = self._clock()
        with self._lock:
            return [f for f in self._faults if now - f.t <= self.window_s]

    def status(self) -> tuple[int, str]:
        """``(level, text)``: the highest level of the recent faults and ongoing conditions (OK when none)
        and a message naming how many faults of which kind happened in the window and the newest one's
        text, then each ongoing condition (its kind when its onset is that newest fault, else its text)."""
        recent = self.recent()
        with self._lock:
            ongoing = list(self._ongoing.values())
        if not recent and not ongoing:
            return OK, ""
        level = max(f.level for f in recent + ongoing)
        parts = []
        if recent:
            kinds: dict[str, int] = {}
            for f in recent:
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
            counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
            parts.append(f"in the last {self.window_s:g} s: {counts}; last: {recent[-1].text}")
        now = self._clock()
        for f in ongoing:
            what = f.kind if recent and f is recent[-1] else f.text
            parts.append(f"ongoing for {now - f.t:.0f} s: {what}")
        return level, "; ".join(parts)
