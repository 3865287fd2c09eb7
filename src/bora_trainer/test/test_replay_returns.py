"""Monte-Carlo returns of replay rows whose chunks do not tile their episode (found in review 2026-12-08).

Rows made from an episode store ``returns`` computed from the episode's FULL reward/done arrays: a step no row covers
(chunk starts 0 and 6 with k = 4: steps 4, 5; ``offline_stride`` > k; a recording's dropped ActionChunk) counts with
its reward, not as 0. Rows without stored returns still get the rebuild from the rows. Hand-computed with gamma = 0.5:

* ``write_synthetic_dataset`` episode 0 (reward -0.01 per step, +1 on the success step 9):
  ``G_9..G_6 = 0.99, 0.485, 0.2325, 0.10625``, ``G_5 = 0.043125``, ``G_4 = 0.0115625``, ``G_3 = -0.00421875``,
  ``G_2 = -0.012109375``, ``G_1 = -0.0160546875``, ``G_0 = -0.01802734375`` (the reviewer's ChunkDataset values;
  the rows alone gave ``G_3 = +0.00328``: steps 4, 5 as 0);
* episode 2 (time limit after 10 steps, -0.01 each, summed to the limit): ``G_j = -0.02 (1 - 0.5^(10 - j))``, so
  ``G_0..G_3 = -0.01998046875, -0.0199609375, -0.019921875, -0.01984375`` and ``G_6..G_9 = -0.01875, -0.0175,
  -0.015, -0.01``;
* default RewardConfig (time penalty 0.002, success +1) on a 12-step success: ``G_11 = 0.998``, ``G_10 = 0.497``,
  ``G_9 = 0.2465``, ``G_8 = 0.12125``, ``G_7 = 0.058625``, ``G_6 = 0.0273125``, ``G_5 = 0.01165625``,
  ``G_4 = 0.003828125``, ``G_3 = -0.0000859375``, ``G_2 = -0.00204296875``, ``G_1 = -0.003021484375``,
  ``G_0 = -0.0035107421875``.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bora_policy.common.episodes import read_episode
from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig, write_synthetic_dataset
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplayError, ReplaySpec, chunk_transitions

K, GAMMA, Z = 4, 0.5, 3
SUCCESS = [-0.01802734375, -0.0160546875, -0.012109375, -0.00421875, 0.0115625, 0.043125,
           0.10625, 0.2325, 0.485, 0.99]
TIMEOUT = [-0.02 * (1 - 0.5 ** (10 - j)) for j in range(10)]
ROS12 = [-0.0035107421875, -0.003021484375, -0.00204296875, -0.0000859375, 0.003828125, 0.01165625,
         0.0273125, 0.058625, 0.12125, 0.2465, 0.497, 0.998]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds"), n_episodes=3, T=10, image_size=(8, 8))


def _rows(rew, done, starts, gamma=GAMMA, episode=0, A=2):
    T, n = len(rew), len(starts)
    return chunk_transitions(
        np.zeros((T, A), np.float32), np.asarray(rew, np.float32), np.asarray(done, bool), np.asarray(starts),
        np.zeros((n, Z), np.float32), np.zeros((n, A), np.float32), np.zeros((n, K, A), np.float32), K,
        episode=episode, gamma=gamma,
    )


def _buffer(rows, root=None):
    A = rows["action"].shape[2]
    buf = ChunkReplayBuffer(ReplaySpec(Z, A, A, K, "t"), root)
    buf.add(rows)
    return buf


def _ep(ds, eid):
    a, _ = read_episode(ds, eid, load_images=False)
    return a["reward"], a["done"]


def test_reviewers_example_equals_the_offline_chunk_dataset(ds):
    buf = _buffer(_rows(*_ep(ds, 0), (0, 6)))
    g = buf.returns(GAMMA)
    np.testing.assert_allclose(g[0], SUCCESS[0:4], atol=1e-7)
    np.testing.assert_allclose(g[1], SUCCESS[6:10], atol=1e-7)
    data = ChunkDataset(ds, ChunkDatasetConfig(k=K, gamma=GAMMA))  # episode 0's samples: index = start step
    np.testing.assert_allclose(g[0], data[0]["returns"].numpy(), atol=1e-7)
    np.testing.assert_allclose(g[1], data[6]["returns"].numpy(), atol=1e-7)


def test_time_limit_is_summed_to_without_a_bootstrap(ds):
    rew, done = _ep(ds, 2)
    assert not done.any()
    g = _buffer(_rows(rew, done, (0, 6), episode=2)).returns(GAMMA)
    np.testing.assert_allclose(g, [TIMEOUT[0:4], TIMEOUT[6:10]], atol=1e-7)


def test_a_terminal_stops_the_sum_also_in_steps_no_row_covers():
    """12 steps, -0.1 each, +1 on the terminal step 5, rows at 0 and 4 (k = 4): steps 8-11 (after the terminal) are
    in no row. G_5 = 0.9 (the terminal's own reward only), G_4 = -0.1 + 0.45 = 0.35, G_3 = 0.075, G_2 = -0.0625,
    G_1 = -0.13125, G_0 = -0.165625; after it G_8 = -0.1875 (steps 8-11), G_7 = -0.19375, G_6 = -0.196875 (the rows
    alone: G_7 = -0.1, G_6 = -0.15)."""
    rew = np.full(12, -0.1)
    rew[5] = 0.9
    done = np.arange(12) == 5
    rows = _rows(rew, done, (0, 4))
    assert rows["mask"][1].tolist() == [True, True, False, False]  # Eq. 3: the steps after the terminal
    g = _buffer(rows).returns(GAMMA)
    np.testing.assert_allclose(g[0], [-0.165625, -0.13125, -0.0625, 0.075], atol=1e-7)
    np.testing.assert_allclose(g[1], [0.35, 0.9, -0.196875, -0.19375], atol=1e-7)


def test_rows_without_stored_returns_are_rebuilt_and_another_gamma_is_said(ds, caplog):
    rew, done = _ep(ds, 2)
    tiled = _rows(rew, done, (0, 4, 8), gamma=None, episode=2)  # hand-made / older rows: no returns
    assert "returns" not in tiled
    buf = _buffer(tiled)
    assert buf.arrays()["returns_gamma"].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(buf.returns(GAMMA), [TIMEOUT[0:4], TIMEOUT[4:8], TIMEOUT[8:] + [0, 0]], atol=1e-7)
    # stored with another discount: rebuilt from the rows (here they tile the episode: exact), and said once
    other = _buffer(_rows(rew, done, (0, 4, 8), gamma=0.9, episode=2))
    with caplog.at_level(logging.WARNING, logger="bora_trainer.replay"):
        np.testing.assert_allclose(other.returns(GAMMA), buf.returns(GAMMA), atol=1e-7)
    assert "store Monte-Carlo returns of gamma [0.9], not 0.5" in caplog.text
    with pytest.raises(ReplayError, match="'returns' and 'returns_gamma' come together"):
        buf.add(tiled | {"returns": np.zeros((3, K))})
    with pytest.raises(ReplayError, match="field 'returns_gamma' must be in"):
        buf.add(tiled | {"returns": np.zeros((3, K)), "returns_gamma": np.full(3, 1.5)})


def test_save_load_round_trip_keeps_them_and_an_older_shard_still_loads(ds, tmp_path):
    rew, done = _ep(ds, 0)
    buf = _buffer(_rows(rew, done, (0, 6)), tmp_path / "rb")
    buf.flush()
    re = ChunkReplayBuffer.open(tmp_path / "rb")
    assert re.arrays()["returns_gamma"].tolist() == [GAMMA, GAMMA]
    np.testing.assert_allclose(re.returns(GAMMA), [SUCCESS[0:4], SUCCESS[6:10]], atol=1e-7)
    # a shard of an older version (no returns fields) next to it: its rows load with none stored, rebuilt
    old = _rows(*_ep(ds, 2), (0, 4, 8), gamma=None, episode=2)
    np.savez(tmp_path / "rb" / "shard_000001.npz", **old)
    both = ChunkReplayBuffer.open(tmp_path / "rb")
    np.testing.assert_allclose(both.returns(GAMMA)[2:], [TIMEOUT[0:4], TIMEOUT[4:8], TIMEOUT[8:] + [0, 0]],
                               atol=1e-7)
    np.testing.assert_allclose(both.returns(GAMMA)[:2], [SUCCESS[0:4], SUCCESS[6:10]], atol=1e-7)


def test_the_sampler_takes_the_stored_returns_and_batches_keep_their_fields(ds):
    off = _buffer(_rows(*_ep(ds, 0), (0, 6)))
    on = _buffer(_rows(*_ep(ds, 2), (0, 6), episode=2))
    b = MixedSampler(off, on, 8, seed=0, returns_gamma=GAMMA).sample_arrays()
    want = {(False, 0): SUCCESS[0:4], (False, 6): SUCCESS[6:10], (True, 0): TIMEOUT[0:4], (True, 6): TIMEOUT[6:10]}
    for o, s, g in zip(b["is_online"], b["step"], b["returns"]):
        np.testing.assert_allclose(g, want[(bool(o), int(s))], atol=1e-7)
    plain = MixedSampler(off, on, 8, seed=0).sample_arrays()
    assert "returns" not in plain and "returns_gamma" not in plain and "returns_gamma" not in b


def test_rollout_rows_store_the_returns():
    from bora_policy.models.normalizer import Normalizer
    from bora_trainer.online.env_sim import rollout_rows

    rew = np.full(12, -0.1)
    rew[5] = 0.9
    done = np.arange(12) == 5
    n = 2
    ep = {"arrays": {"action": np.zeros((12, 2), np.float32), "reward": rew, "done": done,
                     "is_intervention": np.zeros(12, bool), "beta": np.zeros(12, np.float32)},
          "chunks": {"starts": np.array([0, 4]), "z": np.zeros((n, Z), np.float32), "vla": np.zeros((n, K, 2)),
                     "base": np.zeros((n, K, 2)), "proprio": np.zeros((n, 2)), "final": None}}
    rows = rollout_rows(ep, Normalizer.identity(2, 2), K, 0, gamma=GAMMA)
    np.testing.assert_allclose(rows["returns"][1], [0.35, 0.9, -0.196875, -0.19375], atol=1e-7)
    assert "returns" not in rollout_rows(ep, Normalizer.identity(2, 2), K, 0)


def test_a_recording_whose_action_chunk_was_dropped(tmp_path):
    """A 12-step success recorded with chunks at 0, 4, 8 (k = 4); the ActionChunk at step 4 is not recorded, so
    steps 4-7 are in no row. Converted for real (``bora bag convert``), D_offline built from it: the rows' returns
    are those of the whole episode (module docstring), not of its covered steps."""
    from bora_policy.models.normalizer import Normalizer
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_convert import ConvertConfig, convert
    from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
    from bora_trainer.online.env_ros import build_offline_buffer

    norm = Normalizer.identity(9, 9)
    write_scripted_bag(tmp_path / "bag", [ScriptedEpisode(1, 12)], BagLayout(normalizer_version=norm.version),
                       keep=lambda topic, m: not (topic == S.T_ACTION_CHUNK and m.step == 4))
    convert([tmp_path / "bag"], tmp_path / "conv", ConvertConfig(transitions_only=True))
    buf = build_offline_buffer(tmp_path / "conv", tmp_path / "buf", norm, gamma=GAMMA)
    rows = buf.arrays()
    assert rows["step"].tolist() == [0, 8]
    np.testing.assert_allclose(buf.returns(GAMMA), [ROS12[0:4], ROS12[8:12]], atol=1e-7)
    # rows without stored returns (no gamma given, as rows of an older conversion): the rows' rebuild counts steps
    # 4-7 as 0, so G_3 = -0.002 + 0.5^5 G_8
    old = build_offline_buffer(tmp_path / "conv", tmp_path / "buf_old", norm)
    assert old.arrays()["returns_gamma"].tolist() == [0.0, 0.0]
    assert old.returns(GAMMA)[0, 3] == pytest.approx(-0.002 + 0.5 ** 5 * 0.12125, abs=1e-7)


def test_a_lerobot_export_and_import_of_the_buffer_keeps_them(ds, tmp_path):
    from bora_trainer.data.lerobot import export_replay, import_dataset

    buf = _buffer(_rows(*_ep(ds, 0), (0, 6)), tmp_path / "rb")
    buf.flush()
    export_replay(tmp_path / "rb", tmp_path / "lr")
    back = ChunkReplayBuffer.open(import_dataset(tmp_path / "lr", tmp_path / "rb2"))
    assert back.arrays()["returns_gamma"].tolist() == [GAMMA, GAMMA]
    np.testing.assert_allclose(back.returns(GAMMA), [SUCCESS[0:4], SUCCESS[6:10]], atol=1e-7)
