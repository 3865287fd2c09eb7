"""ALOE: chunked current-policy TD target, pessimistic ensemble, clipped weights, the 3-stage loop."""

import math

import pytest
import torch

from bora_trainer.algorithms.aloe.config import AloeConfig
from bora_trainer.algorithms.aloe.learner import AloeBatch, AloeLearner, EnsembleChunkQ, run_aloe_loop
from bora_trainer.algorithms.aloe.losses import aggregate_heads, aloe_weights, chunk_td_target
from bora_trainer.algorithms.losses import weighted_actor_loss
from bora_trainer.config_io import ConfigError, load_config

torch.set_num_threads(1)  # the CI machine is shared: avoid thread contention


def _t(x):
    return torch.tensor(x, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------- target


def test_td_target_terminal_inside_chunk():
    # h = 4, gamma = 0.5, rewards (1, 2, 3, 4), terminal at position 1, q_next = 100:
    # y = 1 + 0.5*2 = 2 (steps after the terminal and the bootstrap are masked)
    r = _t([[1, 2, 3, 4]] * 4)
    d = _t([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    q_next = _t([100.0, 8.0, 100.0, 8.0])
    y = chunk_td_target(r, d, q_next, gamma=0.5)
    # row 1, no terminal: 1 + 0.5*2 + 0.25*3 + 0.125*4 = 3.25, + 0.5^4 * 8 = 0.5 -> 3.75
    # row 2, terminal on the last step: 3.25, no bootstrap
    # row 3 like row 0 with q_next 8: still 2
    assert y.tolist() == pytest.approx([2.0, 3.75, 3.25, 2.0])
    # without the done mask (the v1 chunked form): 3.25 + 0.0625 * q_next
    y_nomask = chunk_td_target(r, d, q_next, gamma=0.5, done_mask=False)
    assert y_nomask.tolist() == pytest.approx([3.25 + 6.25, 3.75, 3.25 + 6.25, 3.75])


def test_td_target_chunk_cut_by_episode_end():
    # only 3 logged steps (pad 1,1,1,0), no terminal: 1 + 0.5*2 + 0.25*3 = 2.75, bootstrap 0.5^3 * 8 = 1
    r, d = _t([[1, 2, 3, 9]]), _t([[0, 0, 0, 0]])
    y = chunk_td_target(r, d, _t([8.0]), 0.5, pad_mask=_t([[1, 1, 1, 0]]))
    assert y.tolist() == pytest.approx([3.75])
    # no state after the chunk: the bootstrap is dropped -> 2.75
    y2 = chunk_td_target(r, d, _t([8.0]), 0.5, pad_mask=_t([[1, 1, 1, 0]]), next_valid=_t([0.0]))
    assert y2.tolist() == pytest.approx([2.75])
    with pytest.raises(ValueError, match="q_next"):
        chunk_td_target(r, d, _t([1.0, 2.0]), 0.5)


def test_min_over_heads():
    q = _t([[1.0, 5.0], [2.0, -1.0], [0.5, 3.0]])  # [N=3, B=2]
    assert aggregate_heads(q, "min").tolist() == [0.5, -1.0]
    assert aggregate_heads(q, "mean").tolist() == pytest.approx([3.5 / 3, 7.0 / 3])
    with pytest.raises(ValueError, match="mode"):
        aggregate_heads(q, "max")


def test_weight_clip():
    # beta = 0.5, eps = 1: A/beta = (-20, -1, 0, 0.5, 20) -> clip (-1, -1, 0, 0.5, 1)
    adv = _t([-10.0, -0.5, 0.0, 0.25, 10.0]).requires_grad_(True)
    w = aloe_weights(adv, beta=0.5, eps=1.0)
    assert not w.requires_grad  # detached
    assert w.tolist() == pytest.approx([math.exp(-1), math.exp(-1), 1.0, math.exp(0.5), math.e])
    # the explainer's reading clip(exp(A/beta), 0, e^eps): lower side not clipped (e^-20)
    w2 = aloe_weights(adv, beta=0.5, eps=1.0, form="clip_exp")
    assert w2.tolist() == pytest.approx([math.exp(-20), math.exp(-1), 1.0, math.exp(0.5), math.e])
    # the reviewer's worked example: beta = 1, clip = 1, A = (0, 4, 6) -> (1, e, e)
    assert aloe_weights(_t([0.0, 4.0, 6.0]), 1.0, 1.0).tolist() == pytest.approx([1.0, math.e, math.e])
    # Eq. 7: E[w l] = (1*2 + e*2 + e*2) / 3
    assert float(weighted_actor_loss(_t([2.0, 2.0, 2.0]), _t([1.0, math.e, math.e]))) == pytest.approx(
        (2 + 4 * math.e) / 3
    )


# ---------------------------------------------------------------------------------------------- learner

SMALL = dict(width=16, num_layers=1, num_attn_heads=2)


def _const_heads(net: EnsembleChunkQ, values):
    """Make head i output the constant values[i] (zero weights, bias = value)."""
    with torch.no_grad():
        for head, v in zip(net.heads, values, strict=True):
            head.weight.zero_()
            head.bias.fill_(v)


def test_learner_target_uses_min_of_target_heads_and_fresh_actor_sample():
    torch.manual_seed(0)
    cfg = AloeConfig(n_heads=3, gamma=0.9, **SMALL)
    lr = AloeLearner(cfg, z_dim=3, action_dim=2, chunk_len=4)
    _const_heads(lr.target, [3.0, -2.0, 7.0])
    _const_heads(lr.critic, [100.0, 100.0, 100.0])  # the online heads must not enter the target
    B = 2
    seen = []

    def sample_fn(z, proprio):
        seen.append(z.clone())
        return torch.zeros(z.shape[0], 4, 2)

    z, nz = torch.zeros(B, 3), torch.ones(B, 3)
    b = AloeBatch(
        z=z,
        actions=torch.zeros(B, 4, 2),
        rewards=torch.zeros(B, 4),
        dones=_t([[0, 0, 0, 0], [0, 0, 1, 0]]),
        next_z=nz,
    )
    y = lr.td_target(b, sample_fn)
    # row 0: 0 + 0.9^4 * min(3, -2, 7) = 0.6561 * -2 = -1.3122 ; row 1: terminal inside -> 0
    assert y.tolist() == pytest.approx([-1.3122, 0.0], abs=1e-5)
    # a' was sampled at s_{t+h} (next_z), not at s_t
    assert len(seen) == 1 and torch.equal(seen[0], nz)


def test_value_and_advantage_from_k_samples():
    torch.manual_seed(0)
    cfg = AloeConfig(n_heads=2, n_value_samples=3, **SMALL)
    lr = AloeLearner(cfg, z_dim=3, action_dim=2, chunk_len=4)
    z = torch.randn(5, 3)
    chunks = [torch.randn(5, 4, 2) for _ in range(3)]
    it = iter(chunks)
    v = lr.value(z, None, lambda z_, p_: next(it))
    with torch.no_grad():
        expected = torch.stack([lr.critic(z, c).min(0).values for c in chunks]).mean(0)
    assert torch.allclose(v, expected, atol=1e-6)
    # A = Q_pess(s, a_data) - V: with the data chunk equal to every sample, A = 0
    a_data = chunks[0]
    b = AloeBatch(z=z, actions=a_data, rewards=torch.zeros(5, 4), dones=torch.zeros(5, 4), next_z=z)
    adv = lr.advantage(b, lambda z_, p_: a_data)
    assert adv.abs().max() < 1e-5


def test_heads_are_independently_initialised():
    torch.manual_seed(0)
    net = EnsembleChunkQ(z_dim=3, action_dim=2, horizon=4, n_heads=4, **SMALL)
    q = net(torch.randn(8, 3), torch.randn(8, 4, 2))
    assert q.shape == (4, 8)
    # every pair of heads disagrees
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(q[i], q[j])
    with pytest.raises(ValueError, match="actions must be"):
        net(torch.randn(8, 3), torch.randn(8, 3, 2))


def test_config_yaml_and_errors():
    cfg = load_config(AloeConfig, "config/aloe.yaml")
    assert cfg.gamma == 0.99 and cfg.tau == 0.005 and cfg.weight_form == "exp_clip"
    with pytest.raises(ConfigError, match="beta"):
        load_config(AloeConfig, {"beta": "hot"})
    with pytest.raises(ValueError, match="weight_form"):
        AloeConfig(weight_form="softmax")
    with pytest.raises(ValueError, match="exceeds the chunk length"):
        AloeLearner(AloeConfig(horizon=8, **SMALL), z_dim=2, action_dim=2, chunk_len=4)


# ---------------------------------------------------------------------------------------------- learning


class LinearGaussianActor(torch.nn.Module):
    """A tiny chunk actor: mean = W z reshaped to [h, A], fixed std (the frozen-actor sampler)."""

    def __init__(self, z_dim, h, a_dim, std=0.3):
        super().__init__()
        self.lin = torch.nn.Linear(z_dim, h * a_dim)
        torch.nn.init.zeros_(self.lin.weight)
        torch.nn.init.zeros_(self.lin.bias)
        self.h, self.a, self.std = h, a_dim, std

    def mean(self, z):
        return self.lin(z).view(-1, self.h, self.a)

    @torch.no_grad()
    def sample(self, z, proprio=None):
        return self.mean(z) + self.std * torch.randn(z.shape[0], self.h, self.a)


def test_three_stage_loop_improves_actor():
    """Bandit-like chunks: reward r_i = -||a_i - a*(z)||^2 per step, terminal at the chunk end. The buffer
    holds random (bad) chunks, a few demos, and what the loop collects: actor rollouts where a failing
    chunk (return < -1) is replaced by a human takeover (a* + noise). ALOE must move the actor much
    closer to a* than plain BC on the same final buffer (which averages good and bad chunks)."""
    torch.manual_seed(0)
    Z, H, A = 3, 4, 2
    W_star = torch.randn(H * A, Z) * 0.5

    def a_star(z):
        return torch.tanh(z @ W_star.T).view(-1, H, A)

    def make(z, acts):
        r = -((acts - a_star(z)) ** 2).sum(-1)
        d = torch.zeros(len(z), H)
        d[:, -1] = 1.0
        return AloeBatch(z=z, actions=acts, rewards=r, dones=d, next_z=z)

    buf = []
    z0 = torch.randn(192, Z)
    buf.append(make(z0[:160], torch.randn(160, H, A)))  # old, poor behaviour
    buf.append(make(z0[160:], a_star(z0[160:]) + 0.05 * torch.randn(32, H, A)))  # demos

    actor = LinearGaussianActor(Z, H, A)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-2)

    def collect(i):
        z = torch.randn(64, Z)
        acts = actor.sample(z)
        ret = -((acts - a_star(z)) ** 2).sum((-1, -2))
        take = ret < -1.0  # the human takes over on failing chunks
        acts[take] = a_star(z[take]) + 0.05 * torch.randn(int(take.sum()), H, A)
        buf.append(make(z, acts))
        return 64

    def sample_batch():
        cat = AloeBatch(
            **{
                k: torch.cat([getattr(b, k) for b in buf])
                for k in ("z", "actions", "rewards", "dones", "next_z")
            }
        )
        idx = torch.randint(len(cat.z), (128,))
        return AloeBatch(**{k: getattr(cat, k)[idx] for k in ("z", "actions", "rewards", "dones", "next_z")})

    def actor_step(b, w):
        per_sample = ((actor.mean(b.z) - b.actions) ** 2).mean((-1, -2))
        loss = weighted_actor_loss(per_sample, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"actor_loss": float(loss.detach())}

    cfg = AloeConfig(
        n_heads=3,
        n_value_samples=4,
        beta=0.5,
        weight_clip=3.0,
        critic_lr=3e-3,
        critic_steps=100,
        actor_steps=80,
        iterations=3,
        width=32,
        num_layers=1,
        num_attn_heads=2,
    )
    learner = AloeLearner(cfg, z_dim=Z, action_dim=A, chunk_len=H)
    z_eval = torch.randn(256, Z)

    def err():
        with torch.no_grad():
            return float(((actor.mean(z_eval) - a_star(z_eval)) ** 2).mean())

    e0 = err()
    stats = run_aloe_loop(
        cfg,
        learner,
        collect=collect,
        sample_batch=sample_batch,
        sample_fn=actor.sample,
        actor_step=actor_step,
    )
    e_aloe = err()
    assert len(stats) == 3 and stats[-1].collected == 64
    assert stats[-1].critic["aloe/critic_loss"] < stats[0].critic["aloe/critic_loss"]
    # the critic ranks a good (a*) chunk above a random one on held-out states
    zt = torch.randn(64, Z)
    with torch.no_grad():
        q_good = learner.critic(zt, a_star(zt)).min(0).values
        q_bad = learner.critic(zt, torch.randn(64, H, A)).min(0).values
    assert float((q_good > q_bad).float().mean()) > 0.9

    # plain BC baseline on the same final buffer, same number of actor steps
    actor_bc = LinearGaussianActor(Z, H, A)
    opt_bc = torch.optim.Adam(actor_bc.parameters(), lr=3e-2)
    for _ in range(cfg.actor_steps * cfg.iterations):
        b = sample_batch()
        loss = ((actor_bc.mean(b.z) - b.actions) ** 2).mean()
        opt_bc.zero_grad()
        loss.backward()
        opt_bc.step()
    with torch.no_grad():
        e_bc = float(((actor_bc.mean(z_eval) - a_star(z_eval)) ** 2).mean())
    print(f"actor error: start {e0:.3f} ALOE {e_aloe:.3f} BC {e_bc:.3f}")
    assert e_aloe < 0.5 * e0
    assert e_aloe < 0.7 * e_bc, (e0, e_aloe, e_bc)
