"""OnlineConfig.precision 'auto' follows the machine probe (bf16 only with native bf16 on a CPU) or BORA_PRECISION."""

from __future__ import annotations

import torch

from bora_policy.models.critic import ChunkCritic
from bora_policy.runtime.cpu_probe import has_native_bf16
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.online_learner import OnlineLearner


def _learner(**kw):
    critic = ChunkCritic(z_dim=8, action_dim=3, chunk_size=4, hidden_dim=16, pos_dim=4)
    return OnlineLearner(critic, 3, 3, 4, 8, OnlineConfig(batch_size=4, **kw), normalizer_version="v", device="cpu")


def test_auto_uses_native_bf16_only(monkeypatch):
    monkeypatch.delenv("BORA_PRECISION", raising=False)
    assert _learner().use_bf16 is has_native_bf16()  # this CPU's flags decide
    monkeypatch.setenv("BORA_PRECISION", "bf16")
    lb = _learner()
    assert lb.use_bf16 and lb.autocast().fast_dtype == torch.bfloat16
    monkeypatch.setenv("BORA_PRECISION", "fp32")
    assert _learner().use_bf16 is False
    assert _learner(precision="bf16").use_bf16 is True  # an explicit choice is kept
