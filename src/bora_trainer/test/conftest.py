"""Fixtures shared by the trainer's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def node(request):
    """An rclpy node of the test module (rclpy initialised for the module, shut down after it): the test's
    side of the graph. Call sites source scripts/env.sh first (loopback DDS, per-run domain)."""
    import rclpy

    rclpy.init()
    n = rclpy.create_node(f"{request.module.__name__}_probe")
    yield n
    n.destroy_node()
    rclpy.try_shutdown()
