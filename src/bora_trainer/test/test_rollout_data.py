"""Recorded autonomous rollouts as critic data (``OfflineConfig.rollout_data``, ``bora train offline
--rollouts``): the BC mask of a failed rollout, the BC rescaling, two directories read as one dataset, and
a trainer run where BC provably ignores the failed rollouts while the critic trains on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.common.episodes import EpisodeFormatError
from bora_trainer.algorithms.losses import imitated_rows_scale
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, MultiChunkDataset, write_synthetic_dataset


def _as_rollouts(root: Path, success: list[bool]) -> Path:
    """Relabel a synthetic dataset's episodes as policy rollouts with the given outcomes."""
    for eid, ok in enumerate(success):
        js = root / "episodes" / f"episode_{eid:06d}.json"
        info = json.loads(js.read_text())
        info.update(source="policy", success=ok, outcome="success" if ok else "timeout")
        js.write_text(json.dumps(info))
    return root


@pytest.fixture()
def demo_and_rollouts(tmp_path):
    torch.set_num_threads(1)
    demo = write_synthetic_dataset(tmp_path / "demo", n_episodes=2, T=10, image_size=(16, 16), seed=0)
    roll = write_synthetic_dataset(tmp_path / "roll", n_episodes=2, T=6, image_size=(16, 16), seed=1)
    return demo, _as_rollouts(roll, [False, True])


def test_bc_mask_is_zero_on_failed_rollouts_only(demo_and_rollouts):
    demo, roll = demo_and_rollouts
    cfg = ChunkDatasetConfig(k=4)
    for s in (ChunkDataset(demo, cfg)[i] for i in range(len(ChunkDataset(demo, cfg)))):
        assert torch.equal(s["bc_mask"], s["mask"])  # demonstrations: BC everywhere the mask allows
    ds = ChunkDataset(roll, cfg)
    for i in range(len(ds)):
        s = ds[i]
        eid = int(s["episode_id"])
        assert s["mask"].sum() > 0
        if eid == 0:  # failed rollout: the critic's data (mask), never imitated
            assert torch.equal(s["bc_mask"], torch.zeros(4))
        else:  # successful rollout: imitated like a demonstration
            assert torch.equal(s["bc_mask"], s["mask"])


def test_imitated_rows_scale_hand_computed():
    m = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert float(imitated_rows_scale(m)) == 2.0  # 4 chunks, 2 with a BC step
    assert float(imitated_rows_scale(torch.ones(3, 2))) == 1.0
    assert float(imitated_rows_scale(torch.zeros(3, 2))) == 3.0  # no BC step: the loss is 0 anyway


def test_multi_dataset_concatenates_and_checks_meta(demo_and_rollouts, tmp_path):
    demo, roll = demo_and_rollouts
    cfg = ChunkDatasetConfig(k=4)
    a, b = ChunkDataset(demo, cfg), ChunkDataset(roll, cfg)
    both = MultiChunkDataset([demo, roll], cfg)
    assert len(both) == len(a) + len(b) == 2 * 10 + 2 * 6
    assert int(both[0]["source_index"]) == 0 and int(both[len(a)]["source_index"]) == 1
    assert torch.equal(both[len(a)]["actions"], b[0]["actions"])
    states, actions = both.state_action_arrays()
    assert states.shape[0] == actions.shape[0] == 32
    other = write_synthetic_dataset(tmp_path / "other", n_episodes=1, T=5, image_size=(16, 16), n_cam=2)
    with pytest.raises(EpisodeFormatError, match="camera_names"):
        MultiChunkDataset([demo, other], cfg)


def test_trainer_reads_rollouts_bc_ignores_failures(demo_and_rollouts, tmp_path):
    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.cli import main
    from bora_trainer.offline.trainer import OfflineTrainer

    demo, roll = demo_and_rollouts
    repo = Path(__file__).resolve().parents[3]
    over = dict(total_updates=4, batch_size=8, ckpt_every=10_000, log_every=1, rollout_data=[str(roll)])
    cfg = load_config(OfflineConfig, repo / "config/offline_demo.yaml", overrides=over)
    tr = OfflineTrainer(cfg, demo, tmp_path / "run", progress=False)
    assert len(tr.dataset) == 32
    # BC on a batch of failed-rollout chunks only: no gradient reaches the action expert; the critic's does
    fail = [i for i in range(len(tr.dataset)) if int(tr.dataset[i]["source_index"]) == 1
            and int(tr.dataset[i]["episode_id"]) == 0]
    batch = tr.prepare(torch.utils.data.default_collate([tr.dataset[i] for i in fail]))
    out = tr.learner.losses(batch, step=0)
    assert float(out.metrics["loss/bc"]) == 0.0
    out.critic_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.learner.critic.parameters())
    tr.train()
    # the CLI: --rollouts is recorded in the run's config; a directory without meta.json is refused
    assert main(["--algo", "cp-bc", "--data", str(demo), "--rollouts", str(roll), "--config",
                 str(repo / "config/offline_demo.yaml"), "--out", str(tmp_path / "cli"), "--updates", "2",
                 "--no-progress"]) == 0
    import yaml

    assert yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())["rollout_data"] == [str(roll.resolve())]
    with pytest.raises(SystemExit, match="not an episode directory"):
        main(["--data", str(demo), "--rollouts", str(tmp_path), "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="rollout_data"):
        OfflineConfig(rollout_data=str(roll))
    assert np.isfinite(tr.learner.critic.parameters().__next__().detach().numpy()).all()


@pytest.mark.parametrize("algo", ["aloe", "habc"])
def test_related_methods_read_rollouts(demo_and_rollouts, tmp_path, algo):
    """ALOE imitates through bc_mask; HABC labels the episodes of both directories in one id space."""
    from bora_trainer.algorithms.bora.config import OfflineConfig
    from bora_trainer.config_io import load_config
    from bora_trainer.offline.trainer import OfflineTrainer

    demo, roll = demo_and_rollouts
    repo = Path(__file__).resolve().parents[3]
    over = dict(algo=algo, total_updates=2, batch_size=8, ckpt_every=10_000, log_every=1,
                rollout_data=[str(roll)])
    cfg = load_config(OfflineConfig, repo / "config/offline_demo.yaml", overrides=over)
    tr = OfflineTrainer(cfg, demo, tmp_path / "run", progress=False)
    if algo == "habc":
        assert sorted(tr.learner.labels.eps) == [0, 1, 10**8, 10**8 + 1]
        # a failed rollout's steps are labelled as a failure's, a demonstration's as a success's
        assert not tr.learner.labels.eps[10**8]["in_succ"].any()
        assert tr.learner.labels.eps[10**8 + 1]["in_succ"].all()
    last = tr.train()
    assert all(np.isfinite(v) for v in last.values())
