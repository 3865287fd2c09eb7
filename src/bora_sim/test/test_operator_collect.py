"""Scripted operator (takeover detection, glove retargeting) and the render CLI (collection: bora_trainer's
test_collect.py)."""

import json

import mujoco
import numpy as np
import pytest

from bora_sim.cli import main
from bora_sim.env import make_env
from bora_sim.operator import GLOVE_JOINT_NAMES, OperatorConfig, RetargetMap, ScriptedOperator


def test_retarget_map_round_trip_and_data():
    env = make_env("pick_plush_toy", render=False)
    op = ScriptedOperator(env, seed=0)
    rm = op.retarget_map
    robot = env.hand.posture("power")
    human = rm.from_robot(robot)
    assert human.shape == (len(GLOVE_JOINT_NAMES),)
    assert np.allclose(rm.retarget(human), robot, atol=1e-9)
    # J1 of the index = mean of PIP and DIP of the human index (coupled joints)
    h = np.zeros(len(GLOVE_JOINT_NAMES))
    h[GLOVE_JOINT_NAMES.index("index_pip")], h[GLOVE_JOINT_NAMES.index("index_dip")] = 1.2, 0.4
    ff1 = [i for i, n in enumerate(env.hand_joint_names) if n.endswith("FFJ1")][0]
    assert rm.retarget(h)[ff1] == pytest.approx(0.8)
    rm2 = RetargetMap.from_dict(json.loads(json.dumps(rm.to_dict())))
    assert np.allclose(rm2.matrix, rm.matrix)


def test_operator_takes_over_a_stalled_policy_and_recovers():
    env = make_env("press_button", render=False)
    obs, info = env.reset(seed=2)
    op = ScriptedOperator(env, OperatorConfig(budget=2, grace_s=1.0, patience_s=1.5, recovery_s=4.0), seed=0)
    still = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])  # a "policy" that does nothing
    flags = []
    term = trunc = False
    while not (term or trunc):
        dec = op.observe(info)
        a = (1 - dec.beta) * still + dec.beta * op.human_action() if dec.takeover else still
        flags.append(dec.takeover)
        obs, r, term, trunc, info = env.step(a)
    op.close_open_segment(info["success"])
    ivs = op.interventions()
    assert not any(flags[:10])  # grace period
    assert len(ivs) >= 1 and ivs[0]["reason"] == "no progress"
    assert ivs[0]["start"] == 15  # no progress for patience_s = 1.5 s at 10 Hz (after the 1 s grace)
    assert info["success"] and ivs[-1]["recovered"]


def _run_with_operator(env, seed, make_policy):
    """One episode of the policy ``make_policy(obs) -> (info -> action)`` watched by the default operator."""
    obs, info = env.reset(seed=seed)
    policy_act = make_policy(obs)
    op = ScriptedOperator(env, seed=seed)
    flags, term, trunc = [], False, False
    while not (term or trunc):
        dec = op.observe(info)
        a = policy_act(info)
        if dec.takeover:
            a = (1 - dec.beta) * a + dec.beta * op.human_action()
        flags.append(dec.takeover)
        obs, _, term, trunc, info = env.step(a.astype(np.float32))
    op.close_open_segment(info["success"])
    return info, op.interventions(), flags


@pytest.mark.parametrize("seed", [5, 7])
def test_operator_rescues_a_dropped_object(seed):
    """Hand-picked failure-prone state: the policy (the clean expert) lifts the plush toy 3.2 cm, then
    opens its hand. The operator sees the object slipping (privileged height, no hand contact), takes
    over and, keeping control until success, grasps and lifts it again within the time limit."""
    from bora_sim.experts import ScriptedExpert

    env = make_env("pick_plush_toy", render=False)
    drop: list = []

    def make_policy(obs):
        pol = ScriptedExpert(env, seed=seed)

        def act(info):
            if not drop and info["object_height"] > 0.032:
                a = np.asarray(env.last_action, np.float32).copy()
                a[7:] = env.hand.posture("open")
                drop.append(a)
            return drop[0] if drop else pol.act()

        return act

    info, ivs, flags = _run_with_operator(env, seed, make_policy)
    assert drop, "the policy never lifted the object (the scenario did not happen)"
    assert [iv["reason"] for iv in ivs] == ["object slipping"]
    assert info["success"] and ivs[0]["recovered"] and ivs[0]["end"] == info["step"]
    assert all(flags[ivs[0]["start"] :])  # in control from the takeover to the success


