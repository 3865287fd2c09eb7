"""Monte-Carlo returns in the offline critic's target (``OfflineConfig.critic_mc_weight``, ours).

Hand-computed with gamma = 0.5 on ``write_synthetic_dataset`` (reward -0.01 per step, +1 on the success step;
episode 0 succeeds at step 9, episode 2 times out after 10 steps):

* success, steps 8, 9: ``G_9 = 0.99``, ``G_8 = -0.01 + 0.5 * 0.99 = 0.485``;
* timeout, steps 6..9 (summed to the limit, no bootstrap): ``G_9 = -0.01``, ``G_8 = -0.015``,
  ``G_7 = -0.0175``, ``G_6 = -0.01875``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.common.rewards import returns_to_go
from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, write_synthetic_dataset

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_episodes=3, T=10, image_size=(8, 8))


def test_returns_to_go_by_hand():
    r = np.array([-0.01, -0.01, 0.99])
    assert returns_to_go(r, np.array([False, False, True]), 0.5) == pytest.approx([0.2325, 0.485, 0.99])
    assert returns_to_go(r * 0 - 0.01, np.zeros(3, bool), 0.5) == pytest.approx([-0.0175, -0.015, -0.01])
    # a terminal stops the sum: the step after it starts a new return
    assert returns_to_go(np.array([1.0, 2.0, 3.0]), np.array([True, False, False]), 0.5) == pytest.approx(
        [1.0, 3.5, 3.0]
    )
    assert returns_to_go(np.zeros(0), np.zeros(0, bool), 0.9).shape == (0,)


def test_chunk_samples_carry_the_returns(ds):
    data = ChunkDataset(ds, ChunkDatasetConfig(k=4, gamma=0.5))
    s = data[0 * 10 + 8]  # success, steps 8, 9 then padding
    assert s["returns"].tolist() == pytest.approx([0.485, 0.99, 0.0, 0.0])
    s = data[2 * 10 + 6]  # timeout, steps 6..9
    assert s["returns"].tolist() == pytest.approx([-0.01875, -0.0175, -0.015, -0.01])
    with pytest.raises(ValueError, match="ChunkDatasetConfig.gamma must be in"):
        ChunkDataset(ds, ChunkDatasetConfig(k=4, gamma=1.5))


def test_mixed_targets_by_hand():
    y = torch.tensor([[1.0, 2.0]])
    g = torch.tensor([[3.0, -2.0]])
    assert L.mc_mixed_targets(y, None, 0.0) is y
    assert L.mc_mixed_targets(y, g, 0.25)[0].tolist() == pytest.approx([1.5, 1.0])
    assert L.mc_mixed_targets(y, g, 1.0)[0].tolist() == pytest.approx([3.0, -2.0])
    with pytest.raises(ValueError, match="needs the batch's 'returns'"):
        L.mc_mixed_targets(y, None, 0.5)
    with pytest.raises(ValueError, match=r"critic_mc_weight must be in \[0, 1\]"):
        L.mc_mixed_targets(y, g, 1.5)


def test_config_gamma_reaches_the_dataset_and_bad_weights_are_refused(tmp_path):
    assert OfflineConfig(gamma=0.9).data.gamma == 0.9
    with pytest.raises(ValueError, match="gamma=0.9 but data.gamma=0.5"):
        OfflineConfig(gamma=0.9, data=ChunkDatasetConfig(gamma=0.5))
    with pytest.raises(ValueError, match=r"critic_mc_weight must be in \[0, 1\], got 2.0"):
        load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides={"critic_mc_weight": 2.0})


@pytest.mark.parametrize("algo", ["bora", "cp-decoupled-critic"])
def test_trainer_regresses_on_the_returns_at_weight_one(ds, tmp_path, algo):
    """At weight 1 the critic's target is the batch's MC returns: a Q head regressing exactly them has loss 0,
    and the logged mean target (bora) is the masked mean of the returns."""
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    over = dict(total_updates=4, batch_size=8, ckpt_every=10_000, log_every=1, algo=algo, critic_mc_weight=1.0)
    cfg = load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=over)
    assert cfg.data.gamma == cfg.gamma
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    batch = tr.prepare(next(iter(tr.loader)))
    m = tr.train_step(batch)
    mask, g = batch["mask"], batch["returns"]
    want = float((g * mask).sum() / mask.sum())
    if algo == "bora":
        assert m["critic/y_mean"] == pytest.approx(want, abs=1e-5)
    # returns all 0 at weight 1: the target is 0, so each Q head's Eq. 3 loss is its masked mean square
    with torch.no_grad():
        z = tr.learner.encode(batch["images"], batch["instruction"], batch["state_n"])
        _loss, _q, _v, m0 = tr.learner.critic_losses(dict(batch, returns=torch.zeros_like(g)), z)
        want_q = sum(float(L.masked_mean(qh**2, mask)) for qh in _q_all(tr.learner, batch, z))
    assert m0["loss/q"] == pytest.approx(want_q, rel=1e-4)


def _q_all(learner, batch, z):
    c = learner.critic
    if getattr(learner, "critic_kind", None) == "decoupled":
        prop = batch["state_n"] if c.state_dim else None
        return c.q_all(batch["images"], batch["actions_n"], prop)
    return c.q_all(z.detach(), batch["actions_n"])
