"""Where the policy node's HOLD mode holds (runtime/hold_target.py), on hand-written timelines: times in
seconds of the node's clock at 10 Hz (max_gap_s 0.2, two control periods), two joints ``a``, ``b``."""

from __future__ import annotations

import numpy as np
import pytest

from bora_policy.runtime.hold_target import HoldTarget

NAMES = ["a", "b"]


def _pos(target):
    assert target is not None and target[1] == NAMES
    return target[0].tolist()


def test_autonomous_to_hold_keeps_the_last_command_not_the_sagging_measurement():
    h = HoldTarget(0.2)
    h.sent(20.0, [0.5, -0.3], NAMES)  # the policy's last AUTONOMOUS command
    # HOLD at the next tick: the arm measured 2 cm below its command (gravity), the fingers short of a grasp
    assert _pos(h.target(20.1, ([0.48, -0.31], NAMES))) == [0.5, -0.3]
    h.sent(20.1, [0.5, -0.3], NAMES)  # (the node publishes it and records it)
    assert _pos(h.target(20.2, ([0.47, -0.32], NAMES))) == [0.5, -0.3]  # and again: no creep toward the sag
    assert _pos(h.target(20.2, None)) == [0.5, -0.3]


def test_without_a_recent_command_the_fresh_measured_state_is_captured_once():
    h = HoldTarget(0.2)
    assert h.target(10.0, None) is None  # nothing sent, no fresh observation: send nothing
    assert _pos(h.target(10.0, ([0.1, 0.2], NAMES))) == [0.1, 0.2]  # e.g. HOLD after PAUSED
    h.sent(10.0, [0.1, 0.2], NAMES)
    assert _pos(h.target(10.1, ([0.09, 0.19], NAMES))) == [0.1, 0.2]  # captured once, not followed


def test_a_gap_in_the_commands_stale_observations_or_a_forget_recapture_the_measured_state():
    h = HoldTarget(0.2)
    h.sent(0.0, [0.5, -0.3], NAMES)
    assert _pos(h.target(0.2, ([0.0, 0.0], NAMES))) == [0.5, -0.3]  # 0.2 s: still one stream
    # nothing sent for 0.35 s (observations were stale: the arbiter held on its own, and may have re-anchored)
    assert _pos(h.target(0.35, ([0.45, -0.2], NAMES))) == [0.45, -0.2]
    assert h.target(0.35, None) is None  # still stale: nothing (not the old command)
    h.sent(30.0, [1.0, 1.0], NAMES)
    h.forget()  # a takeover, or a new episode
    assert _pos(h.target(30.1, ([0.7, 0.8], NAMES))) == [0.7, 0.8]
    h.sent(40.0, [1.0, 1.0], NAMES)
    assert _pos(h.target(39.9, ([0.7, 0.8], NAMES))) == [0.7, 0.8]  # a clock that stepped back: no stream


def test_a_non_finite_measured_state_is_never_held_and_the_gap_must_be_positive():
    h = HoldTarget(0.2)
    assert h.target(1.0, ([0.1, float("nan")], NAMES)) is None
    got = h.target(1.0, (np.array([0.1, 0.2], np.float32), NAMES))
    got[0][0] = 9.0  # the caller's copy
    h.sent(1.0, [0.1, 0.2], NAMES)
    assert np.allclose(h.target(1.1)[0], [0.1, 0.2])
    with pytest.raises(ValueError, match="max_gap_s must be > 0, got 0.0"):
        HoldTarget(0.0)
