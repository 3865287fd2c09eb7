"""Chunk critics: k-vector shapes, position dependence, per-step action locality, targets, Polyak."""

import pytest
import torch

from bora_policy.models.critic import ChunkCritic, DecoupledChunkCritic, soft_update

torch.set_num_threads(1)
B, K, A, Z = 5, 32, 27, 48


def _za(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, Z, generator=g), torch.randn(B, K, A, generator=g)


def test_shapes_and_twin_min():
    c = ChunkCritic(Z, A, K, hidden_dim=64)
    z, a = _za()
    assert c.q(z, a).shape == (B, K) and c.v(z).shape == (B, K)
    qa = c.q_all(z, a)
    assert qa.shape == (2, B, K)
    torch.testing.assert_close(c.q(z, a), torch.minimum(qa[0], qa[1]))
    assert c.q_target(z, a).shape == (B, K) and c.v_target(z).shape == (B, K)
    with pytest.raises(ValueError, match=r"actions must be \[B, k, A\]"):
        c.q(z, a[:, :-1])
    with pytest.raises(ValueError, match="z_dim=48"):
        c.v(z[:, :3])


def test_position_embedding_makes_q_and_v_depend_on_i():
    c = ChunkCritic(Z, A, K, hidden_dim=64)
    z, a = _za()
    same = a[:, :1].expand(B, K, A).contiguous()  # the same action at every step
    q = c.q(z, same)
    assert (q.std(1) > 1e-4).all()
    assert (c.v(z).std(1) > 1e-4).all()
    with torch.no_grad():
        for h in [*c.q_heads, c.v_head]:
            h.pos.zero_()
    torch.testing.assert_close(c.q(z, same), c.q(z, same)[:, :1].expand(B, K))
    torch.testing.assert_close(c.v(z), c.v(z)[:, :1].expand(B, K))


def test_q_step_i_depends_only_on_action_i():
    c = ChunkCritic(Z, A, K, hidden_dim=64)
    z, a = _za()
    a2 = a.clone()
    a2[:, 7] += 1.0
    d = (c.q(z, a2) - c.q(z, a)).abs()
    assert (d[:, 7] > 1e-5).all()
    assert d[:, [i for i in range(K) if i != 7]].max() == 0


def test_soft_update_hand_computed_and_targets_frozen():
    src, tgt = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        src.weight.fill_(1.0), src.bias.fill_(2.0), tgt.weight.fill_(0.0), tgt.bias.fill_(-2.0)
    soft_update(tgt, src, 0.1)
    torch.testing.assert_close(tgt.weight, torch.full((1, 2), 0.1))
    torch.testing.assert_close(tgt.bias, torch.tensor([-1.6]))
    with pytest.raises(ValueError, match="tau"):
        soft_update(tgt, src, 1.5)

    c = ChunkCritic(Z, A, K, hidden_dim=64)
    z, a = _za()
    assert all(not p.requires_grad for p in c.q_heads_target.parameters())
    before = c.q_target(z, a).clone()
    torch.testing.assert_close(before, c.q(z, a))  # targets start as copies
    opt = torch.optim.SGD(c.parameters(), lr=0.1)
    (c.q(z, a).pow(2).mean() + c.v(z).pow(2).mean()).backward()
    opt.step()
    torch.testing.assert_close(c.q_target(z, a), before)  # untouched by the optimiser
    c.soft_update_targets(1.0)
    torch.testing.assert_close(c.q_target(z, a), c.q(z, a))
    assert {id(p) for p in c.q_parameters()}.isdisjoint({id(p) for p in c.v_parameters()})


@pytest.mark.parametrize("head", ["broadcast", "vector"])
def test_decoupled_critic(head):
    c = DecoupledChunkCritic(3, A, K, hidden_dim=64, head=head, state_dim=4)
    imgs = torch.rand(2, 3, 3, 96, 96)
    a = torch.randn(2, K, A)
    prop = torch.randn(2, 4)
    q, v = c.q(imgs, a, prop), c.v(imgs, prop)
    assert q.shape == (2, K) and v.shape == (2, K) and c.q_all(imgs, a, prop).shape == (2, 2, K)
    if head == "broadcast":
        torch.testing.assert_close(q, q[:, :1].expand(2, K))
    else:
        assert (q.std(1) > 0).all()
    # no per-step locality: changing one step's action moves every output of the chunk Q
    a2 = a.clone()
    a2[:, 3] += 1.0
    assert ((c.q(imgs, a2, prop) - q).abs() > 0).all()
    torch.testing.assert_close(c.q_target(imgs, a, prop), q)
    assert c.v_target(imgs, prop).shape == (2, K)
    with pytest.raises(ValueError, match="n_cam=3"):
        c.v(torch.rand(2, 48))
    assert c.input_kind == "images" and ChunkCritic.input_kind == "z"
