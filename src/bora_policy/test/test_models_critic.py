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


# ---------------------------------------------------------------------------- factored step head == concat form
def _concat_forward(head, z, a):
    """The textbook form of a step head: the MLP on the concatenated tokens [proj(z_t), a_{t+i}, pos_i] (B*k rows)."""
    Bz = z.shape[0]
    parts = [head.z_proj(z).unsqueeze(1).expand(Bz, head.k, -1)]
    if head.action_dim:
        parts.append(a)
    parts.append(head.pos.unsqueeze(0).expand(Bz, -1, -1))
    return head.mlp(torch.cat(parts, -1)).squeeze(-1)


def test_factored_step_head_equals_concat_form_values_and_gradients():
    torch.manual_seed(3)
    c = ChunkCritic(Z, A, K, hidden_dim=64, pos_dim=8, num_layers=2, num_q=2)
    with torch.no_grad():  # make the target nets differ from the online ones
        for p in c.parameters():
            p.add_(0.05 * torch.randn_like(p))
    z, a = _za(1)
    ref_q = torch.stack([_concat_forward(h, z, a) for h in c.q_heads])
    ref_v = _concat_forward(c.v_head, z, None)
    torch.testing.assert_close(c.q_all(z, a), ref_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c.q(z, a), ref_q.amin(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c.v(z), ref_v, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        ref_qt = torch.stack([_concat_forward(h, z, a) for h in c.q_heads_target]).amin(0)
        ref_vt = _concat_forward(c.v_head_target, z, None)
    torch.testing.assert_close(c.q_target(z, a), ref_qt, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c.v_target(z), ref_vt, rtol=1e-5, atol=1e-5)
    # only some positions (the Eq. 1 bootstrap needs v(z_{t+1}, 0) alone)
    torch.testing.assert_close(c.v_target(z, steps=[0]), ref_vt[:, :1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c.v(z, steps=[3, 0, 31]), ref_v[:, [3, 0, 31]], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"steps must be chunk positions in \[0, 32\)"):
        c.v(z, steps=[32])

    # gradients into every parameter and into the actions agree too
    def grads(fn):
        c.zero_grad(set_to_none=True)
        aa = a.clone().requires_grad_(True)
        fn(aa).backward()
        return [p.grad.clone() for p in c.parameters() if p.grad is not None], aa.grad

    w = torch.randn(B, K)
    g_new, ga_new = grads(lambda aa: (c.q_all(z, aa).sum(0) * w).sum() + (c.v(z) * w).pow(2).sum())
    g_ref, ga_ref = grads(
        lambda aa: (torch.stack([_concat_forward(h, z, aa) for h in c.q_heads]).sum(0) * w).sum()
        + (_concat_forward(c.v_head, z, None) * w).pow(2).sum()
    )
    assert len(g_new) == len(g_ref) == len(list(c.q_parameters())) + len(list(c.v_parameters()))
    for gn, gr in zip(g_new, g_ref):
        torch.testing.assert_close(gn, gr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ga_new, ga_ref, rtol=1e-4, atol=1e-6)


def test_chunk_critic_state_dict_layout_is_stable(tmp_path):
    """Checkpoint compatibility: the parameter names and shapes of ``ChunkCritic`` checkpoints."""
    c = ChunkCritic(5, 3, 4, hidden_dim=8, pos_dim=2, num_layers=2, num_q=2)
    head = {
        "z_proj.0.weight": (8, 5), "z_proj.0.bias": (8,), "z_proj.1.weight": (8,), "z_proj.1.bias": (8,),
        "mlp.0.bias": (8,), "mlp.1.weight": (8,), "mlp.1.bias": (8,), "mlp.3.weight": (8, 8), "mlp.3.bias": (8,),
        "mlp.4.weight": (8,), "mlp.4.bias": (8,), "mlp.6.weight": (1, 8), "mlp.6.bias": (1,),
    }
    expected = {}
    for prefix, act in [("q_heads.0", 3), ("q_heads.1", 3), ("v_head", 0)]:
        for tgt in ("", "_target"):
            pre = prefix.replace("q_heads", "q_heads" + tgt) if "q_heads" in prefix else prefix + tgt
            expected.update({f"{pre}.{k}": s for k, s in head.items()})
            expected[f"{pre}.pos"] = (4, 2)
            expected[f"{pre}.mlp.0.weight"] = (8, 8 + act + 2)
    assert {k: tuple(v.shape) for k, v in c.state_dict().items()} == expected
    z, a = torch.randn(2, 5), torch.randn(2, 4, 3)
    loaded = ChunkCritic.load(c.save(tmp_path / "c"))
    torch.testing.assert_close(loaded.q_all(z, a), c.q_all(z, a))
    torch.testing.assert_close(loaded.v_target(z, steps=[0]), c.v_target(z)[:, :1])
