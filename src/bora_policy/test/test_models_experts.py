"""Action experts: shapes, boundary condition, Gaussian log-density, overfitting a tiny dataset."""

import math

import numpy as np
import pytest
import torch

from bora_policy.models.action_expert import (
    ConsistencyActionExpert,
    ConsistencyConfig,
    build_expert,
)

torch.set_num_threads(1)
K, A, Z, S = 32, 27, 24, 6
SMALL = dict(action_dim=A, z_dim=Z, state_dim=S, chunk_size=K, hidden_dim=128, num_blocks=2, cond_dim=64)


def _batch(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, K).view(1, K, 1)
    acts = (torch.randn(B, 1, A, generator=g) + torch.randn(B, 1, A, generator=g) * t).clamp(-2, 2)
    return torch.randn(B, Z, generator=g), torch.randn(B, S, generator=g), acts


@pytest.mark.parametrize("n", [1, 2, 3])
def test_consistency_sampling_shapes(n):
    ex = build_expert("consistency", **SMALL)
    z, p, _ = _batch()
    out = ex.sample(z, p, n, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, K, A) and torch.isfinite(out).all()
    again = ex.sample(z, p, n, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)  # the generator fixes the noise
    assert ex.mean_chunk(z, p, n).shape == (4, K, A)
    with pytest.raises(ValueError, match="num_steps"):
        ex.sample(z, p, 4)


@pytest.mark.parametrize("n", [10, 100])
def test_diffusion_sampling_shapes(n):
    ex = build_expert("diffusion", **SMALL)
    z, p, _ = _batch()
    assert ex.sample(z, p, n).shape == (4, K, A)


def test_boundary_condition_and_preconditioning_values():
    ex = ConsistencyActionExpert(ConsistencyConfig(**SMALL))
    z, p, a = _batch()
    cond = ex._cond(z, p)
    # f(x, sigma_min) = x exactly (c_skip = 1, c_out = 0)
    torch.testing.assert_close(ex.consistency_fn(a, torch.full((4,), 0.002), cond), a)
    s = torch.tensor(1.0)
    assert float(ex.c_skip(s)) == pytest.approx(0.25 / (0.998**2 + 0.25))
    assert float(ex.c_out(s)) == pytest.approx(0.5 * 0.998 / math.sqrt(1.25))
    assert float(ex.c_in(s)) == pytest.approx(1 / math.sqrt(1.25))
    assert ex.num_scales(0) == 11 and ex.num_scales(10**9) == 1281


@pytest.mark.parametrize("kind", ["consistency", "diffusion"])
def test_log_prob_is_closed_form_gaussian(kind):
    ex = build_expert(kind, **SMALL)
    with torch.no_grad():
        ex.log_std.copy_(torch.linspace(-6.0, 2.0, A))  # beyond both clamps [-5, 1]
    z, p, a = _batch()
    lp = ex.log_prob(z, p, a)
    assert lp.shape == (4, K)
    mu = ex.mean_chunk(z, p).detach().numpy().astype(np.float64)
    ls = np.clip(np.linspace(-6.0, 2.0, A), -5.0, 1.0)
    x = a.numpy().astype(np.float64)
    expect = (-0.5 * ((x - mu) / np.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(lp.detach().numpy(), expect, rtol=1e-5, atol=1e-3)
    # a step at the mean has the maximal density
    at_mean = ex.log_prob(z, p, torch.from_numpy(mu).float())
    assert (at_mean >= lp).all()


def test_mean_chunk_gradients_reach_parameters_and_z():
    ex = build_expert("consistency", **SMALL)
    z, p, a = _batch()
    z.requires_grad_(True)
    ex.log_prob(z, p, a, num_steps=2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert ex.log_std.grad.abs().sum() > 0
    assert ex.net.inp.weight.grad.abs().sum() > 0


def test_bc_loss_mask_and_errors():
    ex = build_expert("diffusion", **SMALL)
    z, p, a = _batch()
    torch.manual_seed(3)
    l1 = ex.bc_loss(z, p, a)
    torch.manual_seed(3)
    l2 = ex.bc_loss(z, p, a, torch.ones(4, K))
    torch.testing.assert_close(l1, l2)
    with pytest.raises(ValueError, match=r"mask must be \[B, k\]"):
        ex.bc_loss(z, p, a, torch.ones(4, K - 1))
    with pytest.raises(ValueError, match=r"actions must be \[B, k, A\]"):
        ex.bc_loss(z, p, a[:, :, :5])
    with pytest.raises(ValueError, match="proprio"):
        ex.bc_loss(z, None, a)


@pytest.mark.parametrize("kind,steps", [("consistency", 200), ("diffusion", 150)])
def test_tiny_expert_overfits_tiny_dataset(kind, steps):
    torch.manual_seed(0)
    extra = {"ct_total_steps": steps} if kind == "consistency" else {}
    ex = build_expert(kind, **{**SMALL, "hidden_dim": 192}, **extra)
    z, p, a = _batch(B=6)
    opt = torch.optim.AdamW(ex.parameters(), lr=1e-3)
    with torch.no_grad():
        err0 = (ex.mean_chunk(z, p) - a).pow(2).mean().item()
    losses = []
    for _ in range(steps):
        loss = ex.bc_loss(z, p, a)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.35 * first, (first, last)
    ex.eval()
    with torch.no_grad():
        for n in [1, 2, 3] if kind == "consistency" else [10]:
            err = (ex.sample(z, p, n, generator=torch.Generator().manual_seed(1)) - a).pow(2).mean().item()
            assert err < 0.15 * err0, (n, err, err0)
        assert (ex.mean_chunk(z, p) - a).pow(2).mean().item() < 0.05 * err0


@pytest.mark.parametrize("kind", ["consistency", "diffusion"])
def test_bc_loss_is_the_masked_mean_of_the_per_step_loss_and_a_generator_fixes_its_noise(kind):
    ex = build_expert(kind, **SMALL).train()
    z, p, a = _batch()
    mask = torch.ones(4, K)
    mask[1, K // 2 :] = 0  # a chunk cut by the episode's end
    step0 = int(getattr(ex, "ct_step", 0))
    torch.manual_seed(5)
    loss = ex.bc_loss(z, p, a, mask)
    torch.manual_seed(5)  # the same global noise: per step, then 1/|M_t| sum_i m_i x_i, then the batch mean
    per = ex.bc_loss_per_step(z, p, a)
    assert per.shape == (4, K)
    by_hand = torch.stack([per[b][mask[b] > 0].mean() for b in range(4)]).mean()
    torch.testing.assert_close(loss, by_hand)
    if kind == "consistency":  # the curriculum counts bc_loss calls, not per-step evaluations
        assert int(ex.ct_step) == step0 + 1
    one = ex.bc_loss_per_step(z, p, a, generator=torch.Generator().manual_seed(3))
    two = ex.bc_loss_per_step(z, p, a, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(one, two)  # FPO's shared noise: the same draw for two evaluations
    assert not torch.equal(one, ex.bc_loss_per_step(z, p, a, generator=torch.Generator().manual_seed(4)))