def test_operator_rescues_a_frozen_policy_on_open_box():
    """open_box (the task the old operator rescued 3/20 times): a policy that never moves. The lid must be
    lifted by its handle and pushed over (8.8 s of the 12 s at the demonstrations' pace, 6.7 s at the
    operator's 1.3x); the operator takes over once nothing progressed for patience_s = 2.5 s (its
    deadline, 12 - 6.7 - 0.1 - 1.5 = 3.7 s, comes later) and opens the box."""
    env = make_env("open_box", render=False)

    def make_policy(obs):
        hold = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]).astype(np.float32)
        return lambda info: hold

    info, ivs, flags = _run_with_operator(env, 3, make_policy)
    assert [iv["reason"] for iv in ivs] == ["no progress"]
    assert ivs[0]["start"] == 25  # patience_s = 2.5 s at 10 Hz
    assert info["success"] and ivs[0]["recovered"]


def test_render_cli_writes_png(tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["render", "--task", "open_box", "--out", str(out), "--size", "48", "--steps", "3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _FedDistance(ScriptedOperator):
    """The operator's decision rule fed a hand-built hand-to-target distance sequence (the env's own
    privileged state is exercised by the rescue tests above)."""

    dist = 0.0

    def target_distance(self) -> float:
        return self.dist


def _first_takeover(op, dists, extra=None):
    for step, d in enumerate(dists):
        op.dist = d
        info = {"step": step, "task_progress": 0.0, "success": False, "housing_contacts": 0, **(extra or {})}
        dec = op.observe(info)
        if dec.takeover:
            return step, dec.reason
    return None


def test_no_progress_clock_waits_while_the_hand_first_moves_away():
    """press_button's demonstrated motion lifts the hand 5 cm away before approaching; a trained policy that
    imitates it was taken over at exactly patience_s in every episode (bench/results/critic_data.md)."""
    env = make_env("press_button", render=False)
    env.reset(seed=0)
    cfg = OperatorConfig(grace_s=1.0, patience_s=1.5)
    away_then_close = [0.15 + 0.004 * t for t in range(13)] + [0.198 - 0.004 * t for t in range(1, 20)]
    assert _first_takeover(_FedDistance(env, cfg=cfg), away_then_close) is None
    # the same retreat that never turns into an approach: the clock runs from its farthest point (step 12)
    away_then_stuck = [0.15 + 0.004 * t for t in range(13)] + [0.198] * 20
    assert _first_takeover(_FedDistance(env, cfg=cfg), away_then_stuck) == (12 + 15, "no progress")
    # a held arm sagging 1 mm per step (< 3 x approach_gain in all) is a stall: taken over at patience_s
    sag = [0.13 + 0.001 * min(t, 18) for t in range(30)]
    assert _first_takeover(_FedDistance(env, cfg=cfg), sag) == (15, "no progress")
    env.close()


def test_finger_off_the_button_means_the_housing_without_the_cap():
    """Other fingers brushing the housing while the pressing finger is on the cap is a normal press."""
    env = make_env("press_button", render=False)
    env.reset(seed=0)
    cfg = OperatorConfig(grace_s=1.0, patience_s=10.0)
    closing = [0.2 - 0.01 * t for t in range(20)]
    pressing = {"housing_contacts": 2, "finger_on_cap": True}
    assert _first_takeover(_FedDistance(env, cfg=cfg), closing, pressing) is None
    missed = {"housing_contacts": 1, "finger_on_cap": False}
    assert _first_takeover(_FedDistance(env, cfg=cfg), closing, missed) == (10, "finger off the button")
    env.close()


def _knock_out_of_hand(env, xy):
    """Put the task's object back on the table at ``xy`` at rest (a bump that knocks it out of the hand)."""
    import mujoco

    m, d, task = env.model, env.data, env.task
    j = m.body_jntadr[task.body_id]
    qa, va = m.jnt_qposadr[j], m.jnt_dofadr[j]
    d.qpos[qa : qa + 3] = [xy[0], xy[1], task.half[2] + 0.002]
    d.qpos[qa + 3 : qa + 7] = [1.0, 0.0, 0.0, 0.0]
    d.qvel[va : va + 6] = 0.0
    mujoco.mj_forward(m, d)


@pytest.mark.parametrize("max_replans,rescued", [(2, True), (0, False)])
def test_operator_tries_again_when_the_object_is_knocked_out_of_its_hand(max_replans, rescued):
    """pick_and_place, a policy that never moves: the operator takes over after grace + patience (1 s + 1 s),
    grasps and lifts the object; 10 cm up it is knocked out of the hand back onto the table. With retries the
    operator sees the object on the table out of the hand while it is carrying, plans afresh and puts it in the
    basket within the time limit; carrying the first plan through (max_replans 0) it transports an empty hand."""
    env = make_env("pick_and_place", render=False)
    obs, info = env.reset(seed=1)
    xy0 = env.task.object_pos(env.data)[:2].copy()
    op = ScriptedOperator(env, OperatorConfig(grace_s=1.0, patience_s=1.0, max_replans=max_replans), seed=0)
    hold = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]]).astype(np.float32)
    knocked, phases, term, trunc = None, [], False, False
    while not (term or trunc):
        dec = op.observe(info)
        a = (1 - dec.beta) * hold + dec.beta * op.human_action() if dec.takeover else hold
        phases.append(op.expert.phase if dec.takeover else "")
        obs, _, term, trunc, info = env.step(a.astype(np.float32))
        if knocked is None and dec.takeover and info["object_height"] > 0.10:
            _knock_out_of_hand(env, xy0)
            knocked = info["step"]
    op.close_open_segment(info["success"])
    ivs = op.interventions()
    assert knocked is not None, "the operator never lifted the object (the scenario did not happen)"
    assert len(ivs) == 1 and ivs[0]["reason"] == "no progress"
    after = phases[knocked:]
    assert ("approach" in after) == rescued  # a fresh plan starts with the approach
    assert bool(info["success"]) == rescued and ivs[0]["recovered"] == rescued


