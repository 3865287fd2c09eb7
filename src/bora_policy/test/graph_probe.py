"""A probe node for the graph tests: subscribes to the named topics, records (arrival time, message),
calls services and waits for a message matching a predicate. Shared by test_node_graph.py and
test_graph_faults.py (each names its own topics)."""

from __future__ import annotations

import threading
import time

import rclpy


class GraphProbe:
    def __init__(self, name: str, topics):
        """``topics``: (key, message type, topic name) triples; received messages go to ``self.rx[key]``."""
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        rclpy.init()
        self.node = rclpy.create_node(name)
        self.rx: dict[str, list] = {key: [] for key, _, _ in topics}
        rel = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for key, typ, topic in topics:
            self.node.create_subscription(typ, topic, lambda m, k=key: self.rx[k].append((time.monotonic(), m)), rel)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(self.node)
        self._stop = False
        self.th = threading.Thread(target=self._spin, daemon=True)
        self.th.start()

    def _spin(self):
        while not self._stop:
            self.ex.spin_once(timeout_sec=0.05)

    def call(self, srv_type, name, req, timeout=20.0):
        cli = self.node.create_client(srv_type, name)
        assert cli.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        fut = cli.call_async(req)
        end = time.monotonic() + timeout
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.02)
        assert fut.done(), f"{name} did not answer within {timeout} s"
        return fut.result()

    def wait_timed(self, key, pred=lambda m: True, timeout=60.0, after=0.0):
        """(arrival time, message) of the first message on ``key`` that arrived after ``after`` and matches
        ``pred``, waiting up to ``timeout`` s; None if none came."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, m in list(self.rx[key]):
                if t >= after and pred(m):
                    return t, m
            time.sleep(0.02)
        return None

    def close(self):
        self._stop = True
        self.th.join(timeout=2)
        self.node.destroy_node()
        rclpy.try_shutdown()


def stop_process(proc) -> None:
    """Stop a node or ``bora up`` process as Ctrl-C does (SIGINT: its clean shutdown), killed after 30 s."""
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
