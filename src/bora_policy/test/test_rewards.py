"""Intervention-driven rewards (Sec. 3.2, Algorithm 1 line 22) against hand-computed values."""

import numpy as np
import pytest

from bora_policy.common.rewards import (
    SIM_REWARD,
    RewardConfig,
    blend_takeover,
    compute_dones,
    compute_rewards,
    intervention_mask,
    interventions_from_mask,
    step_task_reward,
)

CFG = RewardConfig(
    success_reward=1.0, failure_reward=-0.5, time_penalty=0.01, intervention_penalty=-0.3, recovery_bonus=0.2
)


def test_two_takeovers_one_recovery_hand_computed():
    # T = 10, success. Takeover 1: steps 2,3,4 (end=5 exclusive), recovered -> bonus on step 4.
    # Takeover 2: steps 7,8 (end=9), not recovered.
    events = [{"start": 2, "end": 5, "recovered": True}, {"start": 7, "end": 9, "recovered": False}]
    r = compute_rewards(10, "success", events, CFG)
    expected = [-0.01, -0.01, -0.31, -0.01, 0.19, -0.01, -0.01, -0.31, -0.01, 0.99]
    np.testing.assert_allclose(r, expected, atol=1e-6)
    assert r.dtype == np.float32
    # the sum: 10 * -0.01 + 1.0 - 2 * 0.3 + 0.2
    assert r.sum() == pytest.approx(0.5, abs=1e-5)


def test_components_and_failure_and_explicit_recovery_step():
    events = [{"start": 1, "end": 6, "recovered": 3}, {"start": 7, "end": None, "recovered": False}]
    r, comps = compute_rewards(8, "failure", events, CFG, return_components=True)
    np.testing.assert_allclose(comps["int"], [0, -0.3, 0, 0, 0, 0, 0, -0.3], atol=1e-7)
    np.testing.assert_allclose(comps["rec"], [0, 0, 0, 0.2, 0, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(comps["env"], [-0.01] * 7 + [-0.51], atol=1e-7)
    np.testing.assert_allclose(r, comps["env"] + comps["int"] + comps["rec"], atol=1e-7)


def test_timeout_no_terminal_and_dones():
    r = compute_rewards(4, "timeout", [], CFG)
    np.testing.assert_allclose(r, [-0.01] * 4, atol=1e-7)
    assert compute_dones(4, "timeout").tolist() == [False] * 4
    assert compute_dones(4, "success").tolist() == [False, False, False, True]
    assert compute_dones(3, "failure").tolist() == [False, False, True]


def test_mask_round_trip():
    events = [{"start": 2, "end": 5, "recovered": True}, {"start": 7, "end": 9, "recovered": False}]
    m = intervention_mask(10, events)
    assert m.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 1, 0]
    assert interventions_from_mask(m, [True, False]) == events


def test_blend_takeover_algorithm1_line17():
    a_final = np.array([[1.0, 2.0], [1.0, 2.0]], np.float32)
    a_human = np.array([[3.0, 0.0], [3.0, 0.0]], np.float32)
    out = blend_takeover(a_final, a_human, np.array([0.25, 1.0]))
    np.testing.assert_allclose(out, [[1.5, 1.5], [3.0, 0.0]])


@pytest.mark.parametrize(
    "events, match",
    [
        ([{"start": 5, "end": 3}], "end"),
        ([{"start": 12, "end": 13}], "start"),
        ([{"end": 3}], "start"),
        ([{"start": 1, "end": 3, "recovered": 7}], "recovered"),
    ],
)
def test_bad_events_name_the_field(events, match):
    with pytest.raises(ValueError, match=match):
        compute_rewards(10, "success", events, CFG)


def test_bad_config_and_outcome():
    with pytest.raises(ValueError, match="intervention_penalty"):
        RewardConfig(intervention_penalty=0.5)
    with pytest.raises(ValueError, match="outcome"):
        compute_rewards(3, "won", [], CFG)


def test_sim_step_reward_hand_computed():
    # the simulator's online reward: -0.01 per step, +1.0 on the terminating (success) step
    assert step_task_reward(SIM_REWARD, False) == pytest.approx(-0.01)
    assert step_task_reward(SIM_REWARD, True) == pytest.approx(0.99)
    assert step_task_reward(RewardConfig(), True) == pytest.approx(0.998)
