"""Online residual RLPD (Sec. 3.2, App. B.3-B.4, Table 3 Phase 2): hinge, schedules, critic inheritance."""

import numpy as np
import pytest
import torch

from bora_policy.models.residual import ResidualConfig
from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.bora.losses import critic_anchor_loss, improvement_hinge
from bora_trainer.algorithms.online_learner import (
    NormalizerMismatchError,
    OnlineLearner,
    OnlineObjective,
    bc_lambda_schedule,
)
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplaySpec

Z, S, A, K = 16, 5, 4, 6


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids oversubscription on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_critic(seed=0):
    from bora_policy.models.critic import ChunkCritic

    torch.manual_seed(seed)
    return ChunkCritic(z_dim=Z, action_dim=A, chunk_size=K, hidden_dim=32, pos_dim=8)


def make_learner(critic=None, **cfg_kw):
    cfg_kw.setdefault("residual", ResidualConfig(hidden_dims=[32, 32], init_scale=0.3))
    cfg = OnlineConfig(batch_size=16, **cfg_kw)
    return OnlineLearner(
        critic or make_critic(),
        S,
        A,
        K,
        Z,
        cfg,
        normalizer_version="nv",
        critic_normalizer_version="nv",
        device="cpu",
    )


def make_buffers(n_off=64, n_on=32, seed=0):
    spec = ReplaySpec(Z, S, A, K, "nv")
    rng = np.random.default_rng(seed)
    bufs = []
    for n, online in ((n_off, False), (n_on, True)):
        b = ChunkReplayBuffer(spec)
        vla = rng.normal(size=(n, K, A))
        b.add(
            dict(
                z=rng.normal(size=(n, Z)),
                proprio=rng.normal(size=(n, S)),
                vla=vla,
                action=vla + 0.5,
                reward=rng.normal(size=(n, K)) * 0.1,
                done=np.zeros((n, K), bool),
                mask=np.ones((n, K), bool),
                is_intervention=np.zeros((n, K), bool) | online,
                next_z=rng.normal(size=(n, Z)),
                next_proprio=rng.normal(size=(n, S)),
                next_vla=rng.normal(size=(n, K, A)),
                next_valid=np.ones(n, bool),
            )
        )
        bufs.append(b)
    return bufs


def batch(seed=0, B=16):
    off, on = make_buffers(seed=seed)
    return MixedSampler(off, on, B, seed=seed).sample()


