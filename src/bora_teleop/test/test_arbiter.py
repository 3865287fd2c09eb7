"""The arbiter tick (blend -> safety) without ROS: watchdog, takeover blend, human staleness, events."""

from __future__ import annotations

import numpy as np
import pytest

from bora_teleop.arbiter import Arbiter, ArbiterConfig
from bora_teleop.blend import BlendConfig
from bora_teleop.events import InterventionRewards
from bora_teleop.glove import GloveSample
from bora_teleop.retarget import RetargetMap
from bora_teleop.safety import SafetyConfig

ARM = [f"j{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def make(ramp=0.5, **kw) -> Arbiter:
    rmap = RetargetMap(["h0", "h1"], ["f0", "f1"], np.diag([0.5, 1.0]), [0.0, 0.1], [0.0, 0.0], [1.5, 1.5])
    cfg = ArbiterConfig(
        control_hz=10.0,
        watchdog_timeout_s=0.2,
        human_timeout_s=0.2,
        blend=BlendConfig(ramp),
        safety=SafetyConfig(arm_max_velocity=10.0, hand_max_velocity=10.0),
        rewards=InterventionRewards(-0.5, 0.25),
        **kw,
    )
    a = Arbiter(cfg, ARM, rmap)
    a.set_measured(arm=READY, hand=[0.2, 0.2])
    return a


def test_watchdog_holds_on_stale_or_missing_policy():
    a = make()
    r = a.tick(0.0)
    assert r.held and r.hold_reason == "no_command"
    np.testing.assert_allclose(r.command, np.r_[READY, 0.2, 0.2])  # hold = measured
    cmd = np.r_[READY + 0.01, 0.3, 0.4]
    a.set_policy(cmd, 0.05, episode_id=3, step=11)
    r = a.tick(0.1)
    assert not r.held and r.episode_id == 3 and r.step == 11
    np.testing.assert_allclose(r.command, cmd)
    r = a.tick(0.26)  # 0.21 s old > 0.2 s
    assert r.held and r.hold_reason == "stale" and "s old" in r.error
    np.testing.assert_allclose(r.command, cmd)  # hold = last safe command
    assert r.step == 12  # step advances per tick


def test_takeover_blends_and_emits_rewarded_events():
    a = make(ramp=0.5)
    a_final = np.r_[READY, 0.2, 0.2]
    arm_h = READY + np.array([0.1, -0.1, 0.05, 0.1, 0.0, -0.1, 0.2])
    glove = np.array([1.0, 0.5])
    a_human = np.r_[arm_h, 0.5 * 1.0 + 0.0, 1.0 * 0.5 + 0.1]  # retarget by hand: [0.5, 0.6]
    a.tick(0.0)
    a.blender.request(True, 0.0)
    betas, events = [], []
    for k in range(1, 8):
        t = 0.1 * k
        a.set_policy(a_final, t - 0.01)
        a.set_arm_target(arm_h, t - 0.01)
        a.set_glove(GloveSample(glove, k, t, t - 0.01))
        r = a.tick(t)
        betas.append(r.beta)
        events += r.events
        assert r.is_intervention and not r.held
        np.testing.assert_allclose(r.command, (1 - r.beta) * a_final + r.beta * a_human, atol=1e-12)
    np.testing.assert_allclose(betas, np.clip(0.1 * np.arange(1, 8) / 0.5, 0, 1), atol=1e-12)
    assert events == [("START", -0.5)]
    a.blender.mark_recovered()
    a.set_glove(GloveSample(glove, 9, 0.8, 0.79))
    a.set_arm_target(arm_h, 0.79)
    r = a.tick(0.8)
    assert r.events == [("RECOVERED", 0.25)]
    # glove goes silent during the takeover: hold, reason human_stale
    r = a.tick(1.1)
    assert r.held and r.hold_reason == "human_stale" and "glove" in r.error


def test_full_human_control_ignores_a_dead_policy_and_nan_policy_holds():
    a = make(ramp=0.0)
    a.set_policy(np.r_[READY, 0.2, 0.2], 0.0)
    a.tick(0.0)
    a.blender.request(True, 0.0)
    a.set_arm_target(READY, 0.95)
    a.set_glove(GloveSample(np.array([0.2, 0.2]), 1, 0, 0.95))
    r = a.tick(1.0)  # the policy is 1 s old, but beta = 1
    assert r.beta == 1.0 and not r.held
    a.blender.request(False, 1.0)
    bad = np.r_[READY, 0.2, 0.2]
    bad[2] = np.nan
    a.set_policy(bad, 1.05)
    r = a.tick(1.1)
    assert r.held and r.hold_reason == "nan" and r.events == [("END", 0.0)]
    assert np.all(np.isfinite(r.command))


def test_bad_policy_command_shape_is_a_hold_with_a_clear_error():
    a = make()
    a.set_policy(np.zeros(5), 0.0)
    r = a.tick(0.05)
    assert r.held and r.hold_reason == "bad_command" and "expected 9" in r.error


def test_hand_only_takeover_uses_the_policy_arm():
    a = make(ramp=0.0, require_arm_target=False)
    a_final = np.r_[READY, 0.2, 0.2]
    a.set_policy(a_final, 0.0)
    a.tick(0.0)
    a.blender.request(True, 0.0)
    a.set_glove(GloveSample(np.array([2.0, 0.0]), 1, 0, 0.05))
    r = a.tick(0.1)
    np.testing.assert_allclose(r.command, np.r_[READY, 1.0, 0.1])
    with pytest.raises(ValueError, match="watchdog_timeout_s"):
        ArbiterConfig(control_hz=10.0, watchdog_timeout_s=0)


def test_ramp_down_blends_out_the_last_human_command_when_the_glove_stops():
    a = make(ramp=0.4)
    a_final = np.r_[READY, 0.2, 0.2]
    arm_h = READY + 0.1
    a.set_policy(a_final, 0.0)
    a.tick(0.0)
    a.blender.request(True, 0.0)
    for k in range(1, 6):
        t = 0.1 * k
        a.set_policy(a_final, t)
        a.set_arm_target(arm_h, t)
        a.set_glove(GloveSample(np.array([1.0, 0.5]), k, t, t))
        r = a.tick(t)
    a_human = np.r_[arm_h, 0.5, 0.6]
    assert r.beta == 1.0
    a.blender.request(False, 0.5)  # released; glove and arm target stop
    for k in range(6, 12):
        t = 0.1 * k
        a.set_policy(a_final, t)
        r = a.tick(t)
        assert not r.held, r.error
        np.testing.assert_allclose(r.command, (1 - r.beta) * a_final + r.beta * a_human, atol=1e-12)
    assert r.beta == 0.0 and not r.is_intervention
