"""Arbiter (no ROS): clean episode starts (hold the measured state of the new episode, drop commands of
other episodes, rate limit from the measured state) and takeover requests from two sources."""

from __future__ import annotations

import numpy as np
import pytest

from bora_teleop.arbiter import Arbiter, ArbiterConfig
from bora_teleop.blend import BlendConfig
from bora_teleop.glove import GloveSample
from bora_teleop.retarget import RetargetMap
from bora_teleop.safety import SafetyConfig
from bora_teleop.sources import OPERATOR, PERSON, TakeoverSources

ARM = [f"j{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
STEP = 0.1  # arm_max_velocity 1 rad/s at 10 Hz: at most 0.1 rad per tick


def make(ramp=0.0) -> Arbiter:
    rmap = RetargetMap(["h0", "h1"], ["f0", "f1"], np.diag([0.5, 1.0]), [0.0, 0.1], [0.0, 0.0], [1.5, 1.5])
    cfg = ArbiterConfig(
        control_hz=10.0,
        watchdog_timeout_s=0.5,
        human_timeout_s=0.5,
        blend=BlendConfig(ramp),
        safety=SafetyConfig(arm_max_velocity=1.0, hand_max_velocity=10.0, workspace_check=False),
    )
    a = Arbiter(cfg, ARM, rmap)
    a.set_measured(arm=READY, hand=[0.2, 0.2])
    return a


def test_episode_start_holds_the_new_measured_state_and_drops_old_commands():
    a = make()
    assert a.start_episode(1) and not a.start_episode(1)  # the same START twice applies once
    # episode 1: the policy drives joint 2 (index 1) 0.3 rad away, in 0.1 rad steps
    far = np.r_[READY + np.array([0, 0.3, 0, 0, 0, 0, 0]), 0.2, 0.2]
    t = 0.0
    for k in range(5):
        t += 0.1
        assert a.set_policy(far, t, episode_id=1, step=k) == ""
        r = a.tick(t)
    np.testing.assert_allclose(r.command, far)
    # the sim resets: START of episode 2 arrives before the reset state
    t += 0.1
    assert a.start_episode(2)
    r = a.tick(t)
    assert r.held and r.hold_reason == "episode_start" and r.command is None  # nothing until the new state
    assert r.episode_id == 2 and r.step == 1  # the step restarts at the START and advances per tick
    # the policy's last command of episode 1 arrives 11 ms after the START: dropped, counted
    why = a.set_policy(far, t + 0.011, episode_id=1, step=99)
    assert "episode 1 dropped" in why and "current episode is 2" in why and a.dropped_commands == 1
    reset_arm = READY + np.array([0, 0.078 - READY[1], 0, 0, 0, 0, 0])  # joint 2 at 0.078 after the reset
    a.set_measured(arm=reset_arm, hand=[0.3, 0.3])
    for _ in range(3):
        t += 0.1
        r = a.tick(t)
        assert r.held and r.hold_reason == "episode_start" and "episode 2" in r.error
        np.testing.assert_allclose(r.command, np.r_[reset_arm, 0.3, 0.3])  # the MEASURED state, not `far`
    assert a.set_policy(far, t, episode_id=1, step=100) != "" and a.dropped_commands == 2
    # the first command of episode 2: rate limited from the measured state (not from episode 1's pose)
    target = np.r_[reset_arm + np.array([0.05, 0.5, 0, 0, 0, 0, 0]), 0.3, 0.3]
    t += 0.1
    assert a.set_policy(target, t, episode_id=2, step=1) == ""
    r = a.tick(t)
    assert not r.held and r.episode_id == 2
    expected = np.r_[reset_arm + np.array([0.05, STEP, 0, 0, 0, 0, 0]), 0.3, 0.3]  # joint 2: +0.1 only
    np.testing.assert_allclose(r.command, expected, atol=1e-12)
    assert a.safety.counts["episode_start"] == 4


def test_before_any_start_the_policy_episode_is_followed():
    a = make()
    cmd = np.r_[READY, 0.2, 0.2]
    assert a.set_policy(cmd, 0.0, episode_id=7, step=3) == ""
    r = a.tick(0.05)
    assert not r.held and r.episode_id == 7
    assert a.set_policy(cmd, 0.1, episode_id=8, step=0) == ""  # still no START seen: followed
    assert a.tick(0.15).episode_id == 8


def test_bad_command_of_the_new_episode_is_still_reported():
    a = make()
    a.start_episode(3)
    a.set_measured(arm=READY, hand=[0.2, 0.2])
    assert a.set_policy(None, 0.0, episode_id=3, error="policy command: missing joints") == ""
    r = a.tick(0.05)
    assert r.held and r.hold_reason == "bad_command" and "missing joints" in r.error


def test_takeover_sources_rules():
    s = TakeoverSources()
    assert s.request(OPERATOR, True) and s.owner() == OPERATOR
    assert s.request(PERSON, True) and s.owner() == PERSON  # the person takes over from the script
    assert s.request(OPERATOR, False) and s.owner() == PERSON  # the script's every-tick False: ignored
    assert s.request(OPERATOR, True) and s.owner() == PERSON
    assert not s.request(PERSON, False)  # the person's release ends it, although the script says True
    assert not s.request(OPERATOR, True)  # the script's every-tick True does not take over again
    assert not s.request(OPERATOR, False)
    assert s.request(OPERATOR, True) and s.owner() == OPERATOR  # its next rising edge does
    s.end_now()
    assert not s.requested() and not s.request(OPERATOR, True)
    with pytest.raises(ValueError, match="takeover source"):
        s.request("robot", True)


def test_a_person_takeover_is_not_released_by_the_scripted_operator_and_uses_the_person_glove():
    a = make(ramp=0.0)
    a.start_episode(1)
    cmd = np.r_[READY, 0.2, 0.2]
    person_arm, op_arm = READY + 0.02, READY - 0.02
    t = 0.0
    a.set_policy(cmd, t, episode_id=1)
    a.tick(t)
    a.request_takeover(PERSON, True, t)
    for k in range(10):  # the scripted operator publishes False, and its glove, every tick
        t += 0.1
        a.set_policy(cmd, t, episode_id=1)
        a.request_takeover(OPERATOR, False, t)
        a.set_glove(GloveSample(np.array([1.0, 0.5]), k, 0.0, t), PERSON)
        a.set_arm_target(person_arm, t, PERSON)
        a.set_glove(GloveSample(np.array([0.2, 0.2]), k, 0.0, t), OPERATOR)
        a.set_arm_target(op_arm, t, OPERATOR)
        r = a.tick(t)
        assert r.beta == 1.0 and r.is_intervention and not r.held
    # A_human from the person's inputs: hand = clip(diag(0.5, 1) h + (0, 0.1)) = [0.5, 0.6]
    np.testing.assert_allclose(r.a_human, np.r_[person_arm, 0.5, 0.6])
    a.request_takeover(PERSON, False, t)
    t += 0.1
    r = a.tick(t)
    assert r.beta == 0.0 and not r.is_intervention
    # the scripted operator's own takeover uses its inputs
    a.request_takeover(OPERATOR, True, t)
    t += 0.1
    a.set_policy(cmd, t, episode_id=1)
    a.set_glove(GloveSample(np.array([0.2, 0.2]), 99, 0.0, t), OPERATOR)
    a.set_arm_target(op_arm, t, OPERATOR)
    r = a.tick(t)
    assert r.beta == 1.0
    np.testing.assert_allclose(r.a_human, np.r_[op_arm, 0.1, 0.3])


def test_a_state_measured_before_the_start_is_not_held_for_the_new_episode():
    """The previous episode's last joint state, delivered after the START (another topic, no order), is not
    the new episode's state: nothing is sent until one stamped at or after the START arrives."""
    a = make()
    a.start_episode(1, stamp=100.0)
    a.set_measured(arm=READY, hand=[0.2, 0.2], stamp=100.1)
    assert a.set_policy(np.r_[READY, 0.2, 0.2], 100.1, episode_id=1) == ""
    a.tick(100.1)
    old = READY + np.array([0, 0.35, 0, 0, 0, 0, 0])  # where episode 1 ended
    a.set_measured(arm=old, hand=[0.2, 0.2], stamp=104.0)
    assert a.start_episode(2, stamp=104.05)
    a.set_measured(arm=old, hand=[0.2, 0.2], stamp=104.0)  # in flight: measured 50 ms before the START
    r = a.tick(104.1)
    assert r.held and r.hold_reason == "episode_start" and r.command is None
    home = READY.copy()
    a.set_measured(arm=home, hand=[0.3, 0.3], stamp=104.15)  # the reset state
    r = a.tick(104.2)
    assert r.held and r.hold_reason == "episode_start"
    np.testing.assert_allclose(r.command, np.r_[home, 0.3, 0.3])
    # unknown stamps (0: a driver that does not stamp) fall back to the arrival order, as before
    b = make()
    b.start_episode(1, stamp=50.0)
    b.set_measured(arm=old, hand=[0.2, 0.2], stamp=0.0)
    np.testing.assert_allclose(b.tick(50.1).command, np.r_[old, 0.2, 0.2])


def test_nothing_is_sent_between_an_outcome_and_the_next_start_unless_a_takeover_runs():
    a = make(ramp=0.0)
    a.start_episode(1)
    cmd = np.r_[READY, 0.2, 0.2]
    a.set_policy(cmd, 0.0, episode_id=1)
    assert a.tick(0.0).command is not None
    assert not a.end_episode(7)  # not the current episode: ignored
    assert a.end_episode(1)
    a.set_policy(cmd, 0.05, episode_id=1)  # the policy's last command, still fresh: not passed on
    r = a.tick(0.1)
    assert r.held and r.hold_reason == "episode_over" and r.command is None and "episode 1 is over" in r.error
    assert a.safety.counts["episode_over"] == 1
    # a person takes over between episodes (to reset the scene): their commands are sent
    a.request_takeover(PERSON, True, 0.1)
    a.set_glove(GloveSample(np.array([1.0, 0.5]), 0, 0.0, 0.2), PERSON)
    a.set_arm_target(READY + 0.01, 0.2, PERSON)
    r = a.tick(0.2)
    assert not r.held and r.beta == 1.0
    np.testing.assert_allclose(r.command[:7], READY + 0.01)
    a.end_takeover()
    assert a.tick(0.3).hold_reason == "episode_over"
    a.start_episode(2)  # the next START ends the hold (episode_start then holds the new measured state)
    a.set_measured(arm=READY, hand=[0.2, 0.2])
    r = a.tick(0.4)
    assert r.hold_reason == "episode_start" and r.command is not None
