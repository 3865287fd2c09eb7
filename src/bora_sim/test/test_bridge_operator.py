"""bora_sim.bridge_operator: what the sim bridge publishes for its scripted operator, step by step, without ROS.
The bridge consults it AFTER each physics step (the in-process loops before it), so these tests feed it the
infos of env steps; a policy that does nothing stalls, and the operator takes over (test_operator_collect.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bora_sim.bridge_operator import OPERATOR_SEED_OFFSET, BridgeOperator, OperatorOutput
from bora_sim.env import make_env
from bora_sim.operator import GLOVE_JOINT_NAMES, OperatorConfig, ScriptedOperator

CFG = OperatorConfig(grace_s=1.0, patience_s=1.5)


def _still_env(seed: int = 2):
    """press_button reset with ``seed``, and the action that holds the robot where it is."""
    env = make_env("press_button", render=False)
    obs, _ = env.reset(seed=seed)
    return env, np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])


def test_outputs_follow_the_operators_decisions_and_commands():
    env, still = _still_env()
    bridge = BridgeOperator(env, CFG, env_seed=2)
    twin = ScriptedOperator(env, CFG, seed=2 + OPERATOR_SEED_OFFSET)  # the same seed: the same draws
    logs = []
    for _ in range(40):  # the operator's commands are not applied: both watch the same stalled episode
        _, _, term, trunc, info = env.step(still)
        assert not (term or trunc)
        out = bridge.tick(info, episode_id=4)
        dec = twin.observe(info)
        assert out.takeover == dec.takeover and out.recovered is None  # no handback without success
        if dec.takeover:
            arm, glove = twin.command()
            assert out.arm.shape == (7,) and out.glove.shape == (len(GLOVE_JOINT_NAMES),)
            assert np.array_equal(out.arm, arm) and np.array_equal(out.glove, glove)
        else:
            assert out.arm is None and out.glove is None
        if out.log:
            logs.append((int(info["step"]), out.log))
    assert len(twin.segments) == 1, "the stalled policy was not taken over (the scenario did not happen)"
    start = twin.segments[0].start
    assert [s for s, _ in logs] == [start]  # one line, when the takeover starts: the episode, step and why
    assert re.fullmatch(rf"the scripted operator takes over episode 4 at step {start} \(no progress; progress "
                        r"-?\d+\.\d\d\)", logs[0][1])
    bridge.end_episode(False)  # the outcome closes the open takeover
    assert bridge.op.interventions() == [{"start": start, "end": 40, "recovered": False, "reason": "no progress"}]


def test_the_final_step_starts_no_takeover():
    env, still = _still_env()
    bridge, twin = BridgeOperator(env, CFG, env_seed=2), ScriptedOperator(env, CFG, seed=2 + OPERATOR_SEED_OFFSET)
    for _ in range(40):
        _, _, _, _, info = env.step(still)
        if twin.observe(info).takeover:
            break
        assert not bridge.tick(info, 1).takeover  # both saw the same steps so far
    assert twin.segments, "the stalled policy was not taken over (the scenario did not happen)"
    # the twin takes over at this step; were it the episode's last (a timeout), nothing could follow the takeover
    rng = bridge.op.rng.bit_generator.state
    assert bridge.tick(info, 1, final=True, success=False) == OperatorOutput(False)
    assert bridge.op.interventions() == [] and bridge.op.rng.bit_generator.state == rng  # no command drawn


@pytest.mark.parametrize("success", [True, False])
def test_a_takeover_open_at_the_final_step_ends_with_the_episode(success):
    env, still = _still_env()
    bridge = BridgeOperator(env, CFG, env_seed=2)
    for _ in range(40):
        _, _, _, _, info = env.step(still)
        if bridge.tick(info, 1).takeover:
            break
    assert bridge.op.segments, "the stalled policy was not taken over (the scenario did not happen)"
    for _ in range(3):
        assert bridge.tick(env.step(still)[4], 1).takeover  # in control until success (recovery_s = 0)
    _, _, _, _, info = env.step(still)
    rng = bridge.op.rng.bit_generator.state
    out = bridge.tick(info, 1, final=True, success=success)
    # on success as its handback on success (recovered flag, trigger released); on a timeout the trigger stays up
    assert out == (OperatorOutput(False, recovered=True) if success else OperatorOutput(True))
    assert bridge.op.rng.bit_generator.state == rng  # no command after the last step
    start = bridge.op.segments[0].start
    assert bridge.op.interventions() == [
        {"start": start, "end": int(info["step"]), "recovered": success, "reason": "no progress"}
    ]


def test_each_episode_draws_from_its_own_seed_whatever_ran_before():
    env, _ = _still_env(seed=2)
    bridge = BridgeOperator(env, CFG, env_seed=2)
    for _ in range(5):
        bridge.op.command()  # episode 2: a takeover's glove noise drawn
    env.reset(seed=3)
    bridge.start_episode(3)
    glove = bridge.op.command()[1]
    env.reset(seed=3)
    fresh = BridgeOperator(env, CFG, env_seed=3)  # a session that starts at this episode: nothing ran before
    assert np.array_equal(fresh.op.command()[1], glove)
    env.reset(seed=3)  # the in-process loops' operator of the episode (env seed + 104729, online/env_sim.py)
    assert np.array_equal(ScriptedOperator(env, CFG, seed=3 + 104729).command()[1], glove)
    env.reset(seed=3)
    other = BridgeOperator(env, CFG, env_seed=4)  # another episode's seed draws other noise (std 0.02 rad)
    assert not np.allclose(other.op.command()[1], glove)
