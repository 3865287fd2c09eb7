"""Progress lines inside long training stages: updates/s, losses and an ETA at a steady interval.

A :class:`ProgressLog` is told after every unit of work how far the stage is (``done`` of ``total``, in
any unit: updates for offline training, episodes for online rounds) and, optionally, the update
metrics and the number of learner updates so far. At most every ``interval_s`` seconds (and once at the
end) it prints one line to its stream (the job's log under ``bora demo``)::

    [progress] offline cp-bc: 120/1500 updates (8.0%) | 2.31 updates/s | loss/actor=0.123 | elapsed 52s | ETA 9m57s

* ``updates/s`` is the rate since the previous line (steady-state, not diluted by the start-up);
* the losses are the means of the metrics named like ``*loss*`` (or ``keys``) since the previous line;
* ETA = remaining / done x elapsed, in the stage's own unit (ours: linear extrapolation).

``bora demo`` reads the last ``[progress]`` line of each running job's log (:func:`last_progress`) and shows
it next to its progress bar. ``BORA_PROGRESS_INTERVAL_S`` overrides the default interval (20 s).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

PREFIX = "[progress]"
DEFAULT_INTERVAL_S = 20.0


def fmt_duration(seconds: float) -> str:
    """``"9m57s"``, ``"1h02m"``, ``"52s"``; ``"?"`` for an unknown (infinite/NaN) duration."""
    if not (seconds == seconds) or seconds == float("inf") or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class ProgressLog:
    """Steady-interval progress lines (module docstring)."""

    def __init__(
        self,
        name: str,
        total: int,
        unit: str = "updates",
        start: int = 0,
        interval_s: float | None = None,
        stream=None,
        clock: Callable[[], float] = time.monotonic,
        keys: tuple[str, ...] | None = None,
        enabled: bool = True,
    ):
        if interval_s is None:
            try:
                interval_s = float(os.environ.get("BORA_PROGRESS_INTERVAL_S", DEFAULT_INTERVAL_S))
            except ValueError:
                interval_s = DEFAULT_INTERVAL_S
        self.name, self.total, self.unit, self.start = name, int(total), unit, int(start)
        self.interval_s, self.clock, self.keys, self.enabled = float(interval_s), clock, keys, enabled
        self.stream = stream
        self.t0 = self.t_last = clock()
        self.updates_last = 0
        self.updates = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.lines: list[str] = []
        self.finished_printed = False

    def _want(self, key: str) -> bool:
        return key in self.keys if self.keys is not None else "loss" in key

    def update(self, done: int, metrics: dict[str, float] | None = None, updates: int | None = None,
               extra: str = "", force: bool = False) -> str | None:
        """Record progress ``done`` (of ``total``); ``updates`` = learner updates so far (default: ``done``).
        Returns the line when one was printed."""
        for k, v in (metrics or {}).items():
            if self._want(k):
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.counts[k] = self.counts.get(k, 0) + 1
        self.updates = int(done if updates is None else updates)
        now = self.clock()
        finished = done >= self.total
        due = now - self.t_last >= self.interval_s or (finished and not self.finished_printed)
        if not self.enabled or not (force or due):
            return None
        self.finished_printed = self.finished_printed or finished
        dt = now - self.t_last
        rate = (self.updates - self.updates_last) / dt if dt > 0 else float("nan")
        elapsed = now - self.t0
        progressed = done - self.start
        eta = 0.0 if finished else (
            (self.total - done) / progressed * elapsed if progressed > 0 else float("inf")
        )
        losses = " ".join(f"{k}={self.sums[k] / self.counts[k]:.4g}" for k in sorted(self.sums))
        pct = 100.0 * done / self.total if self.total > 0 else 100.0
        parts = [f"{PREFIX} {self.name}: {done}/{self.total} {self.unit} ({pct:.1f}%)", f"{rate:.2f} updates/s"]
        if self.unit != "updates":
            parts.append(f"{self.updates} updates")
        if losses:
            parts.append(losses)
        if extra:
            parts.append(extra)
        parts += [f"elapsed {fmt_duration(elapsed)}", f"ETA {fmt_duration(eta)}"]
        line = " | ".join(parts)
        print(line, file=self.stream or sys.stderr, flush=True)
        self.lines.append(line)
        self.t_last, self.updates_last = now, self.updates
        self.sums, self.counts = {}, {}
        return line


def last_progress(log: str | Path, max_bytes: int = 16384) -> str | None:
    """The last ``[progress]`` line of a log file (without the prefix), or None."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if line.startswith(PREFIX):
            return line[len(PREFIX):].strip()
    return None


def relay(log: str | Path, last: str = "", stream=None) -> str:
    """Print another process's newest ``[progress]`` line from its log when it differs from ``last``
    (``bora train online --env ros`` relays the trainer node's lines from ``graph.log``); returns it."""
    line = last_progress(log)
    if line and line != last:
        print(f"{PREFIX} {line}", file=stream or sys.stdout, flush=True)
        return line
    return last


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is emitted (a test's capture swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def log_to_stderr(prog: str, level: str = "info", name: str = "bora_trainer") -> logging.Handler:
    """Show the ``name`` loggers' records at ``level`` and above on stderr as ``PROG: LEVEL message`` lines; returns
    the handler (one per logger: a second call replaces the first). Without it a CLI shows only WARNING and above
    (logging's last-resort handler), so the online loop's "ingested", "round done" and "waits" lines of an
    in-process run were lost. Only ``bora_trainer``'s loggers by default: libraries' INFO lines stay quiet."""
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"log level must be one of debug, info, warning, error; got {level!r}")
    lib = logging.getLogger(name)
    for h in [h for h in lib.handlers if isinstance(h, _StderrHandler)]:
        lib.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s %(message)s"))
    lib.addHandler(handler)
    lib.setLevel(level.upper())
    return handler
