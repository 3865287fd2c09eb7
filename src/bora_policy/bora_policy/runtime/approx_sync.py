"""Approximate-time synchroniser: the algorithm of ``message_filters.ApproximateTimeSynchronizer``.

Pure Python (no rclpy), for machines where ``message_filters`` is absent (PyPI ROS 2 wheels).
Semantics follow ROS 2 ``message_filters/__init__.py`` (``ApproximateTimeSynchronizer.add``):

* one queue per input, keyed by stamp (integer nanoseconds); a queue keeps at most
  ``queue_size`` messages, the oldest stamp is dropped first;
* when a message with stamp ``t`` arrives on input ``j``, every OTHER queue is filtered to
  the stamps within ``slop`` of ``t`` and sorted by ``|s - t|``; if one is empty, nothing is
  emitted. Otherwise the combinations are tried in that order (``itertools.product``), and the
  first set whose spread ``max - min`` is strictly below ``slop`` is emitted and its messages
  are removed from their queues (one set per arriving message at most).

``stamp_of(msg)`` reads ``msg.header.stamp`` (``sec``/``nanosec``) by default; pass your own
for headerless inputs. The callback runs in the thread that called :meth:`add`, outside the lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any


def header_stamp_ns(msg: Any) -> int:
    """``msg.header.stamp`` as integer nanoseconds (builtin_interfaces/Time fields)."""
    try:
        st = msg.header.stamp
    except AttributeError as e:
        raise ValueError(
            f"approx_sync: message of type {type(msg).__name__} has no header.stamp; "
            "pass stamp_of= for headerless inputs"
        ) from e
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


class ApproximateTimeSynchronizer:
    """Group one message per input whose stamps lie within ``slop`` seconds of each other."""

    def __init__(
        self, n_inputs: int, queue_size: int, slop: float, stamp_of: Callable[[Any], int] = header_stamp_ns
    ):
        if n_inputs < 1:
            raise ValueError(f"approx_sync: n_inputs must be >= 1, got {n_inputs}")
        if queue_size < 1:
            raise ValueError(f"approx_sync: queue_size must be >= 1, got {queue_size}")
        if not slop >= 0.0:
            raise ValueError(f"approx_sync: slop must be >= 0 seconds, got {slop}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self.stamp_of = stamp_of
        self.queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self.callbacks: list[Callable[..., None]] = []
        self.lock = threading.Lock()

    def register_callback(self, cb: Callable[..., None]) -> None:
        """``cb(*msgs)`` with one message per input, in input order."""
        self.callbacks.append(cb)

    def add(self, msg: Any, index: int) -> Sequence[Any] | None:
        """Feed ``msg`` arriving on input ``index``; returns the emitted set (also sent to callbacks)."""
        if not 0 <= index < len(self.queues):
            raise IndexError(f"approx_sync: input index {index} out of range 0..{len(self.queues) - 1}")
        stamp = int(self.stamp_of(msg))
        out = None
        with self.lock:
            my_queue = self.queues[index]
            my_queue[stamp] = msg
            while len(my_queue) > self.queue_size:
                del my_queue[min(my_queue)]
            others = [q for i, q in enumerate(self.queues) if i != index]
            candidates: list[list[int]] = []
            for q in others:
                near = sorted(
                    ((s, abs(s - stamp)) for s in q if abs(s - stamp) <= self.slop_ns), key=lambda x: x[1]
                )
                if not near:
                    return None
                candidates.append([s for s, _ in near])
            for combo in itertools.product(*candidates):
                vv = list(combo)
                vv.insert(index, stamp)
                pairs = list(zip(self.queues, vv))
                if max(vv) - min(vv) < self.slop_ns and all(t in q for q, t in pairs):
                    out = [q[t] for q, t in pairs]
                    for q, t in pairs:
                        del q[t]
                    break
        if out is not None:
            for cb in self.callbacks:
                cb(*out)
        return out

    def clear(self) -> None:
        with self.lock:
            for q in self.queues:
                q.clear()


def make_synchronizer(n_inputs: int, queue_size: int, slop: float, prefer_message_filters: bool = True):
    """Return ``(sync, kind)``: a message_filters-backed synchroniser where it imports, else ours.

    Both expose ``add(msg, index)`` and ``register_callback(cb)``; ``kind`` is "message_filters"
    or "bora". The message_filters variant feeds ``SimpleFilter`` inputs of the real class.
    """
    if prefer_message_filters:
        try:
            return MessageFiltersSynchronizer(n_inputs, queue_size, slop), "message_filters"
        except ImportError:
            pass
    return ApproximateTimeSynchronizer(n_inputs, queue_size, slop), "bora"


class MessageFiltersSynchronizer:
    """The real ``message_filters.ApproximateTimeSynchronizer`` behind the same ``add``/callback API."""

    def __init__(self, n_inputs: int, queue_size: int, slop: float):
        import message_filters  # real ROS 2 installs only

        self._inputs = [message_filters.SimpleFilter() for _ in range(n_inputs)]
        self._sync = message_filters.ApproximateTimeSynchronizer(self._inputs, queue_size, slop)
        self._last: list[Any] | None = None
        self._sync.registerCallback(self._on_set)
        self.callbacks: list[Callable[..., None]] = []

    def _on_set(self, *msgs) -> None:
        self._last = list(msgs)
        for cb in self.callbacks:
            cb(*msgs)

    def register_callback(self, cb: Callable[..., None]) -> None:
        self.callbacks.append(cb)

    def add(self, msg: Any, index: int):
        self._last = None
        self._inputs[index].signalMessage(msg)
        return self._last
