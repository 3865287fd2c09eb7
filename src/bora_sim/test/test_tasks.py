"""Success predicates on hand-made physics states, and the experts on a few seeds."""

import mujoco
import numpy as np
import pytest

from bora_sim.env import make_env
from bora_sim.experts import ScriptedExpert, _tip_offset, palm_down
from bora_sim.ik import ArmIK
from bora_sim.tasks import TASKS
from bora_sim.tasks.base import free_joint_set, yaw_to_quat
from bora_sim.tasks.pick_and_place import BASKET_HALF


def _env(task):
    env = make_env(task, "standard", render=False)
    env.reset(seed=0)
    return env


def _evaluate(env, n):
    mujoco.mj_forward(env.model, env.data)
    env.task.reset_counters()
    return [env.task.evaluate(env.data).success for _ in range(n)]


def test_plush_toy_lifted_and_steady_only():
    env = _env("pick_plush_toy")
    t, m, d = env.task, env.model, env.data
    n = t.hold_steps
    assert not any(_evaluate(env, n + 2))  # resting on the table
    free_joint_set(d, m, "toy_free", [0.55, 0.0, t.rest_z + 0.12], yaw_to_quat(0.3))
    res = _evaluate(env, n)
    assert res[-1] and not any(res[:-1])  # success only after being held steady for hold_steps
    free_joint_set(d, m, "toy_free", [0.55, 0.0, t.rest_z + 0.12], yaw_to_quat(0.3))
    d.qvel[m.jnt_dofadr[m.joint("toy_free").id] + 2] = -1.0  # falling: not steady
    assert not any(_evaluate(env, n + 2))
    free_joint_set(d, m, "toy_free", [0.55, 0.0, t.rest_z + 0.03], yaw_to_quat(0.3))  # barely lifted
    assert not any(_evaluate(env, n + 2))


def test_package_inside_basket():
    env = _env("pick_and_place")
    t, m, d = env.task, env.model, env.data
    bpos, byaw = t.basket_pose(d)
    hz = t.half[2]
    free_joint_set(d, m, "package_free", [bpos[0], bpos[1], 0.008 + hz], yaw_to_quat(byaw))
    assert _evaluate(env, t.hold_steps)[-1]
    off = np.array([np.cos(byaw), np.sin(byaw)]) * (BASKET_HALF + 0.01)  # straddling a wall
    free_joint_set(d, m, "package_free", [bpos[0] + off[0], bpos[1] + off[1], 0.07 + hz], yaw_to_quat(byaw))
    assert not any(_evaluate(env, t.hold_steps))
    free_joint_set(d, m, "package_free", [0.55, 0.1, hz], yaw_to_quat(0))  # still on the table
    assert not any(_evaluate(env, t.hold_steps))
    free_joint_set(d, m, "package_free", [bpos[0], bpos[1], 0.25], yaw_to_quat(0))  # above, not in
    assert not any(_evaluate(env, t.hold_steps))


@pytest.mark.parametrize("angle,ok", [(0.0, False), (1.0, False), (1.39, False), (1.45, True), (2.2, True)])
def test_lid_angle(angle, ok):
    env = _env("open_box")
    env.data.qpos[env.task.qadr] = angle
    assert _evaluate(env, 1)[-1] == ok


@pytest.mark.parametrize("q,ok", [(0.0, False), (0.05, False), (0.095, False), (0.101, True), (0.12, True)])
def test_tissue_extracted_fully(q, ok):
    env = _env("pull_tissue")
    env.data.qpos[env.task.qadr] = q
    assert _evaluate(env, 1)[-1] == ok


