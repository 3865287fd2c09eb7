"""Fault bookkeeping for the teleop's /diagnostics and its logs (pure Python, thread-safe).

* :class:`RateLimitedLog`: per key, the first fault is logged at once; later ones within ``period_s``
  are counted and reported in the next line for that key (``+k more``), or by :meth:`flush` (the node
  calls it every second), so no fault is silent and a flood is a few lines per second.
* :class:`FaultLog`: every counted fault with its time, level and text. The health level is the worst
  level of the faults of the last ``window_s`` seconds (a parameter, ``diagnostics_window_s``), so a
  fault is reported while it happens and the status returns to OK ``window_s`` after the last one.
  The levels and the window are our choice (REP-107 diagnostics levels OK/WARN/ERROR).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}


class RateLimitedLog:
    """``log(level, text)`` at most once per ``period_s`` per key; the suppressed ones are counted."""

    def __init__(self, log: Callable[[str, str], None], clock: Callable[[], float], period_s: float = 1.0):
        self.log, self.clock, self.period_s = log, clock, float(period_s)
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._pending: dict[str, tuple[int, str, str]] = {}  # key -> (suppressed, level, last text)

    def __call__(self, key: str, level: str, text: str) -> bool:
        """Log now if the key's period has passed (with the count of suppressed lines), else count it."""
        now = self.clock()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self.period_s:
                n, _, _ = self._pending.get(key, (0, level, text))
                self._pending[key] = (n + 1, level, text)
                return False
            self._last[key] = now
            n, _, _ = self._pending.pop(key, (0, level, text))
        self._emit(level, text + (f" (+{n} more since the last report)" if n else ""))
        return True

    def flush(self) -> int:
        """Report every key whose suppressed faults are older than the period. Returns lines logged."""
        now = self.clock()
        out = []
        with self._lock:
            for key, (n, level, text) in list(self._pending.items()):
                if now - self._last.get(key, -math.inf) >= self.period_s:
                    self._last[key] = now
                    del self._pending[key]
                    out.append((level, f"{n} more: {text}" if n > 1 else text))
        for level, text in out:
            self._emit(level, text)
        return len(out)

    def _emit(self, level: str, text: str) -> None:
        try:
            self.log(level, text)
        except Exception:  # noqa: BLE001 - a failing logger must not take the caller down
            pass


class FaultLog:
    """Counted faults by kind, with the level of the last ``window_s`` seconds and the last error."""

    def __init__(self, clock: Callable[[], float], window_s: float = 10.0, max_events: int = 4096):
        if not window_s > 0:
            raise ValueError(f"diagnostics_window_s must be > 0, got {window_s}")
        self.clock, self.window_s = clock, float(window_s)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self._events: deque[tuple[float, int, str]] = deque(maxlen=max_events)  # (t, level, kind)
        self._recent_max: dict[str, tuple[float, int]] = {}  # kind -> (last t, level): survives deque overflow
        self.last_error = ""
        self.last_error_kind = ""
        self.last_error_t = -math.inf

    def record(self, kind: str, text: str, level: int = WARN) -> None:
        now = self.clock()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self._events.append((now, level, kind))
            self._recent_max[kind] = (now, max(level, self._level_of(kind, now)))
            self.last_error, self.last_error_kind, self.last_error_t = text, kind, now

    def _level_of(self, kind: str, now: float) -> int:
        t, lv = self._recent_max.get(kind, (-math.inf, OK))
        return lv if now - t <= self.window_s else OK

    def status(self) -> tuple[int, str, dict[str, int]]:
        """(level, message, faults per kind in the window) over the last ``window_s`` seconds."""
        now = self.clock()
        with self._lock:
            recent: dict[str, int] = {}
            for t, _, kind in self._events:
                if now - t <= self.window_s:
                    recent[kind] = recent.get(kind, 0) + 1
            level = max([self._level_of(k, now) for k in self._recent_max] + [OK])
            if level == OK:
                return OK, "ok", recent
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(recent.items())) or "faults"
            return level, f"{kinds} in the last {self.window_s:g} s; last: {self.last_error}", recent
