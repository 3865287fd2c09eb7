"""The policy node's help output (nodes/policy_help.py): parameters -> monitor configuration, and a request
published as bora_msgs/HelpRequest over DDS (a real rclpy node in this process)."""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest
import rclpy
from rclpy.parameter import Parameter

from bora_policy.nodes.policy_help import HelpOutput, monitor_config


def test_monitor_config_from_file_and_overrides(tmp_path):
    f = tmp_path / "help.json"
    mon = {"threshold": 0.2, "hysteresis": 0.1, "min_interval_s": 2.0, "persist_steps": 3, "grace_steps": 4,
           "signal": "v", "advantage_threshold": None, "failure_value": -0.4, "slope_window": 8, "control_hz": 10.0}
    f.write_text(json.dumps({"format": "bora-help-calibration/1", "tasks": {"press_button": {"monitor": mon}}}))
    c = monitor_config(15.0, str(f))  # the file's only task; control_hz from the node
    assert (c.threshold, c.signal, c.persist_steps, c.control_hz) == (0.2, "v", 3, 15.0)
    c = monitor_config(10.0, str(f), "press_button", 0.5, hysteresis=math.nan, persist_steps=1, signal="")
    assert (c.threshold, c.hysteresis, c.persist_steps, c.signal) == (0.5, 0.1, 1, "v")
    assert monitor_config(10.0).threshold is None  # neither file nor threshold: off
    with pytest.raises(ValueError, match="no entry for task 'x'"):
        monitor_config(10.0, str(f), "x")


def test_help_output_publishes_a_request():
    from bora_msgs.msg import HelpRequest

    rclpy.init()
    try:
        node = rclpy.create_node("help_out_test", parameter_overrides=[
            Parameter("help_threshold", value=0.3), Parameter("help_grace_steps", value=0),
            Parameter("help_persist_steps", value=1)])
        node.control_hz = 10.0
        out = HelpOutput(node, 10)
        got = []
        node.create_subscription(HelpRequest, "/bora/help_request", got.append, 10)
        res = SimpleNamespace(q=[0.5, 0.1, 0.1], v=[0.4, 0.4, 0.4], advantage=[0.1, -0.3, -0.3])
        node._takeover = (True, 1.0, False)  # the operator is in control: not monitored
        out.tick(res, 1, 7, "sess", 2, 0.9)
        assert out.monitor.last_signal is None and out.last is None
        node._takeover = (False, 0.0, False)
        out.tick(res, 0, 7, "sess", 3, 1.0)  # q_0 = 0.5: no request
        out.tick(res, 1, 7, "sess", 4, 1.1)  # q_1 = 0.1 < 0.3
        end = time.monotonic() + 5.0
        while not got and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        (m,) = got
        assert (m.episode_id, m.session_id, m.step, m.reason) == (7, "sess", 4, "low_value")
        assert m.value == pytest.approx(0.1) and m.threshold == pytest.approx(0.3)
        assert m.predicted_steps_to_failure == -1
        assert out.marker(2.0).step == 4 and out.marker(10.0) is None  # shown for help_marker_s = 5 s
        out.reset()
        assert out.marker(1.2) is None and out.monitor.armed
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
