"""Termination vs truncation (issue 14, defect 1): a chunk cut by the time limit bootstraps, in both phases.

One synthetic dataset (``write_synthetic_dataset``: reward -0.01 per step, +1 on the success step; episode
0 succeeds at step 9, episode 2 times out after 10 steps). The offline phase cuts it with ChunkDataset,
the online phase with ``chunk_transitions`` (the layout of every online replay row: in-process rollouts,
recorded bags, D_offline). Hand-computed targets with gamma = 0.5 and a next-state value of 4:

* timeout, chunk at t = 8 (steps 8, 9 real, 10, 11 padding):
  ``y = -0.01 + 0.5 * -0.01 + 0.5^2 * 4 = 0.985`` (the defect gave the terminal value -0.015);
* success, chunk at t = 8 (step 9 terminal): ``y = -0.01 + 0.5 * 0.99 = 0.485`` (no bootstrap);
* timeout, chunk at t = 6 ending exactly at the limit (steps 6..9), bootstrapped from the final observation the
  rollout loop passes: ``y = -0.01 (1 + 0.5 + 0.25 + 0.125) + 0.5^4 * 4 = 0.23125`` (a recording, which has no
  final observation, drops that chunk's last step instead of bootstrapping from the chunk's own start).
"""

import numpy as np
import pytest
import torch

from bora_policy.common.episodes import read_episode
from bora_trainer.algorithms.aloe.losses import chunk_td_target, online_td_target
from bora_trainer.algorithms.losses import shifted_bootstrap_targets
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, write_synthetic_dataset
from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec, chunk_transitions, to_torch

torch.set_num_threads(1)
K, GAMMA, V_NEXT = 4, 0.5, 4.0
WANT = {(2, 8): 0.985, (0, 8): 0.485, (2, 6): 0.23125}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_episodes=3, T=10, image_size=(8, 8))


def _offline_target(ds, eid, t):
    data = ChunkDataset(ds, ChunkDatasetConfig(k=K))
    s = data[eid * 10 + t]
    # what AloeOffline.losses does with a batch of the offline chunk dataset
    return chunk_td_target(
        s["rewards"][None], s["dones"][None].float(), torch.tensor([V_NEXT]), GAMMA, s["pad_mask"][None]
    )


def _final(ds, eid):
    """The observation after the last step, as the in-process rollout loop passes it (a recording has none)."""
    arrays, _ = read_episode(ds, eid, load_images=False)
    S, A = arrays["state"].shape[1], arrays["action"].shape[1]
    return {"z": np.full(3, 0.7, np.float32), "proprio": np.zeros(S, np.float32), "vla": np.zeros((K, A), np.float32)}


def _online_rows(ds, eid, starts=(0, 4, 8), final=None):
    arrays, _ = read_episode(ds, eid, load_images=False)
    n = len(starts)
    Z, S, A = 3, arrays["state"].shape[1], arrays["action"].shape[1]
    return chunk_transitions(
        arrays["action"],
        arrays["reward"],
        arrays["done"],
        np.asarray(starts),
        np.arange(n * Z, dtype=np.float32).reshape(n, Z),
        np.zeros((n, S), np.float32),
        np.zeros((n, K, A), np.float32),
        K,
        episode=eid,
        final=final,
    )


@pytest.mark.parametrize("eid,t", sorted(WANT))
def test_offline_phase_target(ds, eid, t):
    assert _offline_target(ds, eid, t).item() == pytest.approx(WANT[(eid, t)], abs=1e-6)


@pytest.mark.parametrize("eid,t", sorted(WANT))
def test_online_phase_target_equals_offline(ds, eid, t):
    starts = (0, 4, 8) if t == 8 else (2, 6)
    # the chunk at 6 ends at the limit after the last chunk start: it bootstraps from the final observation
    rows = _online_rows(ds, eid, starts, final=_final(ds, eid) if t == 6 else None)
    j = starts.index(t)
    b = to_torch({k: v[j : j + 1] for k, v in rows.items()})
    y, w = online_td_target(b, torch.tensor([V_NEXT]), GAMMA)
    assert y.item() == pytest.approx(WANT[(eid, t)], abs=1e-6)
    assert w.item() == 1.0  # every row trains the critic
    # the rows survive the on-disk buffer unchanged (the field the target needs is stored)
    buf = ChunkReplayBuffer(ReplaySpec(3, rows["proprio"].shape[1], rows["action"].shape[2], K))
    buf.add(rows)
    b2 = to_torch({k: v[j : j + 1] for k, v in buf.arrays().items()})
    assert online_td_target(b2, torch.tensor([V_NEXT]), GAMMA)[0].item() == pytest.approx(WANT[(eid, t)], abs=1e-6)


