"""The node tests' rig helper leaves no node process behind when building the rig fails."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import rclpy  # noqa: E402
from teleop_rig import make_rig  # noqa: E402


def test_make_rig_stops_the_node_when_the_rig_cannot_be_built():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for the node
    rclpy.init()  # a second rclpy.init() inside make_rig raises, as a missing message build would
    try:
        with pytest.raises(RuntimeError):
            make_rig(proc)
        assert proc.wait(timeout=10) is not None  # stopped, not left running
    finally:
        rclpy.try_shutdown()
        if proc.poll() is None:
            proc.kill()
