"""bench/runtime_latency.py on a hand-built recording: which command is a chunk's first, the latencies to the
policy command and to the arbiter's executed command, boundary steps against the arbiter's limit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import runtime_latency  # noqa: E402


def test_first_commands_latencies_and_boundary_steps():
    hz = 10.0
    # episode 1: chunks from observations at 0.00 (first of the episode: left out), 0.40 and 0.80; ticks at
    # 0.03 + k / 10; a chunk is first used 30 ms after its observation: index round((t - s) * 10) = 0
    chunks = [(0.0, 1, 0.02), (0.4, 1, 0.42), (0.8, 1, 0.82)]  # each ready (received) 20 ms after its stamp
    cmds = []
    for k in range(12):
        t = 0.03 + k / hz
        s = max(c for c, _, _ in chunks if c <= t - 0.02)
        q = np.array([0.01 * k, 0.0])
        if k == 8:
            q = np.array([0.01 * k, 0.12])  # a step of 0.12 on the hand joint at the boundary of chunk 0.80
        if k > 8:
            q = np.array([0.01 * k, 0.12])
        cmds.append((t, 1, int(round((t - s) * hz)), q))
    execs = [(0.03 + k / hz + 0.05, 1) for k in range(12)]  # the arbiter ticks 50 ms after each command
    r = runtime_latency.analyse(chunks, cmds, execs, hz, hz, blend_steps=2, vmax=([0.5], 1.0))
    assert r["obs_to_command_ms"]["n"] == 2
    assert r["obs_to_command_ms"]["mean"] == pytest.approx(30.0)
    assert r["obs_to_executed_ms"]["max"] == pytest.approx(80.0)
    assert r["obs_to_executed_over_period"] == 0  # 80 ms of a 100 ms period
    r20 = runtime_latency.analyse(chunks, cmds, execs, hz, 20.0, blend_steps=2, vmax=([0.5], 1.0))
    assert r20["obs_to_executed_over_period"] == 2  # both over a 50 ms period
    assert r["obs_to_ready_ms"]["mean"] == pytest.approx(20.0)
    assert r["ready_to_command_ms"]["max"] == pytest.approx(10.0)
    # limits per tick: joint 0 (arm) 0.05 rad, joint 1 (hand) 0.1 rad; steps 0.01 (ratio 0.2), 0.12 (1.2)
    assert r["limit_rad_per_tick"] == pytest.approx([0.05, 0.1])
    assert r["boundary_step_over_limit"]["max"] == pytest.approx(1.2)
    assert r["boundary_step_over_limit"]["n"] == 6  # 2 boundaries x (first + 2 blend ticks)
    assert r["any_step_over_limit"]["p50"] == pytest.approx(0.2)


def test_arbiter_limits_read_from_the_teleop_params_and_the_graph_config(tmp_path):
    from bora_teleop.params import PARAMS

    arm, hand = runtime_latency.arbiter_limits()
    assert arm == list(PARAMS["arm_max_velocity"]) and hand == PARAMS["hand_max_velocity"]
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("teleop:\n  ros__parameters:\n    hand_max_velocity: 2.0\n")
    assert runtime_latency.arbiter_limits(str(cfg))[1] == 2.0


def test_the_policy_limits_default_to_the_arbiters():
    from bora_policy.nodes.policy_params import MAX_JOINT_VELOCITY
    from bora_teleop.params import PARAMS

    assert list(MAX_JOINT_VELOCITY) == list(PARAMS["arm_max_velocity"]) + [PARAMS["hand_max_velocity"]]


@pytest.mark.parametrize("name", ["sim.yaml", "deploy.yaml"])
def test_graph_configs_give_the_policy_the_arbiters_limits(name):
    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / name).read_text())
    pol = cfg["policy"]["ros__parameters"]["max_joint_velocity"]
    arm, hand = runtime_latency.arbiter_limits(str(Path(__file__).resolve().parents[3] / "config" / name))
    assert pol == arm + [hand]


def test_start_spacing_counts_per_episode_spacings_against_replan_steps():
    # episode 3: starts 0, 8, 16, 25 (8, 8, 9); episode 4: 0, 7 (7); the step back to 0 between episodes is
    # not a spacing
    starts = [(3, 0), (3, 8), (3, 16), (3, 25), (4, 0), (4, 7)]
    r = runtime_latency.start_spacing(starts, 8)
    assert r["n"] == 4 and r["exact"] == 2 and r["exact_fraction"] == 0.5
    assert r["hist"] == {7: 1, 8: 2, 9: 1}
    assert runtime_latency.start_spacing([(1, 0)], 8)["n"] == 0


def test_chunk_starts_reads_converted_episodes(tmp_path, capsys):
    import json

    import chunk_starts

    tdir = tmp_path / "run" / "converted" / "transitions"
    tdir.mkdir(parents=True)
    a = np.zeros(30, bool)
    a[[0, 8, 16, 25]] = True  # spacings 8, 8, 9
    np.savez(tdir / "episode_000001.npz", chunk_start=a)
    # transition rows: their start steps; the row at 0 has its next chunk (8), the row at 8 ends the episode
    # without a terminal and without a next chunk: its last step has no target
    np.savez(tdir / "episode_000002.npz", step=np.array([8, 0]), next_valid=np.array([False, True]),
             done=np.zeros((2, 8), bool))
    assert chunk_starts.main([str(tmp_path / "run"), "--out", str(tmp_path / "cs")]) == 0
    assert "2 episodes, 3 of 4 spacings = 8 (8: 3, 9: 1); 1 of 2 rows without a last-step target" in \
        capsys.readouterr().out
    r = json.loads((tmp_path / "cs.json").read_text())["results"][str(tmp_path / "run")]
    assert r["exact"] == 3 and r["n"] == 4 and r["episodes"] == 2
    assert "| 2 | 3 of 4 | 8: 3, 9: 1 | 1 of 2 |" in (tmp_path / "cs.md").read_text()
    np.savez(tdir / "episode_000003.npz", reward=np.zeros(3))
    with pytest.raises(ValueError, match="neither a step nor a chunk_start array"):
        chunk_starts.main([str(tmp_path / "run")])
