"""ALOE and HABC inside the offline trainer (--algo aloe|habc) and the online residual learner."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.common.episodes import read_episode, read_meta, write_episode
from bora_trainer.algorithms.aloe.config import AloeConfig
from bora_trainer.algorithms.aloe.losses import per_sample_weighted_bc, phase_for_step
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.algorithms.habc.labels import KIND_DEMO, KIND_INTERVENTION, KIND_POLICY, LABEL_NONE
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


def test_phase_schedule():
    # warm-up 3 updates, then cycles of 2 critic + 1 actor updates
    assert [phase_for_step(s, 3, 2, 1) for s in range(9)] == ["warmup"] * 3 + [
        "critic",
        "critic",
        "actor",
    ] * 2


def test_weighted_bc_is_linear_in_the_weights():
    """One expert.bc_loss call with per-sample weights: f(w) = 1/B sum_b w_b l_b (same noise draws)."""
    from bora_policy.models.action_expert import build_expert

    ex = build_expert(
        "diffusion", action_dim=2, z_dim=4, state_dim=0, chunk_size=3, hidden_dim=16, num_blocks=1, cond_dim=8
    )
    z, a = torch.randn(2, 4), torch.randn(2, 3, 2)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])

    def f(w):
        torch.manual_seed(7)
        return float(per_sample_weighted_bc(ex, z, None, a, mask, torch.tensor(w)).detach())

    torch.manual_seed(7)
    plain = float(ex.bc_loss(z, None, a, mask).detach())
    assert f([1.0, 1.0]) == pytest.approx(plain, rel=1e-5)
    l0, l1 = 2 * f([1.0, 0.0]), 2 * f([0.0, 1.0])  # per-sample losses
    assert f([3.0, 0.5]) == pytest.approx((3.0 * l0 + 0.5 * l1) / 2, rel=1e-5)


@pytest.fixture(scope="module")
def mixed_ds(tmp_path_factory):
    """6 synthetic episodes: 2 demos, 2 autonomous rollouts (success, failure), 2 with takeovers."""
    root = write_synthetic_dataset(
        tmp_path_factory.mktemp("ds") / "ds", n_episodes=6, T=12, image_size=(16, 16), fail_every=100
    )
    meta = read_meta(root)
    for e, (src, succ, human) in enumerate(
        [
            ("expert", True, []),
            ("expert", True, []),
            ("policy", True, []),
            ("policy", False, []),
            ("policy", True, [3, 4, 5]),
            ("policy", True, [8, 9, 10, 11]),
        ]
    ):
        arrays, info = read_episode(root, e)
        arrays["is_intervention"] = np.isin(np.arange(12), human)
        arrays["done"] = np.zeros(12, bool)
        arrays["done"][-1] = succ
        info.update(source=src, success=succ, outcome="success" if succ else "failure")
        write_episode(root, e, arrays, info, meta)
    return root


def _cfg(**over):
    base = dict(total_updates=8, batch_size=8, ckpt_every=10_000, log_every=4, k=4, ppo_start_step=2)
    base.update(over)
    return load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=base)


def test_offline_habc_end_to_end(mixed_ds, tmp_path):
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    cfg = _cfg(algo="habc")
    if hasattr(cfg, "algo_options"):
        cfg.algo_options = {"n_warmup": 3, "hidden": 32}
    tr = OfflineTrainer(cfg, mixed_ds, tmp_path / "run", progress=False)
    if getattr(tr.learner, "labels", None) is None:  # until the trainer calls attach_dataset itself
        tr.learner.attach_dataset(tr.dataset)
    lab = tr.learner.labels.eps
    # k = 4, share 0.2 -> 1 human step makes an intervention window
    assert lab[0]["kind"].tolist() == [KIND_DEMO] * 12
    assert lab[3]["label"].tolist() == [0] * 12  # autonomous failure
    # takeover on 3..5 then success: windows 0..5 contain a human step, suffix = anchors 6..11
    assert lab[4]["kind"].tolist() == [KIND_INTERVENTION] * 6 + [KIND_POLICY] * 6
    assert lab[4]["label"].tolist() == [LABEL_NONE] * 6 + [1] * 6
    # takeover that finishes the task: no labelled policy window
    assert (lab[5]["label"] == LABEL_NONE).all()
    last = tr.train()
    assert tr.step == 8 and np.isfinite(last["loss/actor"]) and "habc/w_mean" in last
    assert (tmp_path / "run" / "latest").exists()


def test_habc_warns_when_the_run_never_reaches_its_gate(mixed_ds, tmp_path, caplog):
    """n_warmup (500 updates, the HABC paper) >= the run's updates: the gate is never used; said once, in the log."""
    import logging

    from bora_policy.models.critic import ChunkCritic
    from bora_trainer.algorithms.bora.config import OnlineConfig
    from bora_trainer.algorithms.online_learner import OnlineLearner
    from bora_trainer.offline.trainer import OfflineTrainer

    for opts, warned in (({"hidden": 32}, True), ({"hidden": 32, "n_warmup": 3}, False)):
        caplog.clear()
        cfg = _cfg(algo="habc")  # 8 updates
        cfg.algo_options = opts
        with caplog.at_level(logging.WARNING):
            OfflineTrainer(cfg, mixed_ds, tmp_path / f"run{warned}", progress=False)
        hit = [r.getMessage() for r in caplog.records if "HabcConfig.n_warmup" in r.getMessage()]
        assert bool(hit) == warned
        if warned:
            assert hit[0].startswith("HabcConfig.n_warmup=500 >= total_updates=8: the gate")
        caplog.clear()
        ocfg = OnlineConfig(algo="habc", batch_size=8, max_updates=8, objective_options={"hidden": 16, **opts})
        with caplog.at_level(logging.WARNING):
            OnlineLearner(ChunkCritic(8, 3, 4, hidden_dim=16), 3, 3, 4, 8, ocfg, device="cpu")
        hit = [r.getMessage() for r in caplog.records if "HabcConfig.n_warmup" in r.getMessage()]
        assert bool(hit) == warned
        if warned:
            assert hit[0].startswith("HabcConfig.n_warmup=500 >= online.max_updates=8")