def test_a_recording_without_the_final_observation_does_not_bootstrap_from_the_chunk_start(ds):
    # a recording's z exist at chunk starts only: the chunk at 6 (ending at the limit, T = 10) would bootstrap
    # its last step from its own start z_6; it drops that step instead, as a gap's chunk does
    rows = _online_rows(ds, 2, (2, 6))
    assert rows["next_valid"].tolist() == [True, False]
    assert rows["mask"][1].tolist() == [True, True, True, False]
    assert rows["mask"][0].tolist() == [True, True, True, True]  # the chunk at 2 bootstraps from z_6 as before
    _, w = online_td_target(to_torch({k: v[1:2] for k, v in rows.items()}), torch.tensor([V_NEXT]), GAMMA)
    assert w.item() == 0.0  # ALOE's whole-chunk target: the row has no next state


def test_gap_row_is_left_out_not_terminal(ds):
    # the chunk at 0 with the next replanning step at 6 instead of 4: no next state -> weight 0
    rows = _online_rows(ds, 2, (0, 6))
    b = to_torch({k: v[:1] for k, v in rows.items()})
    _, w = online_td_target(b, torch.tensor([V_NEXT]), GAMMA)
    assert w.item() == 0.0


def test_rows_written_before_n_steps_derive_it(ds):
    rows = _online_rows(ds, 2)
    del rows["n_steps"]
    buf = ChunkReplayBuffer(ReplaySpec(3, rows["proprio"].shape[1], rows["action"].shape[2], K))
    buf.add(rows)
    assert buf.arrays()["n_steps"].tolist() == [4, 4, 2]


def test_aloe_objective_critic_target_bootstraps_at_time_limit(ds):
    """The online ALOE critic on the timeout row: its target is -0.015 + 0.25 * min_i Qbar_i(s', pi(s'))
    where s' is the episode's final observation (computed here from the objective's own target heads)."""
    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.residual import ResidualConfig
    from bora_trainer.algorithms.bora.config import OnlineConfig
    from bora_trainer.algorithms.online_learner import OnlineLearner

    torch.manual_seed(0)
    arrays, _ = read_episode(ds, 2, load_images=False)
    S, A, Z = arrays["state"].shape[1], arrays["action"].shape[1], 3
    final = {"z": np.full(Z, 0.3, np.float32), "proprio": np.full(S, 0.1, np.float32), "vla": np.zeros((K, A))}
    rows = _online_rows(ds, 2, final=final)
    b = to_torch({k: v[2:3] for k, v in rows.items()})
    cfg = OnlineConfig(
        algo="aloe",
        batch_size=2,
        objective_options={"width": 16, "num_layers": 1, "num_attn_heads": 2, "gamma": GAMMA, "n_heads": 2},
        residual=ResidualConfig(hidden_dims=[16], init_scale=0.1),
    )
    lrn = OnlineLearner(ChunkCritic(Z, A, K, hidden_dim=16), S, A, K, Z, cfg, device="cpu")
    obj = lrn.objective
    with torch.no_grad():
        a_next, _ = obj.policy(b["next_z"], b["next_proprio"], b["next_base"].float())
        qn = obj.q_target(b["next_z"], a_next, b["next_proprio"]).min(0).values.item()
    info = obj.critic_update(b)
    assert info["critic/target_mean"] == pytest.approx(-0.015 + 0.25 * qn, abs=1e-5)
    assert abs(qn) > 1e-3  # the bootstrap term is really there


def test_bora_per_step_targets_match_offline(ds):
    """BORA's online per-step critic (Eq. 1 shifted bootstrap) gets the same targets and masks from a replay
    row as from the offline chunk sample, for the chunk cut by the time limit and the one ending at it."""
    data = ChunkDataset(ds, ChunkDatasetConfig(k=K))
    v_cur = torch.tensor([[10.0, 20.0, 30.0, 40.0]])  # v(z_t, i)
    for t, starts in ((8, (0, 4, 8)), (6, (2, 6))):
        s = data[20 + t]
        rows = _online_rows(ds, 2, starts, final=_final(ds, 2) if t == 6 else None)
        j = starts.index(t)
        vn = torch.tensor([V_NEXT])
        y_off = shifted_bootstrap_targets(s["rewards"][None], s["dones"][None].float(), v_cur, vn, GAMMA)
        r = torch.from_numpy(rows["reward"][j : j + 1])
        d = torch.from_numpy(rows["done"][j : j + 1]).float()
        nv = float(rows["next_valid"][j])
        y_on = shifted_bootstrap_targets(r, d, v_cur, torch.tensor([V_NEXT * nv]), GAMMA)
        m_on = rows["mask"][j].astype(np.float32)
        assert m_on.tolist() == s["mask"].tolist()
        assert (y_on * torch.from_numpy(m_on))[0].tolist() == pytest.approx((y_off * s["mask"])[0].tolist())
    # hand values: t = 8 -> y_0 = -0.01 + 0.5 * 20 = 9.99, y_1 = -0.01 + 0.5 * 30 = 14.99 (valid steps)
    #              t = 6 -> y_3 = -0.01 + 0.5 * V_next = 1.99 (the last step bootstraps from the next state)
    assert y_off.tolist()[0][3] == pytest.approx(1.99)
    s = data[28]
    y8 = shifted_bootstrap_targets(s["rewards"][None], s["dones"][None].float(), v_cur, vn, GAMMA)
    assert y8[0, :2].tolist() == pytest.approx([9.99, 14.99])
