"""Monte-Carlo returns in the ONLINE critic's target (``OnlineConfig.critic_mc_weight``, ours).

The rows here are made without ``gamma`` (as rows of older buffers), so they carry no stored returns and
``ChunkReplayBuffer.returns`` rebuilds them per episode from the rows' per-step rewards (rows that tile their episode:
exact; stored returns and rows that do not tile: test_replay_returns.py). Hand-computed with gamma = 0.5 on
``write_synthetic_dataset`` (reward -0.01 per step, +1 on the success step; episode 0 succeeds at step 9, episode 2
times out after 10 steps), as in test_critic_mc.py:

* success, steps 8, 9: ``G_9 = 0.99``, ``G_8 = 0.485``;
* timeout, steps 6..9 (summed to the limit, no bootstrap): ``-0.01875, -0.0175, -0.015, -0.01``.
"""

import numpy as np
import pytest
import torch

from bora_policy.common.episodes import read_episode
from bora_trainer.algorithms.losses import masked_bellman_loss
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, write_synthetic_dataset
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplaySpec, chunk_transitions, to_torch

torch.set_num_threads(1)
K, GAMMA, Z = 4, 0.5, 3


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_episodes=3, T=10, image_size=(8, 8))


def _rows(ds, eid, starts):
    arrays, _ = read_episode(ds, eid, load_images=False)
    n, S, A = len(starts), arrays["state"].shape[1], arrays["action"].shape[1]
    return chunk_transitions(
        arrays["action"], arrays["reward"], arrays["done"], np.asarray(starts),
        np.zeros((n, Z), np.float32), np.zeros((n, S), np.float32), np.zeros((n, K, A), np.float32), K,
        episode=eid,
    )


def _buffer(ds, episodes=((0, (0, 2, 4, 6, 8)), (2, (0, 3, 6)))):
    arrays, _ = read_episode(ds, 0, load_images=False)
    buf = ChunkReplayBuffer(ReplaySpec(Z, arrays["state"].shape[1], arrays["action"].shape[1], K, "t"))
    for eid, starts in episodes:
        buf.add(_rows(ds, eid, starts))
    return buf


def test_replay_returns_by_hand_and_equal_to_the_offline_samples(ds):
    buf = _buffer(ds)
    g = buf.returns(GAMMA)
    rows = buf.arrays()
    last = {(int(e), int(s)): i for i, (e, s) in enumerate(zip(rows["episode"], rows["step"]))}
    assert g[last[(0, 8)]].tolist() == pytest.approx([0.485, 0.99, 0.0, 0.0])
    assert g[last[(2, 6)]].tolist() == pytest.approx([-0.01875, -0.0175, -0.015, -0.01])
    # every row, rebuilt from overlapping chunks of the two episodes, equals the offline chunk dataset's returns
    data = ChunkDataset(ds, ChunkDatasetConfig(k=K, gamma=GAMMA))
    for (e, s), i in last.items():
        assert g[i].tolist() == pytest.approx(data[e * 10 + s]["returns"].tolist(), abs=1e-6)
    # a cached result is refreshed when an episode is added
    buf.add(_rows(ds, 1, (0, 4, 8)))
    assert buf.returns(GAMMA).shape == (len(buf), K)


def test_a_row_without_provenance_is_its_own_episode(ds):
    buf = _buffer(ds, episodes=())
    rows = _rows(ds, 2, (6,))
    rows["episode"] = np.array([-1])
    buf.add(rows)
    buf.add({**rows, "step": np.array([-1])})  # no step either: the row's own steps
    np.testing.assert_allclose(buf.returns(GAMMA), [[-0.01875, -0.0175, -0.015, -0.01]] * 2, atol=1e-7)


