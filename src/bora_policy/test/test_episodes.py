"""Episode files: round trip, validation errors that name the field, atomic completeness."""

from __future__ import annotations

import numpy as np
import pytest

from bora_policy.common.episodes import (
    DatasetMeta,
    EpisodeFormatError,
    episode_ids,
    iter_episodes,
    next_episode_id,
    read_episode,
    read_meta,
    write_episode,
)


def _meta():
    return DatasetMeta(fps=10.0, camera_names=["left", "front", "right"], image_size=[8, 10],
                       arm_joint_names=[f"a{i}" for i in range(7)], hand_joint_names=["h0", "h1"],
                       tasks=["press_button"])


def _arrays(T=5, rng=None):
    rng = rng or np.random.default_rng(0)
    return {
        "color": rng.integers(0, 256, size=(T, 3, 8, 10, 3), dtype=np.uint8),
        "depth": rng.uniform(0.1, 2.0, size=(T, 3, 8, 10)).astype(np.float32),
        "state": rng.normal(size=(T, 9)).astype(np.float32),
        "action": rng.normal(size=(T, 9)).astype(np.float32),
        "is_intervention": np.array([0, 1, 1, 0, 0], bool)[:T],
        "beta": np.array([0, 0.5, 1.0, 0.0, 0.0], np.float32)[:T],
        "reward": np.full(T, -0.01, np.float32),
        "done": np.eye(1, T, T - 1, dtype=bool)[0],
    }


def test_round_trip_preserves_arrays_and_info(tmp_path):
    arrays = _arrays()
    write_episode(tmp_path, 3, arrays, {"task": "press_button", "success": True}, _meta())
    back, info = read_episode(tmp_path, 3)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)
        assert back[k].dtype == v.dtype, k
    assert info["num_steps"] == 5 and info["episode_id"] == 3 and info["success"] is True
    assert read_meta(tmp_path).action_dim == 9
    assert episode_ids(tmp_path) == [3] and next_episode_id(tmp_path) == 4
    no_img, _ = next(iter_episodes(tmp_path, load_images=False))
    assert "color" not in no_img and "action" in no_img


def test_wrong_shape_names_the_field(tmp_path):
    arrays = _arrays()
    arrays["action"] = arrays["action"][:, :8]
    with pytest.raises(EpisodeFormatError, match=r"'state'.*shape|'action'.*shape"):
        write_episode(tmp_path, 0, arrays, {}, _meta())


def test_nan_is_rejected(tmp_path):
    arrays = _arrays()
    arrays["reward"][2] = np.nan
    with pytest.raises(EpisodeFormatError, match="'reward' contains NaN"):
        write_episode(tmp_path, 0, arrays, {}, _meta())


def test_missing_array_is_listed(tmp_path):
    arrays = _arrays()
    del arrays["beta"], arrays["done"]
    with pytest.raises(EpisodeFormatError, match=r"missing array\(s\) \['beta', 'done'\]"):
        write_episode(tmp_path, 0, arrays, {}, _meta())


def test_incompatible_meta_is_refused(tmp_path):
    write_episode(tmp_path, 0, _arrays(), {}, _meta())
    other = _meta()
    other.camera_names = ["right", "front", "left"]
    with pytest.raises(EpisodeFormatError, match="camera_names"):
        write_episode(tmp_path, 1, _arrays(), {}, other)


def test_episode_without_side_file_is_not_listed(tmp_path):
    """The .json is written last: an .npz alone (writer killed in between) is not a complete episode."""
    write_episode(tmp_path, 0, _arrays(), {}, _meta())
    (tmp_path / "episodes" / "episode_000000.json").unlink()
    assert episode_ids(tmp_path) == []
