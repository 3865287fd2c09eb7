"""Safety layer: limits clamp, velocity limit, NaN -> hold, workspace box via Franka FK, latched e-stop."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bora_teleop.kinematics import panda_fk, panda_tool_position
from bora_teleop.safety import FR3_LOWER, FR3_UPPER, SafetyConfig, SafetyLayer

READY = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])


def test_fk_matches_published_franka_poses():
    # q = 0: flange at x = a7 = 0.088, z = 0.333 + 0.316 + 0.384 - 0.107 = 0.926 (flange axis points down)
    T0 = panda_fk(np.zeros(7))
    np.testing.assert_allclose(T0[:3, 3], [0.088, 0.0, 0.926], atol=1e-9)
    np.testing.assert_allclose(T0[:3, 2], [0.0, 0.0, -1.0], atol=1e-9)
    # Franka's "ready" pose with the Franka Hand TCP (0.1034 m past the flange): ~(0.307, 0, 0.487)
    np.testing.assert_allclose(
        panda_tool_position(READY, tool_offset=(0, 0, 0.1034)), [0.3069, 0.0, 0.4869], atol=5e-4
    )


def test_fk_matches_the_mujoco_panda_of_the_simulation():
    """Independent check against MuJoCo's kinematics of the gymnasium-robotics Panda the sim uses
    (its link 6 zero is rotated by 1.57 rad: joint_offsets[5] = 1.57)."""
    import gymnasium_robotics
    import mujoco

    d = os.path.join(
        os.path.dirname(gymnasium_robotics.__file__), "envs", "assets", "kitchen_franka", "franka_assets"
    )
    xml = (
        f'<mujoco><include file="{d}/assets.xml"/><compiler angle="radian" meshdir="{d}/meshes" '
        f'autolimits="true"/><worldbody><include file="{d}/chain.xml"/></worldbody></mujoco>'
    )
    m = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(m)
    site = m.site("end_effector").id  # 0.210 m along link 7 = 0.103 m past the flange
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = rng.uniform(-1.0, 1.0, 7)
        q[3] = rng.uniform(-2.5, -0.5)
        data.qpos[:7] = q
        mujoco.mj_kinematics(m, data)
        p = panda_tool_position(q, joint_offsets=[0, 0, 0, 0, 0, 1.57, 0], tool_offset=(0, 0, 0.103))
        np.testing.assert_allclose(p, data.site_xpos[site], atol=1e-3)


def _layer(**kw) -> SafetyLayer:
    cfg = SafetyConfig(hand_lower=[0.0, -0.5], hand_upper=[1.5, 0.5], control_hz=10.0, **kw)
    return SafetyLayer(cfg, n_hand=2)


def _measured():
    return np.concatenate([READY, [0.2, 0.0]])


def test_no_command_before_the_first_measured_state():
    s = _layer()
    out = s.apply(_measured(), measured=None)
    assert out.command is None and out.held and out.reason == "no_state"


def test_limits_clamp_and_velocity_limits_the_step():
    s = _layer(arm_max_velocity=1.0, hand_max_velocity=2.0, workspace_check=False)  # 0.1 / 0.2 rad per tick
    meas = _measured()
    cand = meas.copy()
    cand[0] += 0.05  # within the step limit: passes exactly
    cand[1] -= 1.0  # far: rate limited to -0.1
    cand[7] = 9.0  # hand above its 1.5 limit: clamped, then rate limited from 0.2 -> 0.4
    out = s.apply(cand, meas)
    assert not out.held and out.clamped and out.rate_limited
    expected = meas.copy()
    expected[0] += 0.05
    expected[1] -= 0.1
    expected[7] = 0.4
    np.testing.assert_allclose(out.command, expected, atol=1e-12)
    # repeated: converges to the clamped target at <= max step per tick, never beyond the limit
    for _ in range(20):
        out = s.apply(cand, meas)
        assert np.all(out.command >= s.lower - 1e-12) and np.all(out.command <= s.upper + 1e-12)
    assert out.command[7] == pytest.approx(1.5)
    assert out.command[1] == pytest.approx(max(READY[1] - 1.0, FR3_LOWER[1]))


def test_nan_holds_last_safe_command_and_reports_error():
    s = _layer(workspace_check=False)
    meas = _measured()
    ok = s.apply(meas + 0.01, meas)
    bad = meas.copy()
    bad[3] = np.nan
    out = s.apply(bad, meas)
    assert out.held and out.reason == "nan" and "joint indices [3]" in out.error
    np.testing.assert_array_equal(out.command, ok.command)
    bad[3] = np.inf
    assert s.apply(bad, meas).reason == "nan"


def test_workspace_box_holds_when_the_tool_would_leave():
    # READY flange is at ~(0.307, 0, 0.59); a box whose top is below it rejects the pose
    s = _layer(workspace_min=[0.2, -0.5, 0.02], workspace_max=[0.8, 0.5, 0.5])
    out = s.apply(_measured(), _measured())
    assert out.held and out.reason == "workspace" and "outside the workspace box" in out.error
    # the hold target is the measured position, captured once
    np.testing.assert_allclose(out.command, _measured())
    s2 = _layer()  # default box [0.2..0.8, -0.5..0.5, 0.02..0.8] contains it
    assert not s2.apply(_measured(), _measured()).held
    assert s2.in_workspace(READY) and not s2.in_workspace(np.zeros(7))  # q=0: x = 0.088 < 0.2


def test_estop_latches_until_reset_and_reset_refused_while_pressed():
    s = _layer(workspace_check=False)
    meas = _measured()
    first = s.apply(meas, meas)
    s.set_estop(True)
    assert s.apply(meas + 0.05, meas).reason == "estop"
    ok, msg = s.reset_estop()
    assert not ok and "still active" in msg
    s.set_estop(False)  # button released: still latched
    out = s.apply(meas + 0.05, meas)
    assert out.held and out.reason == "estop"
    np.testing.assert_array_equal(out.command, first.command)
    assert s.reset_estop()[0] is True
    assert not s.apply(meas + 0.01, meas).held


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="hand_lower/hand_upper"):
        SafetyLayer(SafetyConfig(hand_lower=[0.0]), n_hand=2)
    with pytest.raises(ValueError, match="arm_max_velocity"):
        _layer(arm_max_velocity=[1.0, 2.0])
    with pytest.raises(ValueError, match="workspace_min"):
        _layer(workspace_min=[1, 1, 1], workspace_max=[0, 0, 0])
    assert len(FR3_UPPER) == 7


def test_a_hold_after_the_robot_was_moved_holds_it_where_it_stands():
    """Found in review: after an episode's outcome nothing is sent, the simulator (or a person) resets the arm,
    then an e-stop or any hold came: it commanded the previous episode's final pose in one tick (0.4 rad at
    0.05 rad per tick). Now a hold re-anchors at the measured position when the two are more than RESYNC_STEPS
    ticks of travel apart, and the episode's end forgets the last command."""
    from bora_teleop.safety import RESYNC_STEPS

    s = _layer(workspace_check=False)  # arm 0.5 rad/s at 10 Hz: 0.05 rad per tick
    meas = _measured()
    for i in range(8):  # the policy drives joint 0 to +0.4
        out = s.apply(meas + np.r_[0.05 * (i + 1), np.zeros(8)], meas + np.r_[0.05 * i, np.zeros(8)])
    assert out.command[0] == pytest.approx(READY[0] + 0.4)
    assert s.apply(None, meas + np.r_[0.4, np.zeros(8)], hold_reason="episode_over").command is None
    reset = meas.copy()  # the arm is back at READY (0.4 rad away) before the next START
    s.set_estop(True)
    out = s.apply(None, reset)
    assert out.reason == "estop" and np.allclose(out.command, reset)  # not READY + 0.4
    # while latched the arm is hand-guided 0.2 rad away (4 ticks of travel > RESYNC_STEPS): held where it is
    guided = reset + np.r_[0.0, 0.2, np.zeros(7)]
    assert 0.2 > RESYNC_STEPS * 0.05
    out = s.apply(None, guided)
    assert np.allclose(out.command, guided) and s.counts["resync"] == 1
    # within the tolerance (a tracking lag) the hold keeps its target
    assert np.allclose(s.apply(None, guided + np.r_[0.0, 0.05, np.zeros(7)]).command, guided)
    s.set_estop(False)
    assert s.reset_estop()[0]
    out = s.apply(meas + np.r_[0.4, np.zeros(8)], guided)  # after the reset: one tick's travel from where it is
    assert np.abs(out.command - guided).max() == pytest.approx(0.05)