def test_button_needs_full_depression_and_finger_on_cap():
    env = _env("press_button")
    t, m, d = env.task, env.model, env.data
    d.qpos[t.qadr] = -0.014
    assert not any(_evaluate(env, t.hold_steps))  # depressed but no finger on it: not a press
    # put the index pad on the depressed cap with IK (point pre-shape)
    mujoco.mj_forward(m, d)
    top = t.cap_top(d)
    R = np.zeros(9)
    q = palm_down(0.0)
    mujoco.mju_quat2Mat(R, q)
    target = top - R.reshape(3, 3) @ _tip_offset(env, "point") - np.array([0, 0, 0.002])
    qa, err = ArmIK().solve(target, q, q0=d.qpos[env.arm_qadr])
    assert err < 2e-3
    d.qpos[env.arm_qadr] = qa
    d.qpos[env.hand_qadr] = env.hand.posture("point")
    res = _evaluate(env, t.hold_steps)
    assert res[-1]
    d.qpos[t.qadr] = -0.006  # finger on the cap but only half way down
    assert not any(_evaluate(env, t.hold_steps))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_expert_solves_a_standard_episode(task):
    env = make_env(task, "standard", render=False)
    successes = 0
    for seed in (0, 1):
        env.reset(seed=seed)
        ex = ScriptedExpert(env, seed=seed)
        term = trunc = False
        while not (term or trunc):
            _, r, term, trunc, info = env.step(ex.act())
        successes += info["success"]
        if info["success"]:
            assert r == pytest.approx(env.reward_cfg.success_reward - env.reward_cfg.time_penalty)
    assert successes >= 1


def _run_expert(env, seed):
    env.reset(seed=seed)
    ex = ScriptedExpert(env, seed=seed)
    term = trunc = False
    while not (term or trunc):
        _, _, term, trunc, info = env.step(ex.act())
    return info


def test_expert_presses_every_unseen_button():
    """Smaller and square caps on 200-250 N/m springs: the pitched fingertip press gets them all the way down."""
    env = make_env("press_button", "unseen", render=False)
    seen = {}
    for seed in range(6):
        info = _run_expert(env, seed)
        seen.setdefault(info["object"], []).append(info["success"])
    assert set(seen) == {o.name for o in env.object_set.objects}
    assert all(all(v) for v in seen.values()), seen


def test_button_cap_is_hard():
    """A fingertip pressing the cap with the hold force of a full press barely sinks into it (< 2 mm)."""
    env = make_env("press_button", "unseen", render=False)
    _run_expert(env, 1)  # small button; the episode ends on success with the finger on the cap
    t, m, d = env.task, env.model, env.data
    assert t.depression(d) >= t.press_depth
    cap = set(t.geoms)
    pen = [-d.contact[i].dist for i in range(d.ncon) if {int(d.contact[i].geom1), int(d.contact[i].geom2)} & cap]
    assert pen and max(pen) < 0.002
    # only the fingertip touches (the cap is pressed flush with the housing): the finger clears the rim
    touching = {m.geom(g).name for g, _ in t.hand_contacts(d, t.geoms + t.housing)}
    assert touching == {"hand/robot0:C_ffdistal"}


@pytest.mark.parametrize("seed", [11, 21])
def test_expert_places_the_short_parcel(seed):
    """Seeds where the 4.8 cm parcel used to be flicked out backwards (fingertips striking the table)."""
    env = make_env("pick_and_place", "standard", render=False)
    info = _run_expert(env, seed)
    assert info["object"] == "brown_parcel" and info["success"]


def test_expert_replans_when_the_toy_moved():
    """The standard bear topples onto its back after the reset: the expert notices before descending
    (object > 1 cm from the planned spot), plans the grasp again from the new pose and lifts it."""
    env = make_env("pick_plush_toy", "standard", render=False)
    for seed in range(10):
        env.reset(seed=seed)
        if env.obj.name == "brown_bear":
            break
    ex = ScriptedExpert(env, seed=seed)
    planned = ex.plan[1].pos.copy()  # descend target of the first plan
    term = trunc = False
    while not (term or trunc):
        _, _, term, trunc, info = env.step(ex.act())
    assert ex.replans == 1 and info["success"]
    assert np.linalg.norm(ex.plan[1].pos[:2] - planned[:2]) > 0.01