def test_operator_replan_fields_are_checked():
    with pytest.raises(ValueError, match="max_replans"):
        OperatorConfig(max_replans=-1)
    with pytest.raises(ValueError, match="replan_wait_s"):
        OperatorConfig(replan_wait_s=-0.5)


def test_plan_seconds_adds_the_tasks_rescue_slack():
    """pick_plush_toy's plan: approach 1.2 s, descend 1.0 s, close 0.8 s, lift 1.5 s (the trailing hold left out)
    at the operator's 1.3x, plus the 8-step success hold at 10 Hz and the task's 1 s of rescue slack:
    4.5 / 1.3 + 0.8 + 1.0 = 5.26 s; from the lift on 1.5 / 1.3 + 0.8 + 1.0 = 2.95 s. pull_tissue has none."""
    env = make_env("pick_plush_toy", render=False)
    env.reset(seed=0)
    op = ScriptedOperator(env, OperatorConfig(), seed=0)
    assert op.plan_seconds() == pytest.approx(4.5 / 1.3 + 0.8 + 1.0)
    assert op.plan_seconds("lift") == pytest.approx(1.5 / 1.3 + 0.8 + 1.0)
    env.close()
    assert make_env("pull_tissue", render=False).task.rescue_slack_s == 0.0


@pytest.mark.parametrize(
    "task, per_task, expected",
    [
        ("pick_plush_toy", {}, 33),  # 100 steps at 10 Hz; 10 * (5.26 + 1.5) = 67.6 steps left -> step 33
        ("pick_plush_toy", {"pick_plush_toy": {"deadline_margin_s": 0.0}}, 48),  # 10 * 5.26 = 52.6 -> step 48
        ("pick_plush_toy", {"pick_plush_toy": {"deadline_margin_s": -1.0}}, None),  # no deadline takeover
        ("press_button", {"pick_plush_toy": {"deadline_margin_s": 0.0}}, "global"),  # another task keeps 1.5 s
        ("pick_plush_toy", {"pick_plush_toy": {"patience_s": 1.0}}, 10),  # "no progress" after 1 s of a still hand
    ],
)
def test_operator_settings_can_be_set_per_task(task, per_task, expected):
    """A policy that holds still is taken over by the deadline rule alone (no progress rule: patience 100 s) at
    the first step whose time left is at most the plan's duration (5.26 s on pick_plush_toy: the test above)
    plus the margin: the global ``deadline_margin_s`` 1.5 s unless ``task_overrides`` sets it for the task. A
    per-task ``patience_s`` of 1 s takes over at step 10 instead ("no progress": nothing moved since step 0)."""
    env = make_env(task, render=False)
    obs, info = env.reset(seed=0)
    hold = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])
    op = ScriptedOperator(env, OperatorConfig(grace_s=0.0, patience_s=100.0, task_overrides=per_task), seed=0)
    reason = "no progress" if "patience_s" in per_task.get(task, {}) else "time running out"
    if expected == "global":
        expected = int(np.ceil(env.max_steps - env.control_hz * (op.plan_seconds() + 1.5)))
    first, term, trunc = None, False, False
    while first is None and not (term or trunc):
        dec = op.observe(info)
        if dec.takeover:
            first = (int(info["step"]), dec.reason)
        obs, _, term, trunc, info = env.step(hold)
    env.close()
    assert first == ((expected, reason) if expected is not None else None)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"pick_plush": {"patience_s": 1.0}}, "unknown task 'pick_plush'"),
        ({"open_box": {"patiense_s": 1.0}}, r"task_overrides\['open_box'\]: unknown field\(s\) \['patiense_s'\]"),
        ({"open_box": {"deadline_margin_s": "soon"}}, r"\['open_box'\]\['deadline_margin_s'\] must be a number"),
        ({"open_box": {"mode": 1}}, r"\['mode'\] must be a string"),
        ({"open_box": {"budget": 2.5}}, r"\['budget'\] must be an integer, got 2.5"),  # an int field
        ({"open_box": {"ramp_steps": True}}, r"\['ramp_steps'\] must be an integer"),
        ({"open_box": 0.5}, r"task_overrides\['open_box'\] must be a mapping"),
        ([("open_box", {})], "task_overrides must be a mapping"),
        ({"open_box": {"max_replans": -1}}, "max_replans must be >= 0"),  # checked as the field itself is
    ],
)
def test_operator_task_overrides_are_checked(over, match):
    with pytest.raises(ValueError, match=match):
        OperatorConfig(task_overrides=over).for_task("open_box")