def test_the_e_key_latches_without_clearing_an_asserted_e_stop_input():
    """The keyboard's e used to call set_estop(True) then set_estop(False): the second call cleared the topic's
    still-asserted input, and reset_estop then succeeded while the external e-stop was pressed."""
    s = _layer(workspace_check=False)
    s.set_estop(True)  # the topic: pressed
    s.latch_estop()  # the key
    ok, msg = s.reset_estop()
    assert not ok and "still active" in msg
    s2 = _layer(workspace_check=False)
    s2.latch_estop()
    assert s2.estop_latched and not s2.estop_input and s2.reset_estop()[0]


def test_a_joint_measured_outside_its_limits_comes_back_one_step_a_tick():
    """The hold anchor was clip(measured): a hand closed to 1.5 rad with a 1.2 limit jumped 0.3 rad (3 ticks of
    travel) in one tick. Now the hold keeps it where it stands and commands bring it in at the rate limit."""
    s = SafetyLayer(SafetyConfig(hand_lower=[0.0, -0.5], hand_upper=[1.2, 0.5], control_hz=10.0,
                                 workspace_check=False), n_hand=2)  # hand 1.0 rad/s: 0.1 rad per tick
    meas = np.concatenate([READY, [1.5, 0.0]])
    out = s.apply(None, meas, hold_reason="episode_start")
    assert out.command[7] == pytest.approx(1.5)
    steps = []
    for _ in range(5):
        out = s.apply(meas, meas)  # the policy asks to stay at 1.5: clamped to 1.2, reached one step a tick
        steps.append(out.command[7])
    np.testing.assert_allclose(steps, [1.4, 1.3, 1.2, 1.2, 1.2], atol=1e-12)