def test_mixed_sampler_adds_the_returns_only_when_asked(ds):
    off, on = _buffer(ds), _buffer(ds, episodes=((1, (0, 4, 8)),))
    b = MixedSampler(off, on, 8, seed=0, returns_gamma=GAMMA).sample_arrays()
    assert b["returns"].shape == (8, K)
    full = {}
    for online, buf in ((False, off), (True, on)):
        r = buf.arrays()
        full.update({(online, int(e), int(s)): g for e, s, g in zip(r["episode"], r["step"], buf.returns(GAMMA))})
    for o, e, s, g in zip(b["is_online"], b["episode"], b["step"], b["returns"]):
        assert g.tolist() == pytest.approx(full[(bool(o), int(e), int(s))].tolist())
    assert "returns" not in MixedSampler(off, on, 8, seed=0).sample_arrays()
    with pytest.raises(ValueError, match="returns_gamma must be in"):
        MixedSampler(off, on, 8, returns_gamma=0.0)


def _learner(S, A, weight, algo="bora-residual"):
    from bora_policy.models.critic import ChunkCritic
    from bora_policy.models.residual import ResidualConfig
    from bora_trainer.algorithms.bora.config import OnlineConfig
    from bora_trainer.algorithms.online_learner import OnlineLearner

    torch.manual_seed(0)
    cfg = OnlineConfig(
        algo=algo, batch_size=2, gamma=GAMMA, critic_mc_weight=weight, critic_reg="none", precision="fp32",
        residual=ResidualConfig(hidden_dims=[16], init_scale=0.1),
    )
    return OnlineLearner(ChunkCritic(Z, A, K, hidden_dim=16), S, A, K, Z, cfg, device="cpu")


def test_online_critic_regresses_on_the_returns_at_weight_one(ds):
    buf = _buffer(ds)
    rows = buf.arrays()
    b = to_torch({**rows, "returns": buf.returns(GAMMA)})
    b["is_online"] = torch.ones(len(buf), dtype=torch.bool)
    S, A = rows["proprio"].shape[1], rows["action"].shape[2]
    lrn = _learner(S, A, 1.0)
    _, info = lrn.objective.critic_loss(b)
    with torch.no_grad():
        q_all = lrn.objective.q_heads(b["z"], b["action"])
    want = sum(masked_bellman_loss(q, b["returns"], b["mask"].float()) for q in q_all)
    assert info["critic/loss_q"] == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ValueError, match="needs the batch's 'returns'"):
        lrn.objective.critic_loss({k: v for k, v in b.items() if k != "returns"})
    # weight 0 is Eq. 1 alone: the returns in the batch change nothing
    l0 = _learner(S, A, 0.0)
    assert l0.objective.critic_loss(b)[1]["critic/loss_q"] == pytest.approx(
        l0.objective.critic_loss({k: v for k, v in b.items() if k != "returns"})[1]["critic/loss_q"]
    )


def test_bad_weights_are_refused():
    from bora_trainer.algorithms.bora.config import OnlineConfig

    with pytest.raises(ValueError, match=r"critic_mc_weight must be in \[0, 1\]"):
        OnlineConfig(critic_mc_weight=1.5)


def test_other_algorithms_ignore_the_weight(ds):
    """One online config serves every online row of the demo: ALOE's critic update on a batch with returns is the
    same at weight 0.5 as at 0 (its own target), where bora-residual's changes."""
    buf = _buffer(ds)
    rows = buf.arrays()
    b = to_torch({**rows, "returns": buf.returns(GAMMA)})
    b["is_online"] = torch.ones(len(buf), dtype=torch.bool)
    S, A = rows["proprio"].shape[1], rows["action"].shape[2]
    half, zero = (_learner(S, A, w, algo="aloe").objective.critic_update(b) for w in (0.5, 0.0))
    assert half["critic/loss"] == zero["critic/loss"] and half["critic/target_mean"] == zero["critic/target_mean"]
    bora = [_learner(S, A, w).objective.critic_loss(b)[1]["critic/loss_q"] for w in (0.5, 0.0)]
    assert bora[0] != pytest.approx(bora[1])