def _shadow_first_takeover(env, seed, cfg, make_act):
    """Run ``make_act()`` (called after the reset) = ``act(step) -> action`` alone while an operator only
    watches: (its first takeover (step, reason, object_height) or None, whether the episode succeeded)."""
    obs, info = env.reset(seed=seed)
    act = make_act()
    op = ScriptedOperator(env, cfg, seed=0)
    first, term, trunc = None, False, False
    while not (term or trunc):
        if first is None:
            dec = op.observe(info)
            if dec.takeover:
                first = (int(info["step"]), dec.reason, float(info["object_height"]))
        obs, _, term, trunc, info = env.step(act(int(info["step"])))
    return first, bool(info["success"])


def test_a_held_package_that_moves_is_progress_and_a_still_one_is_not():
    """pick_and_place's progress is the package's xy distance to the basket, so a lift does not change it. A
    slow but successful policy (the expert at 0.7x its pace) was taken over for "no progress" during its lift
    with carry_gain = 0, at grace + patience = 1 + 1.5 s after its approach ended (step 56 here); the held package
    rising 1 cm at a time restarts the clock (carry_gain = 1 cm). The same policy frozen once it has lifted the
    package is still taken over for "no progress", patience_s after the freeze."""
    from bora_sim.experts import ExpertKnobs, ScriptedExpert

    env = make_env("pick_and_place", render=False)
    demo_op = dict(budget=2, grace_s=1.0, patience_s=1.5)

    def slow_expert():
        ex = ScriptedExpert(env, knobs=ExpertKnobs(), seed=0, speed=0.7)
        return lambda step: ex.act()

    first, success = _shadow_first_takeover(env, 0, OperatorConfig(**demo_op, carry_gain=0.0), slow_expert)
    assert success and first is not None and first[1] == "no progress" and first[2] > 0.03  # lifted, not stuck
    first, success = _shadow_first_takeover(env, 0, OperatorConfig(**demo_op), slow_expert)
    assert success and first is None

    frozen: dict[str, np.ndarray] = {}

    def lift_then_freeze():
        ex = ScriptedExpert(env, knobs=ExpertKnobs(), seed=0, speed=0.7)

        def act(step):
            if "a" in frozen:
                return frozen["a"]
            a = ex.act()
            if env.task.object_pos(env.data)[2] - env.task.half[2] > 0.06:  # 6 cm up: freeze the targets here
                frozen["a"], frozen["step"] = a, step
            return a

        return act

    first, success = _shadow_first_takeover(env, 0, OperatorConfig(**demo_op), lift_then_freeze)
    assert not success and first is not None and first[1] == "no progress"
    # not before patience_s = 15 steps after the freeze; the arm still decelerates and the held package swings
    # for a moment (20 steps here): within 1 s more
    assert frozen["step"] + 15 <= first[0] <= frozen["step"] + 25
    env.close()