# ------------------------------------------------------------------------------------------- Eq. (6)
def test_hinge_hand_computed():
    q_base = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    q_hat = torch.tensor([[1.5, 1.0, 3.0], [1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # delta 0: row0 max(0,[-0.5, 1, 0]) -> 1/3 ; row1 max(0,[-1, 1]) -> 1/2
    assert improvement_hinge(q_base, q_hat, mask, 0.0).item() == pytest.approx((1 / 3 + 1 / 2) / 2)
    # delta 0.5: row0 [0, 1.5, 0.5] -> 2/3 ; row1 [0, 1.5] -> 0.75
    assert improvement_hinge(q_base, q_hat, mask, 0.5).item() == pytest.approx((2 / 3 + 0.75) / 2)


def test_hinge_zero_when_composite_beats_base_by_delta():
    L = make_learner()
    b = batch()
    obj = L.objective
    base, res, a_hat = obj.composite(b)
    with torch.no_grad():
        q_hat = L.critic.q(b["z"], a_hat)
        q_base = L.critic.q(b["z"], base)
    margin = (q_hat - q_base).min().item()
    # delta just below the smallest gain: composite beats base by delta everywhere -> zero loss, zero grad
    L.cfg.improve_delta = margin - 1e-3
    h, _, _ = obj.hinge(b, base, a_hat)
    assert h.item() == 0.0
    h.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in L.actor.parameters())
    # delta above the largest gain: every step is active, the loss is the plain masked mean
    L.actor.zero_grad()
    L.cfg.improve_delta = (q_hat - q_base).max().item() + 1.0
    base, res, a_hat = obj.composite(b)
    h, _, _ = obj.hinge(b, base, a_hat)
    expected = (q_base + L.cfg.improve_delta - q_hat).mean()
    assert h.item() == pytest.approx(expected.item(), rel=1e-5)


def test_hinge_gradient_reaches_only_the_residual():
    L = make_learner()
    b = batch()
    b["base"].requires_grad_(True)  # the stored base chunk must not receive gradient either
    L.cfg.improve_delta = 10.0  # all steps active
    base, res, a_hat = L.objective.composite(b)
    h, _, _ = L.objective.hinge(b, base, a_hat)
    assert h.item() > 0
    h.backward()
    assert all(p.grad is None for p in L.critic.parameters())
    assert b["base"].grad is None
    grads = [p.grad for p in L.actor.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    # the critic's parameters are trainable again afterwards (freezing is temporary)
    assert any(p.requires_grad for p in L.critic.parameters())


# ------------------------------------------------------------------------------------------- schedules
def test_alpha_and_bc_lambda_schedules():
    L = make_learner(residual=ResidualConfig(hidden_dims=[8]))
    assert [round(L.alpha(s), 6) for s in (0, 2000, 4000, 8000)] == [0.2, 0.475, 0.75, 0.75]
    assert [bc_lambda_schedule(s) for s in (0, 5000, 10000, 20000)] == [2.0, 1.5, 1.0, 1.0]
    assert L.bc_lambda(2500) == pytest.approx(1.75)


# ------------------------------------------------------------------------------------------- inheritance
def test_inherited_critic_equals_offline_at_step0_and_polyak_targets():
    offline = make_critic(seed=3)
    ref = {k: v.clone() for k, v in offline.state_dict().items()}
    L = make_learner(critic=offline)
    for k, v in L.critic.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    for k, v in L.critic_offline.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    # the critic regulariser is exactly zero at step 0 (online critic == frozen offline copy)
    b = batch()
    _, info = L.objective.critic_loss(b)
    assert info["critic/reg"] == 0.0
    for _ in range(3):
        L.update(batch(seed=1))
    # the online critic moved, the offline model passed in and the frozen anchor did not
    moved = any((v.float() - ref[k].float()).abs().max() > 0 for k, v in L.critic.state_dict().items())
    assert moved
    for k, v in offline.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    for k, v in L.critic_offline.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    assert L.step == 3


def test_normalizer_versions_must_match():
    with pytest.raises(NormalizerMismatchError, match="offline_critic"):
        OnlineLearner(
            make_critic(),
            S,
            A,
            K,
            Z,
            OnlineConfig(batch_size=16),
            normalizer_version="aaa",
            critic_normalizer_version="bbb",
            device="cpu",
        )
    L = make_learner()
    with pytest.raises(NormalizerMismatchError, match="replay"):
        L.check_buffer(ReplaySpec(Z, S, A, K, "other"))
    with pytest.raises(ValueError, match="z_dim"):
        L.check_buffer(ReplaySpec(Z + 1, S, A, K, "nv"))


def test_critic_anchor_loss_offline_rows_only():
    q = torch.tensor([[1.0, 2.0], [5.0, 5.0], [0.0, 0.0]])
    q_off = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 3.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    rows = torch.tensor([True, False, True])
    # row0: (1 + 4)/2 = 2.5; row2: 1/1 = 1 -> mean 1.75 (row1 is online: ignored)
    assert critic_anchor_loss(q, q_off, mask, rows).item() == pytest.approx(1.75)


def test_critic_reg_none_switch():
    L = make_learner(critic_reg="none")
    _, info = L.objective.critic_loss(batch())
    assert "critic/reg" not in info
    with pytest.raises(ValueError, match="critic_reg"):
        OnlineConfig(critic_reg="l2")


# ------------------------------------------------------------------------------------------- BC targets
def test_bc_uses_offline_rows_and_intervention_steps_only():
    L = make_learner()
    b = batch()
    on = b["is_online"]
    b["is_intervention"][:] = False
    b["is_intervention"][on, :2] = True  # online rows: only the first two steps are human
    base, res, a_hat = L.objective.composite(b)
    _, info = L.objective.actor_loss(b)
    err = ((a_hat - b["action"]) ** 2).mean(-1).detach()
    expected = torch.cat([err[~on].mean(1), err[on][:, :2].mean(1)]).mean()
    assert info["actor/bc"] == pytest.approx(expected.item(), rel=1e-5)
    # garbage actions on non-intervention online steps do not change the BC term
    b["action"][on, 2:] += 100.0
    _, info2 = L.objective.actor_loss(b)
    assert info2["actor/bc"] == pytest.approx(info["actor/bc"], rel=1e-6)


@pytest.mark.parametrize("w, d", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (3.0, 1.0), (1.0, 0.0), (2.0, 0.5)])
def test_intervention_bc_weight_hand_computed(w, d):
    """L_BC = (d sum_offline e_r + w sum_online-with-human-steps e_r) / (d n_off + w n_int), e_r the row's mean
    squared error over its imitated steps, d = demo_bc_weight; online rows without human steps do not count."""
    L = make_learner(intervention_bc_weight=w, demo_bc_weight=d)
    b = batch()
    on = b["is_online"]
    b["is_intervention"][:] = False
    idx = torch.nonzero(on).flatten()
    b["is_intervention"][idx[0], :3] = True  # two online rows with human steps, the others without
    b["is_intervention"][idx[1], 5:] = True
    _, _, a_hat = L.objective.composite(b)
    err = ((a_hat - b["action"]) ** 2).mean(-1).detach().double()
    e_off = err[~on].mean(1)
    e_int = torch.stack([err[idx[0], :3].mean(), err[idx[1], 5:].mean()])
    expected = (d * e_off.sum() + w * e_int.sum()) / (d * len(e_off) + w * 2)
    _, info = L.objective.actor_loss(b)
    assert info["actor/bc"] == pytest.approx(expected.item(), rel=1e-5)


def test_bc_q_filter_hand_computed():
    """``bc_filter="q"`` (Nair et al. 2018's Q-filter, per step): L_BC is the row-weighted mean over the imitated
    steps where the critic's min-head Q at the data's chunk is at least its Q at the composite; the batch is
    chosen so that some steps pass and some do not, and the unfiltered L_BC differs."""
    L = make_learner(bc_filter="q")
    b = batch()
    on = b["is_online"]
    b["is_intervention"][:] = False
    b["is_intervention"][on, :3] = True
    _, _, a_hat = L.objective.composite(b)
    with torch.no_grad():
        q_data = L.critic.q(b["z"], b["action"]).double()
        q_hat = L.critic.q(b["z"], a_hat).double()
    keep = (q_data >= q_hat).double()
    err = ((a_hat - b["action"]) ** 2).mean(-1).detach().double()
    imitated = b["mask"].double() * torch.where(on[:, None], b["is_intervention"], True).double() * keep
    per_row = (err * imitated).sum(1) / imitated.sum(1).clamp_min(1.0)
    has = imitated.sum(1) > 0
    expected = per_row[has].mean()
    assert 0.1 < keep[b["mask"].bool()].mean() < 0.9  # the filter keeps some steps and drops others here
    _, info = L.objective.actor_loss(b)
    assert info["actor/bc"] == pytest.approx(expected.item(), rel=1e-5)
    assert info["actor/bc_kept"] == pytest.approx((keep * b["mask"]).sum().item() / b["mask"].sum().item(), rel=1e-5)
    _, unfiltered = make_learner().objective.actor_loss(b)
    assert unfiltered["actor/bc"] != pytest.approx(info["actor/bc"], rel=1e-3)
    with pytest.raises(ValueError, match="bc_filter"):
        OnlineConfig(bc_filter="advantage")


def _bc_rows(action, base, online, intervention):
    t = lambda x: torch.tensor(x, dtype=torch.float32)[..., None]  # noqa: E731  [B, k] -> [B, k, A=1]
    return {"action": t(action), "base": t(base), "mask": torch.ones(len(action), len(action[0])),
            "is_online": torch.tensor(online), "is_intervention": torch.tensor(intervention)}


def test_bc_center_hand_computed():
    """``bc_center``: L_BC imitates ``a - c``, ``c`` the weighted mean of ``a - A_base`` over the imitated steps
    (each row's steps share its weight). Two offline rows (base 0, actions [1, 3] and [2, 2]) and an online row
    whose first step only is human (action 6; its second step, 100, is not imitated), composite 0:
    c = (0.5*1 + 0.5*3 + 0.5*2 + 0.5*2 + 1*6) / 3 = 10/3; row errors 25/9, 16/9, 64/9 -> L_BC = 35/9.
    Without the online row c = 2 and L_BC = (1 + 0) / 2; uncentred the same rows give (5 + 4) / 2."""
    obj = make_learner(bc_center=True, intervention_bc_weight=1.0).objective
    b = _bc_rows([[1, 3], [2, 2], [6, 100]], [[0, 0]] * 3, [False, False, True],
                 [[False, False], [False, False], [True, False]])
    zero = torch.zeros_like(b["action"])
    assert obj.bc_offset(b, torch.tensor([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])).item() == pytest.approx(10 / 3)
    assert obj.bc_term(b, zero).item() == pytest.approx(35 / 9, rel=1e-6)
    two = {k: v[:2] for k, v in b.items()}
    assert obj.bc_term(two, zero[:2]).item() == pytest.approx(0.5, rel=1e-6)
    assert make_learner().objective.bc_term(two, zero[:2]).item() == pytest.approx(4.5, rel=1e-6)
    # a constant added to every correction leaves the centred term unchanged (c takes it up) ...
    assert obj.bc_term(dict(two, action=two["action"] + 7.0), zero[:2]).item() == pytest.approx(0.5, rel=1e-6)
    # ... and c is taken relative to the base: base and actions both shifted, the composite with them
    shifted = dict(two, action=two["action"] + 7.0, base=two["base"] + 7.0)
    assert obj.bc_term(shifted, zero[:2] + 7.0).item() == pytest.approx(0.5, rel=1e-6)
    # the full actor step runs with it and gives a finite loss with a gradient into the residual
    L = make_learner(bc_center=True)
    loss, info = L.objective.actor_loss(batch())
    loss.backward()
    assert np.isfinite(info["actor/bc"]) and any(p.grad is not None for p in L.actor.parameters())
    with pytest.raises(ValueError, match="bc_center"):
        OnlineConfig(bc_center="yes")


def test_actor_input_noise_hand_computed():
    """``actor_input_noise``: each input dimension gets ``sigma * (its batch std) * eps``. Inputs [0, 2] and
    [5, 5] (std sqrt(2) and 0), eps [1, -1] in both, sigma 0.5: [0.5 sqrt(2), 2 - 0.5 sqrt(2)] and [5, 5]."""
    from bora_trainer.algorithms.bora.online import BoraResidualObjective as Obj

    x = torch.tensor([[0.0, 5.0], [2.0, 5.0]])
    got = Obj.noisy(x, 0.5, torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    h = 0.5 * 2**0.5
    assert torch.allclose(got, torch.tensor([[h, 5.0], [2.0 - h, 5.0]]))
    assert torch.equal(Obj.noisy(x[:1], 0.5), x[:1])  # one row: no spread, no noise
    # in the actor step the residual reads the noisy proprio and z (drawn in that order), the base stays clean
    L = make_learner(actor_input_noise=0.3)
    b = batch()
    torch.manual_seed(7)
    base, res, a_hat = L.objective.composite(b, 0.3)
    torch.manual_seed(7)
    prop = Obj.noisy(b["proprio"], 0.3, torch.randn_like(b["proprio"].float()))
    z = Obj.noisy(b["z"], 0.3, torch.randn_like(b["z"].float()))
    with torch.no_grad():
        want = L.actor(prop, b["base"].float(), z)
        clean = L.actor(b["proprio"], b["base"].float(), b["z"])
    assert torch.allclose(res.detach(), want, atol=1e-6) and not torch.allclose(res.detach(), clean, atol=1e-4)
    assert torch.equal(base, b["base"].float())
    assert torch.allclose(L.objective.composite(b)[1].detach(), clean, atol=1e-6)  # 0: the clean inputs
    loss, info = L.objective.actor_loss(b)
    loss.backward()
    assert np.isfinite(info["actor/bc"]) and any(p.grad is not None for p in L.actor.parameters())
    with pytest.raises(ValueError, match="actor_input_noise"):
        OnlineConfig(actor_input_noise=-0.1)


def test_intervention_bc_weight_checked():
    with pytest.raises(ValueError, match="intervention_bc_weight"):
        OnlineConfig(intervention_bc_weight=-0.1)
    with pytest.raises(ValueError, match="demo_bc_weight"):
        OnlineConfig(demo_bc_weight=-1.0)


def test_updates_reduce_bc_error_toward_corrections():
    torch.manual_seed(0)
    L = make_learner(residual=ResidualConfig(hidden_dims=[64, 64], init_scale=1e-3, max_residual=2.0))
    off, on = make_buffers()
    s = MixedSampler(off, on, 16, seed=0)
    first = L.update(s.sample())["actor/bc"]
    for _ in range(100):
        last = L.update(s.sample())
    assert last["actor/bc"] < 0.7 * first  # the executed chunks are A_VLA + 0.5: the residual learns it
    assert np.isfinite(last["critic/loss"])


# ------------------------------------------------------------------------------------------- registry
def test_objective_registry_pluggable():
    with pytest.raises(ValueError, match="unknown online algorithm"):
        make_learner(algo="nope")

    class BCOnly(OnlineObjective):
        def update(self, batch):
            return {"custom": 1.0}

    registry.register(registry.Method("test-bc-only", "Test", online=BCOnly))
    try:
        L = make_learner(algo="test-bc-only")
        assert L.update(batch())["custom"] == 1.0 and L.step == 1
    finally:
        registry.unregister("test-bc-only")


# ------------------------------------------------------------------------------------------- checkpoints
def test_residual_checkpoint_round_trip(tmp_path):
    from bora_policy.models.normalizer import Normalizer
    from bora_policy.models.residual import (
        FrozenResidual,
        ResidualPolicy,
        load_residual_checkpoint,
        residual_checkpoint_extra,
    )
    from bora_trainer.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    norm = Normalizer.fit(rng.normal(size=(40, S)), rng.normal(1.0, 2.0, size=(40, A)))
    L1, L2 = make_learner(), make_learner()
    stack = [FrozenResidual(L1.actor, 0.6), FrozenResidual(L2.actor, 0.4)]
    mods = {"residual_1": L1.actor.state_dict(), "residual_2": L2.actor.state_dict()}
    save_checkpoint(tmp_path, 7, mods, extra=residual_checkpoint_extra(stack, norm.version))
    pol, alpha = load_residual_checkpoint(tmp_path, norm)
    assert alpha == pytest.approx(0.4) and pol.round == 2
    ref = ResidualPolicy.from_normalizer(norm, stack[:1], L2.actor)
    z, p, v = torch.randn(3, Z), torch.randn(3, S), torch.randn(3, K, A)
    with torch.no_grad():
        torch.testing.assert_close(
            pol.compose(z, p, v, alpha).final_physical, ref.compose(z, p, v, 0.4).final_physical
        )
    other = Normalizer.fit(rng.normal(size=(40, S)), rng.normal(size=(40, A)))
    with pytest.raises(ValueError, match="normaliser"):
        load_residual_checkpoint(tmp_path, other)
    # a blend weight outside [0, 1] in meta.json is refused, naming the field (the policy node's range)
    import json

    meta_file = next(tmp_path.rglob("meta.json"))
    meta = json.loads(meta_file.read_text())
    meta["extra"]["residuals"][0]["lambda"] = 40.0
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"residuals\[0\]\.lambda = 40\.0 is out of range: expected a number in \[0"):
        load_residual_checkpoint(tmp_path, norm)
    # a round without a name: one line naming the field (before: a bare KeyError 'name')
    meta["extra"]["residuals"][0] = {"lambda": 0.5}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"residuals\[0\]\.name = None: expected the file stem"):
        load_residual_checkpoint(tmp_path, norm)


# ------------------------------------------------------------------------------------------- conservative critic
def _masked_mean(x, m):
    return ((x * m).sum(1) / m.sum(1).clamp_min(1.0)).mean()


def test_critic_conservative_adds_the_gap_between_the_composite_and_the_data_hand_computed():
    """critic_conservative c: critic loss += c * sum over Q heads of (masked mean of Q at the current composite
    chunk - masked mean of Q at the batch's chunk), computed here from the critic's own heads."""
    L = make_learner(critic_conservative=0.5)
    b = batch()
    b["mask"][0, 3:] = False  # a row with a short valid prefix
    loss_with, info = L.objective.critic_loss(b)
    L.cfg.critic_conservative = 0.0
    loss_without, _ = L.objective.critic_loss(b)
    with torch.no_grad():
        _, _, a_hat = L.objective.composite(b)
        m = b["mask"].float()
        q_pi, q_data = L.critic.q_all(b["z"], a_hat), L.critic.q_all(b["z"], b["action"])
        gap = sum(_masked_mean(q_pi[h], m) - _masked_mean(q_data[h], m) for h in range(q_pi.shape[0]))
    assert q_pi.shape[0] == 2 and abs(gap.item()) > 1e-4  # two heads; composite and data differ here
    assert info["critic/conservative_gap"] == pytest.approx(gap.item(), rel=1e-4, abs=1e-6)
    assert (loss_with - loss_without).item() == pytest.approx(0.5 * gap.item(), rel=1e-4, abs=1e-6)
    # where the batch's chunk IS the composite, the term is exactly 0
    b2 = dict(b, action=a_hat.clone())
    L.cfg.critic_conservative = 0.5
    _, info2 = L.objective.critic_loss(b2)
    assert info2["critic/conservative_gap"] == pytest.approx(0.0, abs=1e-6)


def test_critic_conservative_step_lowers_q_at_the_composite_relative_to_the_data():
    L = make_learner(critic_conservative=1.0)
    b = batch()
    before = L.objective.conservative_gap(b, L.critic.q_all(b["z"], b["action"]), b["mask"].float()).item()
    opt = torch.optim.SGD(L.critic.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        gap = L.objective.conservative_gap(b, L.critic.q_all(b["z"], b["action"]), b["mask"].float())
        gap.backward()
        opt.step()
    after = L.objective.conservative_gap(b, L.critic.q_all(b["z"], b["action"]), b["mask"].float()).item()
    assert after < before - 1e-3


def test_critic_conservative_checked():
    with pytest.raises(ValueError, match="critic_conservative"):
        OnlineConfig(critic_conservative=-1.0)
