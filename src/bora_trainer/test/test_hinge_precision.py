"""``OnlineConfig.hinge_precision``: the conservative-improvement hinge's Q evaluations in fp32 under a bf16
learner. Expectation computed independently: the same critic's fp32 forward on the same inputs."""

from __future__ import annotations

import pytest
import torch

from bora_policy.models.critic import ChunkCritic
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.bora.online import BoraResidualObjective
from bora_trainer.algorithms.online_learner import OnlineLearner

torch.set_num_threads(1)


def _case(hinge_precision: str):
    torch.manual_seed(0)
    critic = ChunkCritic(z_dim=8, action_dim=3, chunk_size=4, hidden_dim=32, pos_dim=4)
    cfg = OnlineConfig(batch_size=4, precision="bf16", hinge_precision=hinge_precision)
    learner = OnlineLearner(critic, 3, 3, 4, 8, cfg, normalizer_version="v", device="cpu")
    obj = BoraResidualObjective(learner)
    g = torch.Generator().manual_seed(1)
    b = {"z": torch.randn(6, 8, generator=g), "mask": torch.ones(6, 4)}
    base = torch.randn(6, 4, 3, generator=g)
    a_hat = base + 0.01 * torch.randn(6, 4, 3, generator=g)
    return critic, obj, b, base, a_hat


def test_fp32_hinge_matches_the_fp32_critic():
    critic, obj, b, base, a_hat = _case("fp32")
    _, q_base, q_hat = obj.hinge(b, base, a_hat)
    with torch.no_grad():
        assert torch.equal(q_base, critic.q(b["z"], base).float())
        assert torch.allclose(q_hat, critic.q(b["z"], a_hat).float(), atol=0, rtol=0)


def test_auto_hinge_under_bf16_is_rounded():
    critic, obj, b, base, a_hat = _case("auto")
    _, q_base, q_hat = obj.hinge(b, base, a_hat)
    with torch.no_grad():
        exact = critic.q(b["z"], a_hat).float()
    assert not torch.equal(q_hat, exact)  # bf16 autocast rounds the Q values
    assert (q_hat - exact).abs().max() < 0.05


def test_bad_choice_is_named():
    with pytest.raises(ValueError, match="hinge_precision"):
        OnlineConfig(hinge_precision="bf16")