def test_offline_habc_skips_the_unused_next_observation_pass(mixed_ds, tmp_path):
    """The efficiency head bootstraps from z_{t+k} on D_succ rows only (Eq. 3): a batch without one (the
    demonstrations, demos_in_critic off) runs the VLM once, with the same losses as with the second pass."""
    from bora_trainer.algorithms.habc.learner import HabcBatch
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    cfg = _cfg(algo="habc", batch_size=64)
    cfg.algo_options = {"n_warmup": 3, "hidden": 32}
    tr = OfflineTrainer(cfg, mixed_ds, tmp_path / "run", progress=False)
    lrn = tr.learner
    if lrn.labels is None:
        lrn.attach_dataset(tr.dataset)
    full = tr.prepare(next(iter(tr.loader)))
    calls = []
    encode = lrn.encode
    lrn.encode = lambda *a: calls.append(1) or encode(*a)  # counts the real VLM passes
    for eids, passes in (([0, 1], 1), ([2], 2)):  # demonstrations / a successful autonomous rollout (D_succ)
        keep = torch.isin(full["episode_id"], torch.tensor(eids))
        assert keep.any()
        b = {k: (v[keep] if isinstance(v, torch.Tensor) and len(v) == len(keep) else v) for k, v in full.items()}
        if isinstance(b["instruction"], list):
            b["instruction"] = [x for x, m in zip(full["instruction"], keep.tolist()) if m]
        calls.clear()
        out = lrn.losses(b, step=10)
        assert len(calls) == passes
        lab = lrn.labels.lookup(b["episode_id"], b["t"])
        with torch.no_grad():  # the reference: the critic loss with the real z_{t+k}
            z = encode(b["images"], b["instruction"], b["state_n"]).float()
            zn = encode(b["next_images"], b["instruction"], b["next_state_n"]).float()
            ref, _ = lrn.habc.critic_loss(HabcBatch(z=z, next_z=zn, proprio=b["state_n"],
                                                    next_proprio=b["next_state_n"], **lab))
        assert float(out.critic_loss.detach()) == pytest.approx(float(ref), rel=1e-5, abs=1e-7)
        if passes == 1:
            assert float(out.critic_loss.detach()) == 0.0


