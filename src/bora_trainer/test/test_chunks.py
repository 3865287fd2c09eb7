"""Chunk samples cut from episode files: padding, masks, next observation, shape errors."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bora_policy.common.episodes import EpisodeFormatError, read_episode
from bora_trainer.algorithms.losses import validity_mask
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, write_synthetic_dataset


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory):
    # 3 episodes of 10 steps; episode 2 (fail_every=3) is a timeout without terminal
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("ds"), n_episodes=3, T=10, image_size=(8, 12), n_cam=2
    )


def test_sample_contents_match_episode(ds_root):
    ds = ChunkDataset(ds_root, ChunkDatasetConfig(k=4))
    assert len(ds) == 30 and ds.cache_all
    arrays, info = read_episode(ds_root, 0)
    s = ds[2]  # episode 0, t = 2
    assert s["images"].shape == (2, 3, 8, 12) and s["images"].dtype == torch.uint8
    assert np.array_equal(s["images"].numpy(), arrays["color"][2].transpose(0, 3, 1, 2))
    assert np.allclose(s["actions"].numpy(), arrays["action"][2:6])
    assert np.allclose(s["rewards"].numpy(), arrays["reward"][2:6])
    assert np.allclose(s["next_state"].numpy(), arrays["state"][6])
    assert bool(s["next_valid"]) and s["mask"].tolist() == [1, 1, 1, 1]
    assert s["instruction"] == info["instruction"]


def test_padding_and_terminal_mask(ds_root):
    ds = ChunkDataset(ds_root, ChunkDatasetConfig(k=4))
    arrays, _ = read_episode(ds_root, 0)
    s = ds[8]  # episode 0, t = 8: steps 8, 9 exist, 9 is the terminal; 10, 11 are padding
    assert s["pad_mask"].tolist() == [1, 1, 0, 0]
    assert s["dones"].tolist() == [False, True, False, False]
    assert s["mask"].tolist() == [1, 1, 0, 0]
    assert torch.equal(s["mask"], validity_mask(s["dones"][None], s["pad_mask"][None])[0])
    assert np.allclose(s["actions"][2:].numpy(), arrays["action"][9])  # last action repeated
    assert s["rewards"][2:].tolist() == [0.0, 0.0]
    assert not bool(s["next_valid"]) and np.allclose(s["next_state"].numpy(), arrays["state"][9])
    # timeout episode: no terminal, padding only
    s = ds[20 + 7]
    assert s["dones"].tolist() == [False] * 4 and s["mask"].tolist() == [1, 1, 1, 0]


def test_stride_lazy_loading_and_collate(ds_root):
    ds = ChunkDataset(ds_root, ChunkDatasetConfig(k=4, stride=3, cache="none", lru_episodes=1))
    assert not ds.cache_all
    assert [t for _, t in ds.index[:4]] == [0, 3, 6, 9]
    batch = next(iter(DataLoader(ds, batch_size=5, shuffle=False)))
    assert batch["images"].shape == (5, 2, 3, 8, 12) and batch["actions"].shape == (5, 4, 9)
    assert len(batch["instruction"]) == 5


def test_shape_mismatch_errors_name_the_field(ds_root):
    with pytest.raises(EpisodeFormatError, match="image_size"):
        ChunkDataset(ds_root, ChunkDatasetConfig(k=4, image_size=[16, 16]))
    with pytest.raises(EpisodeFormatError, match="action_dim"):
        ChunkDataset(ds_root, ChunkDatasetConfig(k=4, action_dim=19))
    with pytest.raises(EpisodeFormatError, match="camera_names"):
        ChunkDataset(ds_root, ChunkDatasetConfig(k=4, camera_names=["front"]))
    with pytest.raises(ValueError, match="k must be"):
        ChunkDataset(ds_root, ChunkDatasetConfig(k=0))
