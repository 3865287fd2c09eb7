"""Exploration noise in the online episodes (``OnlineRunConfig.explore_std``, env sim).

The tiny frozen VLA of conftest drives press_button on the real simulated robot without the operator, alpha
0.5, chunks of k = 8 executed whole. Expectations by hand: the first chunk is planned from the same reset
observation with and without noise, so its executed policy actions differ by exactly
``alpha * eps * action_std`` with eps drawn from ``default_rng(seed + 7919).normal(0, explore_std, (k, A))``;
without noise two episodes of one seed are identical.
"""

from __future__ import annotations

import numpy as np
import pytest

from bora_trainer.config_io import load_config
from bora_trainer.online.config import OnlineRunConfig

SEED, ALPHA, K = 5, 0.5, 8


def _policy_actions(vla, explore_std: float) -> np.ndarray:
    from bora_policy.models.residual import ResidualPolicy
    from bora_sim.env import make_env
    from bora_trainer.online.env_sim import rollout

    env = make_env("press_button", control_hz=10.0, image_size=48, time_limit_s=2.0)
    try:
        pol = ResidualPolicy.from_normalizer(vla.normalizer)
        ep = rollout(env, vla, pol, ALPHA, K, seed=SEED, use_operator=False, explore_std=explore_std)
        return ep["arrays"]["policy_action"], pol.action_std.numpy()
    finally:
        env.close()


def test_noise_on_the_planned_chunk_is_alpha_times_the_seeded_draw(frozen_vla):
    clean, std = _policy_actions(frozen_vla, 0.0)
    again, _ = _policy_actions(frozen_vla, 0.0)
    noisy, _ = _policy_actions(frozen_vla, 0.5)
    assert np.array_equal(clean, again)
    eps = np.random.default_rng(SEED + 7919).normal(0.0, 0.5, size=clean[:K].shape)
    np.testing.assert_allclose(noisy[:K] - clean[:K], ALPHA * eps * std, rtol=1e-5, atol=1e-6)
    assert not np.allclose(noisy[K:2 * K], clean[K:2 * K])  # later chunks: new draws (and new states)


@pytest.mark.parametrize("bad", [-0.1, 11.0])
def test_explore_std_out_of_range_is_one_clear_error(bad):
    with pytest.raises(ValueError, match=r"OnlineRunConfig.explore_std must be in \[0, 10\]"):
        load_config(OnlineRunConfig, {"task": "press_button", "explore_std": bad})
