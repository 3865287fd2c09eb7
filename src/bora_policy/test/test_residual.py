"""Residual chunk actor, alpha schedule and multi-round folding (Algorithm 1 lines 8-15)."""

import copy

import pytest
import torch

from bora_policy.models.residual import (
    FrozenResidual,
    ResidualChunkActor,
    ResidualConfig,
    ResidualPolicy,
    alpha_schedule,
)

S, A, K, Z = 5, 4, 6, 8


def _actor(seed, max_res=0.5):
    torch.manual_seed(seed)
    a = ResidualChunkActor(
        S, A, K, Z, ResidualConfig(hidden_dims=[32, 32], max_residual=max_res, init_scale=0.5)
    )
    return a


def _inputs(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Z, generator=g), torch.randn(B, S, generator=g), torch.randn(B, K, A, generator=g))


def test_alpha_schedule_values():
    assert alpha_schedule(0) == pytest.approx(0.2)
    assert alpha_schedule(2000) == pytest.approx(0.475)
    assert alpha_schedule(4000) == pytest.approx(0.75)
    assert alpha_schedule(8000) == pytest.approx(0.75)
    assert alpha_schedule(5, warmup=0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="step"):
        alpha_schedule(-1)


def test_actor_bounded_and_shape_checks():
    a = _actor(0, max_res=0.3)
    with torch.no_grad():
        a.head.weight.mul_(1e3)  # saturate tanh
    z, p, v = _inputs(B=7)
    out = a(p, v, z)
    assert out.shape == (7, K, A)
    assert out.abs().max() <= 0.3 + 1e-6 and out.abs().max() > 0.29
    with pytest.raises(ValueError, match="proprio"):
        a(p[:, :2], v, z)
    with pytest.raises(ValueError, match="base chunk"):
        a(p, v[:, :2], z)


def test_default_actor_starts_near_base():
    a = ResidualChunkActor(S, A, K, Z)  # default init_scale 1e-3
    z, p, v = _inputs()
    assert a(p, v, z).abs().max() < 0.1


def test_round1_compose_and_physical_mapping():
    mean, std = torch.linspace(-1, 1, A), torch.linspace(0.5, 2.0, A)
    cur = _actor(1)
    pol = ResidualPolicy(mean, std, current=cur)
    z, p, v = _inputs()
    out = pol.compose(z, p, v, alpha=0.2)
    res = cur(p, v, z)
    torch.testing.assert_close(out.base_norm, v)  # round 1: pure VLA (line 9)
    torch.testing.assert_close(out.final_norm, v + 0.2 * res)
    torch.testing.assert_close(out.final_physical, (v + 0.2 * res) * std + mean)  # line 15


def test_round2_base_contains_round1_residual():
    mean, std = torch.zeros(A), torch.ones(A)
    old = _actor(1)
    old_copy = copy.deepcopy(old)
    pol1 = ResidualPolicy(mean, std, current=old)
    new = _actor(2)
    pol2 = pol1.next_round(new, lam_current=0.6)
    z, p, v = _inputs()
    out = pol2.compose(z, p, v, alpha=0.3)
    with torch.no_grad():
        expected_base = v + 0.6 * old_copy(p, v, z)  # line 11: A_VLA + lambda_old * pi_old(s, A_VLA, z)
        expected_final = expected_base + 0.3 * new(p, expected_base, z)  # line 13: pi_res sees the new base
    torch.testing.assert_close(out.base_norm, expected_base)
    torch.testing.assert_close(out.final_norm, expected_final)
    assert (out.base_norm - v).abs().max() > 1e-3  # the fold is not a no-op
    # round 3 folds in order: B3 = B2 + lam2 * pi2(s, B2, z)
    pol3 = pol2.next_round(_actor(3), lam_current=0.75)
    with torch.no_grad():
        b3 = expected_base + 0.75 * new(p, expected_base, z)
    torch.testing.assert_close(pol3.base_chunk(z, p, v), b3)
    assert pol3.round == 3


def test_frozen_residuals_get_no_gradient():
    old, cur = _actor(1), _actor(2)
    pol = ResidualPolicy(torch.zeros(A), torch.ones(A), [FrozenResidual(old, 0.5)], cur)
    z, p, v = _inputs()
    pol.compose(z, p, v, alpha=0.5).final_norm.sum().backward()
    assert all(q.grad is None for q in old.parameters())
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in cur.parameters())


def test_from_normalizer_matches_denormalize_action():
    import numpy as np

    from bora_policy.models.normalizer import Normalizer

    rng = np.random.default_rng(0)
    norm = Normalizer.fit(rng.normal(size=(50, S)), rng.normal(3.0, 2.0, size=(50, A)))
    pol = ResidualPolicy.from_normalizer(norm, current=_actor(4))
    z, p, v = _inputs()
    out = pol.compose(z, p, v, alpha=0.4)
    torch.testing.assert_close(out.final_physical, norm.denormalize_action(out.final_norm))
    assert pol.normalizer_version == norm.version
