"""Takeover blending: beta ramps linearly both ways; A_exec is the convex combination; events."""

from __future__ import annotations

import numpy as np
import pytest

from bora_teleop.blend import END, RECOVERED, START, BlendConfig, TakeoverBlender, blend


def test_beta_ramps_linearly_up_and_down():
    b = TakeoverBlender(BlendConfig(ramp_time_s=0.5))
    assert b.update(0.0).beta == 0.0
    b.request(True, 0.05)  # request dated between ticks
    ts = np.arange(0.1, 0.8, 0.1)
    betas = [b.update(t).beta for t in ts]
    expected = np.clip((ts - 0.05) / 0.5, 0, 1)  # 0.1, 0.3, 0.5, 0.7, 0.9, 1, 1
    np.testing.assert_allclose(betas, expected, atol=1e-12)
    b.request(False, 1.0)
    ts2 = np.array([1.1, 1.2, 1.45, 1.6])
    np.testing.assert_allclose(
        [b.update(t).beta for t in ts2], np.clip(1 - (ts2 - 1.0) / 0.5, 0, 1), atol=1e-12
    )


def test_reversal_mid_ramp_is_continuous():
    b = TakeoverBlender(BlendConfig(ramp_time_s=1.0))
    b.update(0.0)
    b.request(True, 0.0)
    assert b.update(0.4).beta == pytest.approx(0.4)
    b.request(False, 0.5)  # beta 0.5 at the release
    assert b.update(0.7).beta == pytest.approx(0.3)
    assert b.update(2.0).beta == 0.0


def test_hard_switch_when_ramp_time_is_zero():
    b = TakeoverBlender(BlendConfig(ramp_time_s=0.0))
    b.update(0.0)
    b.request(True, 0.01)
    assert b.update(0.02).beta == 1.0
    b.request(False, 0.03)
    assert b.update(0.04).beta == 0.0


def test_events_start_recovered_end_and_is_intervention():
    b = TakeoverBlender(BlendConfig(ramp_time_s=0.2))
    assert b.update(0.0).events == [] and not b.is_intervention
    assert b.mark_recovered()[0] is False  # no takeover: ignored
    b.request(True, 0.0)
    s = b.update(0.1)
    assert s.events == [START] and s.is_intervention and s.beta == pytest.approx(0.5)
    assert b.mark_recovered()[0] is True
    assert b.mark_recovered()[0] is False  # once per takeover
    assert b.update(0.2).events == [RECOVERED]
    b.request(False, 0.3)
    s = b.update(0.4)
    assert s.is_intervention and s.events == [] and s.beta == pytest.approx(0.5)  # ramping down still counts
    s = b.update(0.5)
    assert s.events == [END] and not s.is_intervention and s.beta == 0.0
    b.request(True, 0.6)  # a second takeover can recover again
    assert b.update(0.7).events == [START]
    assert b.mark_recovered()[0] is True


def test_release_on_recovered_option():
    b = TakeoverBlender(BlendConfig(ramp_time_s=0.2, release_on_recovered=True))
    b.update(0.0)
    b.request(True, 0.0)
    b.update(0.2)
    b.mark_recovered()
    assert b.update(0.3).events == [RECOVERED] and not b.requested
    assert b.update(0.4).beta == pytest.approx(0.5)


def test_blend_is_the_convex_combination():
    a_f, a_h = np.array([0.0, 1.0, -2.0]), np.array([1.0, 3.0, 2.0])
    np.testing.assert_allclose(blend(a_f, a_h, 0.25), [0.25, 1.5, -1.0])
    np.testing.assert_array_equal(blend(a_f, None, 0.0), a_f)
    np.testing.assert_array_equal(blend(None, a_h, 1.0), a_h)
    with pytest.raises(ValueError, match="needs both"):
        blend(None, a_h, 0.5)
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\]"):
        blend(a_f, a_h, 1.5)
    with pytest.raises(ValueError, match="ramp_time_s"):
        BlendConfig(ramp_time_s=-1)


def test_recovered_and_release_in_the_same_tick_are_both_reported():
    """The sim operator sends /bora/recovered and /bora/takeover false at the same hand-back tick."""
    for ramp in (0.0, 0.3):
        b = TakeoverBlender(BlendConfig(ramp_time_s=ramp))
        b.update(0.0)
        b.request(True, 0.0)
        b.update(0.5)
        b.request(False, 0.55)
        assert b.mark_recovered()[0] is True
        s = b.update(0.6)
        assert RECOVERED in s.events
        if ramp == 0.0:
            assert s.events == [RECOVERED, END]


def test_end_now_closes_a_takeover_at_an_episode_boundary():
    b = TakeoverBlender(BlendConfig(ramp_time_s=0.5))
    b.update(0.0)
    assert b.end_now() == []  # nothing to close
    b.request(True, 0.0)
    assert b.update(0.2).events == [START]
    # the episode ends in FAILURE mid-ramp: END at once, beta 0, no RECOVERED
    assert b.end_now() == [END]
    assert b.beta == 0.0 and not b.requested and not b.is_intervention
    assert b.update(0.3).events == [] and b.update(0.3).beta == 0.0  # nothing more to report
    # a takeover ending in SUCCESS: the correction completed the task -> RECOVERED, then END
    b.request(True, 1.0)
    assert b.update(1.1).events == [START]
    assert b.end_now(success=True) == [RECOVERED, END]
    # RECOVERED already reported for this takeover: not twice; an accepted, unreported one is owed
    b.request(True, 2.0)
    b.update(2.1)
    assert b.mark_recovered()[0]
    assert b.update(2.2).events == [RECOVERED]
    assert b.end_now(success=True) == [END]
    b.request(True, 3.0)
    b.update(3.1)
    b.mark_recovered()
    assert b.end_now() == [RECOVERED, END]
    # a request no tick has seen yet never started: dropped without events
    b.request(True, 4.0)
    assert b.end_now() == [] and not b.requested
