"""Which offline episodes form an online run's D_offline (``OnlineRunConfig.offline_episodes``).

A dataset of four real episode files (written with ``write_episode``): a clean expert demonstration that succeeded,
a noisy one that succeeded, a slow (suboptimal) one that failed, and a recording without quality knobs that
succeeded. Expectations by hand from those infos: "all" keeps every episode, "successful" the three successes,
"clean" the clean demonstration and the recording. D_offline is built by the real ``offline_buffer`` with the tiny
frozen VLA of conftest; its rows name their episode.
"""

from __future__ import annotations

import numpy as np
import pytest

from bora_policy.common.episodes import DatasetMeta, write_episode
from bora_policy.common.rewards import RewardConfig
from bora_trainer.config_io import ConfigError, load_config
from bora_trainer.data.replay import ReplaySpec
from bora_trainer.online.config import OnlineRunConfig
from bora_trainer.online.vla import offline_buffer, offline_buffer_for

T = 12
INFOS = {
    3: {"source": "expert", "success": True, "quality": {"noise": 0.0, "hesitation": 0.0, "suboptimal": 0.0}},
    4: {"source": "expert", "success": True, "quality": {"noise": 0.3, "hesitation": 0.0, "suboptimal": 0.0}},
    5: {"source": "expert", "success": False, "quality": {"noise": 0.0, "hesitation": 0.0, "suboptimal": 1.0}},
    6: {"success": True},  # a recording: no source, no quality knobs
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, frozen_vla):
    root = tmp_path_factory.mktemp("mixed")
    n = frozen_vla.normalizer
    meta = DatasetMeta(fps=10.0, camera_names=["left", "front", "right"], image_size=[32, 32],
                       arm_joint_names=[f"a{i}" for i in range(7)],
                       hand_joint_names=[f"h{i}" for i in range(n.state_dim - 7)], tasks=["press_button"])
    rng = np.random.default_rng(0)
    for eid, info in INFOS.items():
        arrays = {
            "color": rng.integers(0, 256, size=(T, 3, 32, 32, 3), dtype=np.uint8),
            "state": (n.state_mean + 0.01 * rng.normal(size=(T, n.state_dim))).astype(np.float32),
            "action": (n.action_mean + 0.01 * rng.normal(size=(T, n.action_dim))).astype(np.float32),
            "depth": np.ones((T, 3, 32, 32), np.float32),
            "is_intervention": np.zeros(T, bool),
            "beta": np.zeros(T, np.float32),
            "reward": np.full(T, -0.01, np.float32),
            "done": np.eye(1, T, T - 1, dtype=bool)[0] if info["success"] else np.zeros(T, bool),
        }
        outcome = "success" if info["success"] else "failure"
        write_episode(root, eid, arrays, {"task": "press_button", "instruction": "press the button",
                                          "outcome": outcome, **info}, meta)
    return root


def _episodes(vla, data, which: str) -> list[int]:
    n = vla.normalizer
    spec = ReplaySpec(vla.z_dim, n.state_dim, n.action_dim, vla.k, n.version)
    buf = offline_buffer(vla, data, spec, vla.k, RewardConfig(), progress=False, episodes=which)
    return sorted(set(buf.arrays()["episode"].tolist()))


@pytest.mark.parametrize("which, want", [("all", [3, 4, 5, 6]), ("successful", [3, 4, 6]), ("clean", [3, 6])])
def test_the_filter_decides_which_episodes_enter_d_offline(frozen_vla, dataset, which, want):
    assert _episodes(frozen_vla, dataset, which) == want


def test_the_run_config_reaches_the_buffer_and_max_episodes_counts_after_the_filter(frozen_vla, dataset):
    cfg = load_config(OnlineRunConfig, {"task": "press_button", "offline_episodes": "successful",
                                        "max_offline_episodes": 2})
    n = frozen_vla.normalizer
    spec = ReplaySpec(frozen_vla.z_dim, n.state_dim, n.action_dim, frozen_vla.k, n.version)
    buf = offline_buffer_for(cfg, frozen_vla, dataset, spec, progress=False)
    assert sorted(set(buf.arrays()["episode"].tolist())) == [3, 4]


def test_rows_with_an_offline_stride_above_k_carry_their_episodes_returns(frozen_vla, dataset):
    """``offline_stride`` 10 > k = 8: rows at steps 0 and 10, steps 8 and 9 in none. The rows store the Monte-Carlo
    returns of the whole episode (``online.gamma`` 0.5; found in review 2026-12-08), by hand for episode 3 with the
    default RewardConfig (time penalty 0.002, success +1 on step 11): G_11 = 0.998, G_j = -0.002 + 0.5 G_{j+1}; the
    rows alone (steps 8, 9 as reward 0) gave G_7 = 0.060125 instead of 0.058625."""
    cfg = load_config(OnlineRunConfig, {"task": "press_button", "offline_stride": 10, "online": {"gamma": 0.5}})
    n = frozen_vla.normalizer
    spec = ReplaySpec(frozen_vla.z_dim, n.state_dim, n.action_dim, frozen_vla.k, n.version)
    buf = offline_buffer_for(cfg, frozen_vla, dataset, spec, progress=False)
    rows = buf.arrays()
    sel = np.flatnonzero(rows["episode"] == 3)
    assert rows["step"][sel].tolist() == [0, 10]
    g = [0.998]
    for _ in range(11):
        g.insert(0, -0.002 + 0.5 * g[0])
    np.testing.assert_allclose(buf.returns(0.5)[sel], [g[0:8], g[10:12] + [0.0] * 6], atol=1e-7)
    assert buf.returns(0.5)[sel[0], 7] == pytest.approx(0.058625, abs=1e-7)


def test_bad_filter_and_empty_selection_are_one_line_errors(frozen_vla, dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"OnlineRunConfig.offline_episodes: 'good' is not one of"):
        load_config(OnlineRunConfig, {"task": "press_button", "offline_episodes": "good"})
    # a dataset of the failed episode only: "successful" keeps nothing
    import shutil

    only = tmp_path / "failed"
    (only / "episodes").mkdir(parents=True)
    shutil.copy(dataset / "meta.json", only / "meta.json")
    for ext in (".json", ".npz"):
        shutil.copy(dataset / "episodes" / f"episode_000005{ext}", only / "episodes")
    with pytest.raises(ValueError, match=r"OnlineRunConfig.offline_episodes = 'successful': .* has no such episodes"):
        _episodes(frozen_vla, only, "successful")