def test_non_finite_limits_are_refused():
    with pytest.raises(ValueError, match="must be finite"):
        _layer(arm_lower=[np.nan] + list(FR3_LOWER[1:]))
    with pytest.raises(ValueError, match="must be finite"):
        _layer(arm_upper=[np.inf] * 7)
    with pytest.raises(ValueError, match="_max_velocity"):
        _layer(arm_max_velocity=np.nan)
    with pytest.raises(ValueError, match="workspace_min"):
        _layer(workspace_max=[np.nan, 0.5, 0.8])


def test_velocity_limit_scales_with_the_time_since_the_last_command():
    """Found in review: the limit was one step per tick whatever the time between ticks, so a late tick followed by
    an early one (the control loop returning to its schedule) sent two full steps 0.01 s apart (10x the speed).
    With the tick's time the step is max_velocity * dt, dt at most one period; a clock stepping back sends none."""
    s = _layer(workspace_check=False)  # arm 0.5 rad/s: 0.05 rad per 0.1 s tick
    meas = _measured()
    far = meas + np.r_[1.0, np.zeros(8)]
    out = s.apply(far, meas, now=10.0)  # the first command: rate limited from the measured state, one full step
    assert out.command[0] - meas[0] == pytest.approx(0.05)
    out = s.apply(far, meas, now=10.19)  # 0.09 s late: still one step (at most one period)
    assert out.command[0] - meas[0] == pytest.approx(0.10)
    out = s.apply(far, meas, now=10.20)  # 0.01 s later: 0.005 rad, not another 0.05
    assert out.command[0] - meas[0] == pytest.approx(0.105)
    out = s.apply(far, meas, now=9.0)  # the clock stepped back: no motion
    assert out.command[0] - meas[0] == pytest.approx(0.105)
    out = s.apply(far, meas)  # without a time: one step per call, as before
    assert out.command[0] - meas[0] == pytest.approx(0.155)


def test_a_hold_in_a_grasp_keeps_squeezing():
    """A first version of the resync compared the measured position with the command: in a grasp the fingers rest
    short of it (here 0.5 rad, 5 ticks of hand travel), so a one-tick stale hold would have commanded the measured
    fingers and opened the grip (found by the review of that change). The criterion is the robot's own motion since
    the last command sent."""
    s = _layer(workspace_check=False)  # hand 1.0 rad/s: 0.1 rad per tick
    meas = _measured()
    closing = meas.copy()
    closing[7] = 1.2
    blocked = meas.copy()
    blocked[7] = 0.7  # the finger stopped on the object
    for _ in range(12):
        out = s.apply(closing, blocked)
    assert out.command[7] == pytest.approx(1.2)
    held = s.apply(None, blocked, hold_reason="stale")
    assert held.command[7] == pytest.approx(1.2) and s.counts["resync"] == 0
    # the same hold after the finger was pulled open by hand (0.7 -> 0.2: 5 ticks of travel since the last send)
    moved = blocked.copy()
    moved[7] = 0.2
    assert s.apply(None, moved, hold_reason="stale").command[7] == pytest.approx(0.2) and s.counts["resync"] == 1