def test_offline_aloe_end_to_end(mixed_ds, tmp_path):
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    cfg = _cfg(algo="aloe")
    opts = {
        "width": 32,
        "num_layers": 1,
        "num_attn_heads": 2,
        "critic_steps": 2,
        "actor_steps": 2,
        "n_value_samples": 2,
    }
    cfg.algo_options = opts
    tr = OfflineTrainer(cfg, mixed_ds, tmp_path / "run", progress=False)
    phases = []
    for _ in range(8):
        batch = tr.prepare(next(iter(tr.loader)))
        m = tr.train_step(batch)
        phases.append(m["aloe/phase"])
    # warm-up (0) x2, then critic (1) x2 / actor (2) x2 cycles
    assert phases == [0, 0, 1, 1, 2, 2, 1, 1]
    assert "aloe/w_mean" in m or phases[-1] == 1
    # the critic phase leaves the actor untouched; the actor phase leaves the critic untouched
    lrn = tr.learner
    batch = tr.prepare(next(iter(tr.loader)))
    tr.step = 2 + 4 * 10  # a critic step
    ex0 = [p.detach().clone() for p in lrn.expert.parameters()]
    q0 = [p.detach().clone() for p in lrn.critic.parameters()]
    tr.train_step(batch)
    assert all(torch.equal(a, b) for a, b in zip(ex0, lrn.expert.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(q0, lrn.critic.parameters()))
    tr.step = 2 + 4 * 10 + 2  # an actor step
    ex0 = [p.detach().clone() for p in lrn.expert.parameters()]
    q0 = [p.detach().clone() for p in lrn.critic.parameters()]
    m = tr.train_step(batch)
    assert "aloe/w_mean" in m
    assert all(torch.equal(a, b) for a, b in zip(q0, lrn.critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(ex0, lrn.expert.parameters()))


def test_offline_aloe_leaves_a_chunk_without_its_next_observation_out_of_the_critic(mixed_ds, tmp_path):
    """A row flagged ``next_missing`` (observation t+k not recorded, data/chunks.py) must not bootstrap from the
    filler observation: its next images can be anything without changing the critic loss. Unflagged, they do."""
    from bora_trainer.offline.trainer import OfflineTrainer

    cfg = _cfg(algo="aloe", batch_size=6)
    cfg.algo_options = {"width": 32, "num_layers": 1, "num_attn_heads": 2, "critic_steps": 2, "actor_steps": 2}
    tr = OfflineTrainer(cfg, mixed_ds, tmp_path / "run", progress=False)
    batch = tr.prepare(next(iter(tr.loader)), augment=False)
    assert not batch["next_missing"].any()  # the synthetic episodes have no gaps

    def critic_loss(flag_row0: bool, filler: bool) -> float:
        b = dict(batch)
        b["next_missing"] = batch["next_missing"].clone()
        b["next_missing"][0] = flag_row0
        if filler:  # row 0's next observation replaced by something else entirely
            b["next_images"] = batch["next_images"].clone()
            b["next_images"][0] = 255 - b["next_images"][0]
            b["next_state_n"] = batch["next_state_n"].clone()
            b["next_state_n"][0] += 3.0
        torch.manual_seed(3)  # the same expert samples for the target in every call
        return float(tr.learner.losses(b, step=0).critic_loss.detach())

    assert critic_loss(True, False) == critic_loss(True, True)
    assert critic_loss(False, False) != critic_loss(False, True)
    assert critic_loss(True, False) < critic_loss(False, False)  # one row fewer in the same batch-size mean


def test_aloe_stage_lengths_from_the_run():
    from bora_trainer.algorithms.aloe.losses import stage_lengths

    # the demo's offline row: 500 updates, ppo_start 286 -> 214 after it, 5 loops -> 214 // 10 = 21 per stage
    assert stage_lengths(214, 5) == (21, 21)
    assert stage_lengths(15000, 5) == (1500, 1500)  # Table 3's online cap per round
    assert stage_lengths(400, 5) == (40, 40)  # the demo's online cap per round
    assert stage_lengths(3, 5) == (1, 1)  # never 0
    assert stage_lengths(100, 5, critic_steps=7) == (7, 10)  # an explicit stage is kept


def test_offline_aloe_default_stages_reach_the_actor(mixed_ds, tmp_path):
    """With the default (0) stage lengths a run shorter than 2000 updates after ppo_start alternates critic and
    actor stages (the earlier fixed 2000 never reached an actor step); a fixed count that leaves no actor stage
    in the run is refused with the numbers."""
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    small = {"width": 32, "num_layers": 1, "num_attn_heads": 2, "n_value_samples": 2, "iterations": 2}
    cfg = _cfg(algo="aloe", total_updates=10)  # ppo_start 2 -> budget 8, 2 loops -> stages of 8 // 4 = 2
    cfg.algo_options = small
    tr = OfflineTrainer(cfg, mixed_ds, tmp_path / "run", progress=False)
    assert tr.learner.stages == (2, 2)
    assert [tr.learner.phase(s) for s in range(10)] == ["warmup"] * 2 + ["critic"] * 2 + ["actor"] * 2 + [
        "critic"
    ] * 2 + ["actor"] * 2
    cfg = _cfg(algo="aloe", total_updates=10)
    cfg.algo_options = {**small, "critic_steps": 8}
    with pytest.raises(ValueError, match=r"critic_steps=8: the run's 8 updates after ppo_start \(2 of 10\)"):
        OfflineTrainer(cfg, mixed_ds, tmp_path / "run2", progress=False)
    with pytest.raises(ValueError, match="critic_steps and actor_steps must be >= 0"):
        load_config(AloeConfig, {"actor_steps": -1})


def _online_batch(B, k, A, S, Z, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    mask = torch.ones(B, k, dtype=torch.bool)
    is_int = torch.zeros(B, k, dtype=torch.bool)
    is_int[B // 2 + 1, :] = True  # one online row fully human-controlled
    return {
        "z": r(B, Z),
        "proprio": r(B, S),
        "vla": r(B, k, A),
        "base": r(B, k, A),
        "action": r(B, k, A),
        "reward": r(B, k),
        "done": torch.zeros(B, k, dtype=torch.bool),
        "mask": mask,
        "is_intervention": is_int,
        "beta": is_int.float(),
        "next_z": r(B, Z),
        "next_proprio": r(B, S),
        "next_vla": r(B, k, A),
        "next_base": r(B, k, A),
        "next_valid": torch.ones(B, dtype=torch.bool),
        "episode": torch.tensor([0] * (B // 2) + [1] * (B // 2)),
        "step": (torch.arange(B) % (B // 2)) * k,
        "is_online": torch.tensor([False] * (B // 2) + [True] * (B // 2)),
    }


@pytest.mark.parametrize("algo", ["aloe", "habc"])
def test_online_objectives_update_the_residual(algo):
    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.residual import ResidualConfig
    from bora_trainer.algorithms.bora.config import OnlineConfig
    from bora_trainer.algorithms.online_learner import OnlineLearner

    torch.manual_seed(0)
    k, A, S, Z, B = 4, 3, 3, 8, 8
    opts = (
        {"width": 16, "num_layers": 1, "num_attn_heads": 2, "iterations": 2}  # stages 8 // 4 = 2 (max_updates 8)
        if algo == "aloe"
        else {"hidden": 16, "n_warmup": 1}
    )
    cfg = OnlineConfig(
        algo=algo,
        batch_size=B,
        max_updates=8,
        objective_options=opts,
        residual=ResidualConfig(hidden_dims=[16], init_scale=0.1),
    )
    lrn = OnlineLearner(ChunkCritic(Z, A, k, hidden_dim=16), S, A, k, Z, cfg, device="cpu")
    if algo == "habc":
        lrn.objective.observe_episode(1, True, np.zeros(4 * k, bool))
    b = _online_batch(B, k, A, S, Z)
    if algo == "habc":
        lab = lrn.objective.row_labels(b)
        assert lab["kind"].tolist() == [KIND_DEMO] * 4 + [
            KIND_POLICY,
            KIND_INTERVENTION,
            KIND_POLICY,
            KIND_POLICY,
        ]
        assert lab["label"].tolist() == [LABEL_NONE] * 4 + [1, LABEL_NONE, 1, 1]
        # episode 1 has T = 16 steps: rows at t = 0, 4, 8 bootstrap at t + 4 (n = 4); the row at t = 12 holds
        # the success frame 15 -> terminal with n = 15 - 12 = 3
        assert lab["n_steps"][4:].tolist() == [4, 4, 4, 3]
        assert lab["terminal"][4:].tolist() == [False, False, False, True]
        assert lab["in_succ"][4:].tolist() == [True, True, True, True]
    a0 = [p.detach().clone() for p in lrn.actor.parameters()]
    infos, res_before = [], []
    for _ in range(4):
        with torch.no_grad():  # the residual before this update's actor step: what its res_abs reports
            res_before.append(float(lrn.actor(b["proprio"], b["base"], b["z"]).abs().mean()))
        infos.append(lrn.update(b))
    assert all(np.isfinite(v) for i in infos for v in i.values())
    actor_steps = [(i, r) for i, r in zip(infos, res_before) if "actor/loss" in i]
    assert actor_steps and all(i["actor/res_abs"] == pytest.approx(r, rel=1e-5) for i, r in actor_steps)
    if algo == "aloe":  # Q(composite) - Q(base) under ALOE's critic, as the evidence report reads it
        assert all("actor/q_gain" in i for i, _ in actor_steps)
        assert lrn.objective.stages == (2, 2) and [i["aloe/phase"] for i in infos] == [1.0, 1.0, 2.0, 2.0]
    assert not all(torch.equal(x, y) for x, y in zip(a0, lrn.actor.parameters()))
    mods = lrn.modules()
    assert ("aloe_q" in mods) if algo == "aloe" else ("habc_heads" in mods)
