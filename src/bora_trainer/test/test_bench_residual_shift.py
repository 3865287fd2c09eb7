"""bench/residual_shift.py: the composite's shift from the VLA chunk, on residuals whose output is known in closed
form (zero head weights: A_res = tanh(bias) * max_residual whatever the input), and the replay rows it reads."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.models.residual import FrozenResidual, ResidualChunkActor, ResidualConfig, ResidualPolicy

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

import residual_shift as rs  # noqa: E402

S, A, K, Z = 3, 2, 4, 5


def constant_actor(bias: list[float], max_residual: float = 0.5) -> ResidualChunkActor:
    actor = ResidualChunkActor(S, A, K, Z, ResidualConfig(hidden_dims=[8], max_residual=max_residual))
    with torch.no_grad():
        actor.head.weight.zero_()
        actor.head.bias.copy_(torch.tensor(bias * K))  # the same value at every chunk step
    return actor


def test_constant_residuals_hand_computed():
    """Frozen residual (lambda 0.5) outputs 0.5 tanh(0.2), 0.5 tanh(-0.4); the current one at alpha 0.75 outputs
    0.5 tanh(1.0), 0.5 tanh(0.0): the shift is the same at every row and step, so std 0 and bias share 1."""
    pol = ResidualPolicy(torch.zeros(A), torch.tensor([2.0, 0.1]), [FrozenResidual(constant_actor([0.2, -0.4]), 0.5)],
                         constant_actor([1.0, 0.0]))
    g = torch.Generator().manual_seed(0)
    prop, vla, z = torch.randn(7, S, generator=g), torch.randn(7, K, A, generator=g), torch.randn(7, Z, generator=g)
    s = rs.shift_stats(pol, 0.75, prop, vla, z)
    expected = [0.5 * 0.5 * math.tanh(0.2) + 0.75 * 0.5 * math.tanh(1.0), 0.5 * 0.5 * math.tanh(-0.4)]
    assert s["rows"] == 7
    assert s["mean"] == pytest.approx(expected, abs=1e-6)
    assert s["std"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert s["mean_phys"] == pytest.approx([2.0 * expected[0], 0.1 * expected[1]], abs=1e-6)
    assert s["std_phys"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert s["bias_share"] == pytest.approx(1.0, abs=1e-6)


def test_no_residual_no_shift():
    pol = ResidualPolicy(torch.zeros(A), torch.ones(A))
    s = rs.shift_stats(pol, 0.75, torch.zeros(3, S), torch.randn(3, K, A), torch.zeros(3, Z))
    assert s["mean"] == pytest.approx([0.0, 0.0]) and s["bias_share"] == 0.0


def test_load_rows_concatenates_shards(tmp_path):
    d = tmp_path / "replay" / "online"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = [{"proprio": rng.normal(size=(n, S)), "vla": rng.normal(size=(n, K, A)), "z": rng.normal(size=(n, Z)),
              "reward": np.zeros((n, K))} for n in (2, 3)]
    for i, p in enumerate(parts):
        np.savez(d / f"shard_{i:06d}.npz", **p)
    prop, vla, z = rs.load_rows(tmp_path)
    assert vla.shape == (5, K, A)
    np.testing.assert_allclose(z.numpy(), np.concatenate([p["z"] for p in parts]), rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="not an online run directory"):
        rs.load_rows(tmp_path / "nothing")


def test_demo_stats_over_valid_steps_hand_computed():
    """What BC asks: demonstration - A_VLA over the valid steps only (the masked step's 100 is left out)."""
    action = np.array([[[1.0], [3.0]], [[6.0], [100.0]]])
    vla = np.array([[[0.0], [0.0]], [[1.0], [0.0]]])
    mask = np.array([[1, 1], [1, 0]])
    s = rs.demo_stats(action, vla, mask, [0.5])
    assert s["rows"] == 2
    assert s["mean"] == pytest.approx([3.0]) and s["std"] == pytest.approx([math.sqrt(8 / 3)])
    assert s["mean_phys"] == pytest.approx([1.5]) and s["bias_share"] == pytest.approx(9 / (35 / 3))
