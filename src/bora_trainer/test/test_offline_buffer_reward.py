"""D_offline records the reward definition of its rows, and the online loop (the trainer node's) refuses a
TrainerConfig whose rewards differ: the critic learns one reward scale from both halves of every RLPD batch.

Real pieces: a rosbag2 recording of scripted episodes (``write_scripted_bag``), ``bora bag convert`` with a
chosen RewardConfig, the persisted ChunkReplayBuffer, and the loop constructor the trainer node runs.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bora_policy.common.rewards import RewardConfig
from bora_policy.models.normalizer import Normalizer
from bora_trainer.config_io import load_config
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.replay import ChunkReplayBuffer, MixedSampler, ReplayError, ReplaySpec
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, ros_loop

NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)
SIM = RewardConfig(time_penalty=0.01)  # the simulator's datasets' definition (bora_sim SIM_REWARD)


def _converted(tmp, name: str, rewards: RewardConfig, ids=(100, 101)):
    write_scripted_bag(tmp / f"{name}_bag", [ScriptedEpisode(i, 16) for i in ids], LAY)
    convert([tmp / f"{name}_bag"], tmp / name, ConvertConfig(rewards=rewards, transitions_only=True))
    return tmp / name


def _trainer(tmp, rewards: dict | None = None) -> TrainerConfig:
    cfg = {
        "recordings": str(tmp / "recordings"),
        "state_dir": str(tmp / "state"),
        "offline_buffer": str(tmp / "offline_buffer"),
        "normalizer": str(tmp / "normalizer.json"),
        "critic_hidden_dim": 32,
        "critic_pos_dim": 8,
        "device": "cpu",
        "online": {"batch_size": 8, "n_start": 8, "residual": {"hidden_dims": [16]}},
    }
    if rewards is not None:
        cfg["rewards"] = rewards
    NORM.save(tmp / "normalizer.json")
    return load_config(TrainerConfig, cfg)


def test_offline_buffer_records_the_conversions_reward_definition(tmp_path):
    conv = _converted(tmp_path, "conv", SIM)
    buf = build_offline_buffer(conv, tmp_path / "offline_buffer", NORM)
    want = {"success_reward": 1.0, "failure_reward": 0.0, "time_penalty": 0.01,
            "intervention_penalty": -0.3, "recovery_bonus": 0.2}
    assert buf.spec.reward == want
    # persisted in meta.json and read back
    assert json.loads((tmp_path / "offline_buffer" / "meta.json").read_text())["reward"] == want
    assert ChunkReplayBuffer.open(tmp_path / "offline_buffer").spec.reward == want
    # the rows hold that definition's rewards: a 16-step success in chunks of 4 -> the last row's last step is
    # 1.0 - 0.01 (success reward minus the step's time penalty), every other step -0.01
    r = buf.arrays()["reward"]
    assert np.isclose(r.min(), -0.01) and np.isclose(r.max(), 0.99)


def test_trainer_with_another_reward_definition_is_refused(tmp_path):
    build_offline_buffer(_converted(tmp_path, "conv", SIM), tmp_path / "offline_buffer", NORM)
    with pytest.raises(ValueError, match=r"TrainerConfig.rewards: time_penalty 0.002 \(D_offline 0.01\)"):
        ros_loop(_trainer(tmp_path))  # config/trainer.yaml's default time penalty 0.002
    loop = ros_loop(_trainer(tmp_path, {"time_penalty": 0.01}))
    # the online buffer records the same definition, so the sampler mixes the two halves
    assert loop.online.spec.reward == loop.offline.spec.reward
    meta = json.loads((tmp_path / "state" / "online_buffer" / "meta.json").read_text())
    assert meta["reward"]["time_penalty"] == 0.01


def test_unrecorded_definition_warns_and_the_online_rows_record_theirs(tmp_path, caplog):
    spec = ReplaySpec(8, 9, 9, 4, NORM.version)  # an older D_offline: no reward recorded
    ChunkReplayBuffer(spec, tmp_path / "offline_buffer").flush()
    with caplog.at_level(logging.WARNING, logger="bora_trainer.online"):
        loop = ros_loop(_trainer(tmp_path))
    assert "does not record the reward definition" in caplog.text and "time_penalty 0.002" in caplog.text
    assert loop.online.spec.reward["time_penalty"] == 0.002


def test_mixed_conversions_and_mixed_buffers_are_refused(tmp_path):
    conv = _converted(tmp_path, "conv", SIM)
    # a second recording converted into the same directory with the default definition
    write_scripted_bag(tmp_path / "more_bag", [ScriptedEpisode(102, 16)], LAY)
    convert([tmp_path / "more_bag"], conv, ConvertConfig(transitions_only=True))
    with pytest.raises(ValueError, match="2 reward definitions"):
        build_offline_buffer(conv, tmp_path / "offline_buffer", NORM)
    off = ChunkReplayBuffer(ReplaySpec(8, 9, 9, 4, NORM.version, {"time_penalty": 0.01}))
    on = ChunkReplayBuffer(ReplaySpec(8, 9, 9, 4, NORM.version, {"time_penalty": 0.002}))
    with pytest.raises(ReplayError, match="different definitions"):
        MixedSampler(off, on, 8)
    MixedSampler(off, ChunkReplayBuffer(ReplaySpec(8, 9, 9, 4, NORM.version)), 8)  # unrecorded: not checked


def test_an_online_buffer_of_an_older_version_is_resumed(tmp_path, caplog):
    build_offline_buffer(_converted(tmp_path, "conv", SIM), tmp_path / "offline_buffer", NORM)
    cfg = _trainer(tmp_path, {"time_penalty": 0.01})
    ros_loop(cfg)  # creates state/online_buffer with the definition recorded
    meta_path = tmp_path / "state" / "online_buffer" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("reward")  # as written before the definition was recorded
    meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="bora_trainer.online"):
        loop = ros_loop(cfg)
    assert "records no reward definition (an older version)" in caplog.text
    assert loop.online.spec.reward["time_penalty"] == 0.01
    meta["z_dim"] += 1  # another shape is still refused
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ReplayError, match="differs from the expected"):
        ros_loop(cfg)
