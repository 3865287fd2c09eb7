"""The one online loop folds the same rounds with either environment's episode source.

The same recorded episodes (a real rosbag2 recording of five scripted episodes, converted by
``bag_convert``) reach the loop two ways:

* env ros (:class:`RosEpisodes`): the trainer's way - the recording is watched, all five finished
  episodes are there at the first poll, the loop takes the two a round wants and the rest wait;
* env sim (:class:`SimEpisodes`): the in-process way - one episode per poll, produced only while the
  round wants one (here the producer hands out the converted recording in order instead of a MuJoCo
  rollout, so both runs see the same episodes).

Expectations by hand (k = 4, T = 16, M = 2 episodes per round, 2 rounds, utd 0.5, n_start 8): each
episode gives 16 / 4 = 4 rows; a round's budget is floor(0.5 x 32) = 16 updates; lambda_1 = alpha_t
after 16 updates = 0.2 + 0.4 x 16 / 32 = 0.4; episodes 1, 2 fold into round 1, 3, 4 into round 2,
episode 5 never enters (the env sim source is never even asked for it). With n_start 8 no update runs
before both round-1 episodes are in, in either run, so round 1 trains on the same rows with the same
seeds: the frozen residual_1 must be bit-identical, and so must every rebased base chunk - also when
the env sim run is stopped after round 1 and resumed from its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bora_policy.models.normalizer import Normalizer
from bora_trainer.checkpoint import latest_checkpoint, load_checkpoint
from bora_trainer.config_io import load_config
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig
from bora_trainer.online.env_ros import build_offline_buffer, replay_rows, ros_loop
from bora_trainer.online.env_sim import SimEpisodes
from bora_trainer.online.loop import OnlineLoop
from bora_trainer.online.source import Episode

NORM = Normalizer.identity(9, 9)
LAY = BagLayout(normalizer_version=NORM.version)
A0, A1, TA = 0.2, 0.6, 32


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cfg(tmp: Path, state: str, n_start: int = 8) -> TrainerConfig:
    return load_config(
        TrainerConfig,
        {
            "recordings": str(tmp / "recordings"),
            "state_dir": str(tmp / state),
            "offline_buffer": str(tmp / "offline_buffer"),
            "normalizer": str(tmp / "normalizer.json"),
            "utd_ratio": 0.5,
            "checkpoint_every": 1000,
            "episodes_per_round": 2,
            "rounds": 2,
            "critic_hidden_dim": 32,
            "critic_pos_dim": 8,
            "device": "cpu",
            "online": {
                "batch_size": 8,
                "n_start": n_start,
                "residual": {"hidden_dims": [16], "alpha_start": A0, "alpha_end": A1, "alpha_warmup_steps": TA},
            },
        },
    )


def _bounded(n: int = 50):
    """should_stop for OnlineLoop.run: a loop that never finishes fails the checks instead of hanging."""
    calls = iter(range(10 * n))
    return lambda: next(calls) >= n


def _ledger(loop: OnlineLoop) -> list[tuple]:
    return [
        (e["source_episode_id"], e["round"], e["rows"], e["num_steps"], e["outcome"])
        for e in (loop.ledger[name] for name in sorted(loop.ledger))
    ]


def test_env_sim_and_env_ros_sources_fold_the_same_rounds(tmp_path):
    write_scripted_bag(tmp_path / "offline_bag", [ScriptedEpisode(100, 16), ScriptedEpisode(101, 16)], LAY)
    convert([tmp_path / "offline_bag"], tmp_path / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp_path / "offline_conv", tmp_path / "offline_buffer", NORM)
    NORM.save(tmp_path / "normalizer.json")
    eps = [
        ScriptedEpisode(i, 16, "success" if i % 2 else "failure", takeovers=[(4, 8, 8)] if i == 3 else [])
        for i in range(1, 6)
    ]
    write_scripted_bag(tmp_path / "recordings" / "bag_1", eps, LAY)

    # ---------------- env ros: the loop watches the recording
    ros = ros_loop(_cfg(tmp_path, "ros"))
    ros.run(should_stop=_bounded())

    # ---------------- env sim: one episode per poll, the same recorded episodes in order
    rep = convert([tmp_path / "recordings" / "bag_1"], tmp_path / "sim_conv", ConvertConfig(transitions_only=True))
    recorded = sorted(
        (read_transitions(tmp_path / "sim_conv", e.episode_id) for e in rep.episodes),
        key=lambda x: x[1]["source_episode_id"],
    )
    asked: list[tuple[int, int]] = []

    def produce(loop: OnlineLoop) -> Episode:
        asked.append((loop.round, loop.in_round))
        arrays, info = recorded[len(asked) - 1]
        return Episode(replay_rows(arrays, loop.normalizer), info)

    first = OnlineLoop(_cfg(tmp_path, "sim"), SimEpisodes(produce))
    first.run(should_stop=lambda: first.round >= 2)  # stopped (killed) once round 1 is folded
    assert (first.round, first.in_round, len(asked)) == (2, 0, 2)
    sim = OnlineLoop(_cfg(tmp_path, "sim"), SimEpisodes(produce))  # resumes round 2 from RUN/latest
    assert (sim.round, sim.update_step, len(sim.frozen), sim.num_episodes) == (2, 16, 1, 2)
    sim.run(should_stop=_bounded())
    again = OnlineLoop(_cfg(tmp_path, "sim"), SimEpisodes(produce))  # a finished run stays finished
    again.run(should_stop=_bounded())
    assert again.finished and again.round == 2 and again.num_episodes == 4

    # ---------------- the same rounds, by hand
    want = [(1, 1, 4, 16, "success"), (2, 1, 4, 16, "failure"), (3, 2, 4, 16, "success"), (4, 2, 4, 16, "failure")]
    assert _ledger(ros) == _ledger(sim) == want
    assert asked == [(1, 0), (1, 1), (2, 0), (2, 1)]  # env sim: asked exactly for M per round, never for a 5th
    for loop in (ros, sim):
        assert loop.finished and loop.round == 2 and loop.wanted == 0 and loop.episode_gate() == 4
        assert len(loop.online) == 16 and loop.update_step == 32
        assert [loop.round_log[r]["updates"] for r in ("1", "2")] == [16, 16]
        assert [r["intervened_steps"] for r in loop.summary()] == [0, 4]
        assert [r["takeovers"] for r in loop.summary()] == [0, 1]  # episode 3's one takeover (steps 4-7)
        assert [float(f.lam) for f in loop.frozen] == pytest.approx([A0 + (A1 - A0) * 16 / TA])
        assert [load_checkpoint(latest_checkpoint(loop.round_dir(r)))["step"] for r in (1, 2)] == [16, 32]
    # round 1 trained on the same rows with the same seeds: the same frozen residual, bit for bit
    w_ros, w_sim = ros.frozen[0].actor.state_dict(), sim.frozen[0].actor.state_dict()
    assert w_ros.keys() == w_sim.keys() and all(torch.equal(w_ros[k], w_sim[k]) for k in w_ros)
    # ... so the rebased base chunks agree: offline rows and round-1 rows refolded, round-2 rows as recorded
    for name in ("offline", "online"):
        a, b = getattr(ros, name).arrays(), getattr(sim, name).arrays()
        for key in ("base", "next_base", "vla", "action", "reward", "episode"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")
    recorded_base = np.concatenate([recorded[i][0]["base"] for i in range(4)])
    rows2 = sim.online.arrays()["episode"] >= 2
    np.testing.assert_array_equal(sim.online.arrays()["base"][rows2], recorded_base[rows2])
    assert not np.allclose(sim.online.arrays()["base"][~rows2], recorded_base[~rows2])  # round-1 rows refolded


def test_rounds_below_n_start_end_without_updates(tmp_path):
    """Algorithm 1 updates only once |D_online| >= N_start: 2 rounds x 2 episodes x 4 rows = 16 rows
    never reach n_start 100, so each full round ends with 0 updates instead of waiting for ever."""
    write_scripted_bag(tmp_path / "offline_bag", [ScriptedEpisode(100, 16)], LAY)
    convert([tmp_path / "offline_bag"], tmp_path / "offline_conv", ConvertConfig(transitions_only=True))
    build_offline_buffer(tmp_path / "offline_conv", tmp_path / "offline_buffer", NORM)
    NORM.save(tmp_path / "normalizer.json")
    write_scripted_bag(tmp_path / "recordings" / "bag_1", [ScriptedEpisode(i, 16) for i in range(1, 6)], LAY)
    loop = ros_loop(_cfg(tmp_path, "ros", n_start=100))
    loop.run(should_stop=_bounded())
    assert loop.finished and loop.update_step == 0 and len(loop.online) == 16
    assert [loop.round_log[r]["updates"] for r in ("1", "2")] == [0, 0]
    assert [e["round"] for e in loop.ledger.values()] == [1, 1, 2, 2]


def test_recorded_rows_are_clipped_like_the_simulated_ones():
    """The trainer node's rows (recordings) clip the normalised executed action at +-action_clip, as the simulated
    loop and D_offline do; 0 keeps it. Identity normaliser: normalised = physical."""
    from bora_trainer.online.config import OnlineRunConfig, TrainerConfig, trainer_config_for

    a = np.zeros((3, 9), np.float32)
    a[0, 0], a[1, 4], a[2, 8] = 40.0, -7.5, 2.0
    rows = replay_rows({"action_physical": a}, NORM, action_clip=5.0)
    np.testing.assert_allclose(rows["action"][:, [0, 4, 8]], [[5.0, 0, 0], [0, -5.0, 0], [0, 0, 2.0]], atol=1e-5)
    np.testing.assert_allclose(replay_rows({"action_physical": a}, NORM)["action"], a, atol=1e-4)  # off
    assert TrainerConfig().action_clip == OnlineRunConfig().action_clip == 5.0
    cfg = OnlineRunConfig(action_clip=3.0)
    assert trainer_config_for(cfg, "off", "out")["action_clip"] == 3.0