def test_a_drop_over_the_basket_is_a_placement_not_a_slip():
    """pick_and_place: the package released 10 cm over the basket's centre falls with no hand contact -- the
    placement, so no "object slipping" takeover; the same fall beside the basket is one."""
    from bora_sim.tasks.base import free_joint_set

    env = make_env("pick_and_place", render=False)
    for over, expected in ((True, None), (False, "object slipping")):
        obs, info = env.reset(seed=0)
        task, d = env.task, env.data
        bpos, _ = task.basket_pose(d)
        xy = bpos[:2] if over else bpos[:2] + np.array([0.0, 0.2])  # 20 cm to the side: outside the 8.5 cm half width
        free_joint_set(d, env.model, "package_free", [xy[0], xy[1], task.half[2] + 0.10], [1, 0, 0, 0])
        mujoco.mj_forward(env.model, d)
        assert task.over_basket(d) is over
        op = ScriptedOperator(env, OperatorConfig(grace_s=0.0, patience_s=10.0, deadline_margin_s=-1), seed=0)
        hold = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])
        reasons = []
        for _ in range(15):
            obs, _, _, _, info = env.step(hold)
            dec = op.observe(info)
            if dec.takeover:
                reasons.append(dec.reason)
                break
        assert (reasons[0] if reasons else None) == expected
    env.close()


@pytest.mark.parametrize("seed, freeze, resume", [(0, 0.45, "open"), (2, 1.12, "release")])
def test_open_box_takeover_carries_on_from_a_lifted_lid(seed, freeze, resume):
    """open_box: a policy (the clean expert at the demonstrations' pace) that stops while lifting the lid by its
    handle, once the lid is ``freeze`` rad open. The operator (deadline off) takes over for "no progress" with the
    hand on the lid, so it carries on from how far the lid is up. At 0.45 (taken over at about 0.56 rad, step 62):
    ``open``, the arc from the current angle, release, reposition, push = (4 x 0.8 + 0.5 + 0.8 + 1.2) / 1.3 + 0.1 =
    4.48 s. At 1.12 (about 1.24 rad, step 102): ``release``, (0.5 + 0.8 + 1.2) / 1.3 + 0.1 = 2.02 s. Its whole plan
    (6.79 s, 68 steps) no longer fits in the 12 s episode after step 52; from there it succeeds."""
    from bora_sim.experts import ExpertKnobs, ScriptedExpert

    env = make_env("open_box", render=False)
    obs, info = env.reset(seed=seed)
    cfg = OperatorConfig(budget=2, grace_s=1.0, patience_s=1.5, deadline_margin_s=-1)
    op = ScriptedOperator(env, cfg, seed=0)
    assert op.plan_seconds() == pytest.approx(8.7 / 1.3 + 0.1)
    assert op.plan_seconds("open") == pytest.approx(5.7 / 1.3 + 0.1)
    assert op.plan_seconds("release") == pytest.approx(2.5 / 1.3 + 0.1)
    ex = ScriptedExpert(env, knobs=ExpertKnobs(), seed=0)
    frozen, first, term, trunc = None, None, False, False
    while not (term or trunc):
        dec = op.observe(info)
        if dec.takeover and first is None:
            first = (int(info["step"]), dec.reason, float(info["lid_angle"]), op.expert.phase)
        if frozen is None:
            a = ex.act()
            if info["lid_angle"] >= freeze and info["hand_contacts"] > 0:
                frozen = a
        policy = frozen if frozen is not None else a
        a_exec = (1 - dec.beta) * policy + dec.beta * op.human_action() if dec.takeover else policy
        obs, _, term, trunc, info = env.step(np.asarray(a_exec, np.float32))
    op.close_open_segment(info["success"])
    env.close()
    assert first is not None and first[1] == "no progress" and first[3] == resume
    assert first[2] >= freeze and 120 - first[0] < 68  # lifted; the whole plan would not fit any more
    assert info["success"] and op.interventions()[0]["recovered"]
