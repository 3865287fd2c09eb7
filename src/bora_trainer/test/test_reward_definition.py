"""One reward definition from the offline data to the online phase (issue 14, the audit of the critic).

The simulator's datasets store ``SIM_REWARD`` rewards (time penalty 0.01); the online phase used to compute its
rewards with ``RewardConfig()`` (0.002) while inheriting, and anchoring to, a critic trained on 0.01. The
dataset now records its definition (``meta.json`` ``reward``) and ``bora train online`` takes it from there.
"""

import dataclasses
import json

import numpy as np
import pytest

from bora_policy.common.episodes import DatasetMeta, EpisodeFormatError, read_meta, write_meta
from bora_policy.common.rewards import SIM_REWARD, RewardConfig
from bora_trainer.online.config import OnlineRunConfig, resolve_reward


def _meta(reward):
    return DatasetMeta(fps=10.0, camera_names=["c"], image_size=[8, 8], arm_joint_names=["a"],
                       hand_joint_names=[], tasks=["t"], reward=reward)


def test_meta_records_one_definition(tmp_path):
    sim = dataclasses.asdict(SIM_REWARD)
    write_meta(tmp_path, _meta(sim))
    assert read_meta(tmp_path).reward == sim and json.loads((tmp_path / "meta.json").read_text())["reward"] == sim
    write_meta(tmp_path, _meta(dict(sim)))  # the same definition again: fine
    other = dict(sim, time_penalty=0.002)
    with pytest.raises(EpisodeFormatError, match="reward"):
        write_meta(tmp_path, _meta(other))
    assert read_meta(tmp_path).reward == sim  # the refused write changed nothing


def test_meta_without_a_definition_stays_unknown(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    old = _meta(None).to_dict()
    old.pop("reward")  # a meta.json written before the field existed
    (d / "meta.json").write_text(json.dumps(old))
    assert read_meta(d).reward is None
    write_meta(d, _meta(dataclasses.asdict(SIM_REWARD)))  # appending recorded episodes cannot vouch for the old
    assert read_meta(d).reward is None


def test_collected_rewards_match_the_recorded_definition(tmp_path):
    from bora_policy.common.episodes import read_episode
    from bora_trainer.collect import main

    out = tmp_path / "ds"
    assert main(["collect", "--task", "press_button", "--episodes", "1", "--out", str(out), "--image-size", "16",
                 "--seed", "3"]) == 0
    rec = read_meta(out).reward
    assert rec == {"success_reward": 1.0, "failure_reward": 0.0, "time_penalty": 0.01,
                   "intervention_penalty": -0.3, "recovery_bonus": 0.2}
    arrays, info = read_episode(out, 0)
    r = arrays["reward"]
    # every step but a successful last one is -time_penalty; the last adds the success reward
    np.testing.assert_allclose(r[:-1], -rec["time_penalty"])
    assert r[-1] == pytest.approx((rec["success_reward"] if info["success"] else 0.0) - rec["time_penalty"])


def _data(tmp_path, reward):
    root = tmp_path / "data"
    write_meta(root, _meta(reward))
    return root


def test_online_takes_the_data_definition(tmp_path):
    cfg = OnlineRunConfig()
    assert cfg.reward.time_penalty == 0.002  # RewardConfig() default
    assert resolve_reward(cfg, _data(tmp_path, dataclasses.asdict(SIM_REWARD)), explicit=None) == ""
    assert cfg.reward == SIM_REWARD and cfg.reward.time_penalty == 0.01


def test_online_explicit_fields_override_the_data_field_by_field(tmp_path):
    data = _data(tmp_path, dataclasses.asdict(SIM_REWARD))
    cfg = OnlineRunConfig(reward=RewardConfig(intervention_penalty=-1.0))  # as load_config builds it
    note = resolve_reward(cfg, data, explicit={"intervention_penalty": -1.0})
    # the set field wins, the others are the data's (time_penalty 0.01, not RewardConfig()'s 0.002)
    assert cfg.reward == dataclasses.replace(SIM_REWARD, intervention_penalty=-1.0)
    assert "intervention_penalty -1 (data -0.3)" in note and "time_penalty" not in note
    cfg2 = OnlineRunConfig(reward=RewardConfig(time_penalty=0.01))
    assert resolve_reward(cfg2, data, explicit={"time_penalty": 0.01}) == ""  # the same as the data's: silent
    assert cfg2.reward == SIM_REWARD


def test_online_data_without_a_definition_warns(tmp_path):
    cfg = OnlineRunConfig()
    note = resolve_reward(cfg, _data(tmp_path, None), explicit=None)
    assert "does not record" in note and "time_penalty: 0.01" in note
    assert cfg.reward == RewardConfig()


def test_online_cli_resolves_before_training(tmp_path, capsys):
    """The CLI prints the note and stops at the first missing input (a bad offline run), after resolving."""
    from bora_trainer.online.cli import main

    data = _data(tmp_path, None)
    rc = main(["--offline-run", str(tmp_path / "nowhere"), "--offline-data", str(data), "--out", str(tmp_path / "o"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not record the reward definition" in err
    assert f"--offline-run {tmp_path / 'nowhere'}: no config.yaml (expected an offline run directory" in err
    assert not (tmp_path / "o").exists()  # stopped before anything was written


def test_rollouts_with_another_definition_are_refused(tmp_path):
    from bora_trainer.data.chunks import MultiChunkDataset, write_synthetic_dataset

    a = write_synthetic_dataset(tmp_path / "a", n_episodes=1, T=6, image_size=(8, 8))
    b = write_synthetic_dataset(tmp_path / "b", n_episodes=1, T=6, image_size=(8, 8))
    for root, tp in ((a, 0.01), (b, 0.002)):
        m = json.loads((root / "meta.json").read_text())
        m["reward"] = dataclasses.asdict(RewardConfig(time_penalty=tp))
        (root / "meta.json").write_text(json.dumps(m))
    with pytest.raises(EpisodeFormatError, match="reward"):
        MultiChunkDataset([a, b])


def test_a_bad_recorded_definition_is_one_line(tmp_path, capsys):
    from bora_trainer.online.cli import main

    data = _data(tmp_path, {"bogus": 1.0})
    with pytest.raises(ValueError, match="meta.json reward: expected RewardConfig fields"):
        resolve_reward(OnlineRunConfig(), data, explicit=None)
    assert main(["--offline-run", str(tmp_path / "r"), "--offline-data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "meta.json reward" in capsys.readouterr().err
