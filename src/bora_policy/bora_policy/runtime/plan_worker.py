"""The policy node's inference thread: one plan at a time, off the control thread (no rclpy).

``submit(item)`` hands the thread the observation to plan from and returns False while a plan is still
running (the caller's ``ChunkScheduler`` then keeps its request for later); the thread calls
``plan(item)`` and then ``on_result(item, result)``, or ``on_error(item, exc)`` when either raised, and is
free again before either callback returns, so a callback may submit the next plan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class PlanWorker:
    def __init__(
        self,
        plan: Callable[[Any], Any],
        on_result: Callable[[Any, Any], None],
        on_error: Callable[[Any, BaseException], None],
        name: str = "bora-inference",
    ):
        self._plan, self._on_result, self._on_error = plan, on_result, on_error
        self._cv = threading.Condition()
        self._item: Any = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, item: Any) -> bool:
        """Start a plan on ``item``; False (nothing started) while the previous one runs or after stop."""
        with self._cv:
            if self._busy or self._stop:
                return False
            self._item, self._busy = item, True
            self._cv.notify()
            return True

    def stop(self, timeout: float = 2.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._item is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                item, self._item = self._item, None
            try:
                result = self._plan(item)
            except Exception as e:  # noqa: BLE001 - report, stay alive for the next plan
                self._busy = False
                self._on_error(item, e)
                continue
            self._busy = False
            try:
                self._on_result(item, result)
            except Exception as e:  # noqa: BLE001
                self._on_error(item, e)
