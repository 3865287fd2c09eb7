"""Operator keyboard reader (no ROS): single key presses from a terminal into a queue.

Started by the teleop node only when its stdin is a TTY; the key map is
:data:`bora_teleop.events.KEYMAP`. The terminal is put in cbreak mode (no Enter needed, Ctrl-C
still works) and restored on :meth:`KeyReader.stop`.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading


class KeyReader:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
        self.keys: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved = None

    @staticmethod
    def available(stream=None) -> bool:
        stream = stream or sys.stdin
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def start(self) -> KeyReader:
        import termios
        import tty

        fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._run, name="teleop_keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        fd = self.stream.fileno()
        while not self._stop.is_set():
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                ch = os.read(fd, 1).decode(errors="ignore").lower()
                if ch:
                    self.keys.put(ch)

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.keys.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None
