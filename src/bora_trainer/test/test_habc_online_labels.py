"""Online HABC rows get their labels in both online loops (issue 14, defect 2).

ROS loop: tested at the trainer's ingest level (the one loop on recordings, what the trainer node runs), fed
by real rosbag2 recordings converted by ``bag_convert``; a full graph run is left to test_online_ros (too
slow to repeat per algorithm on 2 cores). In-process loop: ``bora train online --env sim --algo habc`` end to
end (slow), checked through the labelled-row count its updates report.

Hand-computed labels (HABC Sec. 1, ``habc-method.md``; k = 4, T = 16, rows at t = 0, 4, 8, 12):
* episode 0, success, takeover on steps 4..7: row 0 is a policy window BEFORE the post-intervention suffix
  (unlabelled), row 4 is an intervention window (never outcome-labelled), rows 8 and 12 are the suffix:
  label 1;
* episode 1, failure, no takeover: every row is a policy window labelled 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.models.normalizer import Normalizer
from bora_trainer.algorithms.habc.labels import KIND_INTERVENTION, KIND_POLICY, LABEL_NONE
from bora_trainer.config_io import load_config
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.replay import to_torch
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, ros_loop
from bora_trainer.online.loop import OnlineLoop

NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)
T_EP = 16
WANT_LABEL = [LABEL_NONE, LABEL_NONE, 1, 1, 0, 0, 0, 0]
WANT_KIND = [KIND_POLICY, KIND_INTERVENTION, KIND_POLICY, KIND_POLICY] + [KIND_POLICY] * 4


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _loop(tmp: Path) -> OnlineLoop:
    cfg = load_config(
        TrainerConfig,
        {
            "recordings": str(tmp / "recordings"),
            "state_dir": str(tmp / "state"),
            "offline_buffer": str(tmp / "offline_buffer"),
            "normalizer": str(tmp / "normalizer.json"),
            "utd_ratio": 0.125,
            "checkpoint_every": 1000,
            "episodes_per_round": 2,
            "critic_hidden_dim": 16,
            "critic_pos_dim": 8,
            "device": "cpu",
            "online": {
                "algo": "habc",
                "batch_size": 8,
                "n_start": 4,
                "residual": {"hidden_dims": [16]},
                "objective_options": {"hidden": 16, "n_warmup": 1},
            },
        },
    )
    return ros_loop(cfg)


def _labels(loop: OnlineLoop) -> dict[str, list]:
    b = to_torch(loop.online.arrays())
    b["is_online"] = torch.ones(len(loop.online), dtype=torch.bool)
    lab = loop.learner.objective.row_labels(b)
    return {k: v.tolist() for k, v in lab.items()}


def test_ros_loop_labels_ingested_episodes_across_rounds_and_resume(tmp_path):
    write_scripted_bag(tmp_path / "offline_bag", [ScriptedEpisode(100, T_EP, "success")], LAY)
    convert([tmp_path / "offline_bag"], tmp_path / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp_path / "offline_conv", tmp_path / "offline_buffer", NORM)
    NORM.save(tmp_path / "normalizer.json")
    (tmp_path / "recordings").mkdir()
    loop = _loop(tmp_path)
    eps = [ScriptedEpisode(1, T_EP, "success", takeovers=[(4, 8, None)]), ScriptedEpisode(2, T_EP, "failure")]
    write_scripted_bag(tmp_path / "recordings" / "bag_1", eps, LAY)
    assert loop.collect() == 2
    assert loop.online.arrays()["episode"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    lab = _labels(loop)
    assert lab["kind"] == WANT_KIND
    assert lab["label"] == WANT_LABEL
    # D_succ: the success episode's labelled suffix and its intervention window; nothing of the failure
    assert lab["in_succ"] == [False, True, True, True] + [False] * 4
    # the updates see them: the viability head trains on the 6 labelled rows when they are sampled
    assert loop.train() == 4 and loop.round == 2  # 0.125 x 32 steps; the round closes (2 episodes)
    assert _labels(loop)["label"] == WANT_LABEL  # round 2's fresh learner was told the episodes again
    info = loop.learner.update(loop._sampler_for().sample())
    assert np.isfinite(info["habc/n_labelled"])
    # a restarted trainer (resume) labels the rows already in its buffer
    loop2 = _loop(tmp_path)
    assert loop2.round == 2 and _labels(loop2)["label"] == WANT_LABEL


@pytest.mark.slow
def test_in_process_loop_labels_online_rows(tmp_path):
    from bora_trainer.cli import main as bora

    ds, off, on = tmp_path / "ds", tmp_path / "off", tmp_path / "on"
    argv = ["sim", "collect", "--task", "press_button", "--episodes", "2", "--out", str(ds), "--image-size", "32"]
    assert bora(argv) == 0
    cfg = tmp_path / "off.yaml"
    cfg.write_text(
        "algo: bora\ntotal_updates: 2\nbatch_size: 4\nk: 8\nckpt_every: 2\n"
        "model: {vlm: paligemma-tiny, expert: {hidden_dim: 32, num_blocks: 1, cond_dim: 16}}\n"
    )
    argv = ["train", "offline", "--data", str(ds), "--config", str(cfg), "--out", str(off), "--no-progress"]
    assert bora(argv) == 0
    ocfg = tmp_path / "on.yaml"
    ocfg.write_text(
        "task: press_button\nepisodes_per_round: 2\nupdates_per_env_step: 0.05\noperator: {budget: 0}\n"
        "online: {algo: habc, batch_size: 8, n_start: 1, residual: {hidden_dims: [16]},"
        " objective_options: {hidden: 16, n_warmup: 1}}\n"
    )
    argv = ["train", "online", "--env", "sim", "--rounds", "2", "--offline-run", str(off), "--offline-data",
            str(ds), "--out", str(on), "--config", str(ocfg), "--no-progress"]
    assert bora(argv) == 0
    summary = json.loads((on / "summary.json").read_text())
    # every online row of an episode without takeovers is labelled with its outcome, so batches (half
    # online rows) hold labelled rows in both rounds (before the fix: 0, the critic loss was 0)
    for r in summary["rounds"]:
        assert r["update_means"]["habc/n_labelled"] > 0, r
