"""Scripted experts: one per task, planning in a low-dimensional space and acting in joint space.

An expert plans a few waypoints of the grasp-site pose (privileged object state), each with a hand
posture blended from the hand's named synergies (``open``, ``power``, ``point``...). Every control
step it interpolates the current segment (minimum-jerk), solves the arm IK (mink, arm-only model)
and outputs the joint targets ``[7 arm, n_hand hand]`` -- the same action space as the policy.
Loose objects are checked before the descent: one that moved more than ``REPLAN_TOL`` since the plan
(it toppled, rolled or was bumped) gets a fresh plan from the current state.

``ExpertKnobs`` make demonstrations mixed-quality and multimodal, like real teleoperation:
``noise`` (Gaussian jitter of waypoints and joint targets), ``hesitation`` (pauses and small
back-offs mid-motion), ``suboptimal`` (detours, slower segments, off-centre grasps). All draws come
from the expert's own seeded generator, so an (env seed, expert seed) pair replays exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from bora_sim.ik import PALM_DOWN_QUAT, ArmIK, axis_quat, quat_mul, yaw_quat


@dataclass(frozen=True)
class ExpertKnobs:
    """Quality knobs of a scripted expert (0 = clean expert)."""

    noise: float = 0.0
    """Scale of Gaussian jitter: 1 cm x noise on waypoints, 0.02 rad x noise on arm targets."""
    hesitation: float = 0.0
    """Probability scale of pausing (and backing off slightly) during a motion."""
    suboptimal: float = 0.0
    """Probability of a detour, a slower plan and an off-centre grasp in an episode."""

    def __post_init__(self):
        for k in ("noise", "hesitation", "suboptimal"):
            v = getattr(self, k)
            if not 0.0 <= v <= 5.0:
                raise ValueError(f"ExpertKnobs.{k} must be in [0, 5], got {v}")

    def as_dict(self) -> dict[str, float]:
        return {"noise": self.noise, "hesitation": self.hesitation, "suboptimal": self.suboptimal}


@dataclass
class Waypoint:
    pos: np.ndarray
    quat: np.ndarray
    hand: np.ndarray
    duration: float
    converge: bool = False
    """Wait (up to ``max_wait`` s) until the grasp site is within ``tol`` of ``pos``."""
    tol: float = 0.01
    max_wait: float = 1.0
    label: str = ""
    hold_fn: Callable | None = field(default=None, repr=False)
    target_fn: Callable | None = field(default=None, repr=False)
    """Optional ``fn(env) -> pos``: re-targets the segment from the state when it starts (closed loop)."""
    """Optional ``fn(env) -> bool``: the segment may end early once it returns True."""
    replan_fn: Callable | None = field(default=None, repr=False)
    """Optional ``fn(env) -> bool``: when the segment starts, re-plan from the state if it returns True."""


def _minjerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s**3 * (10 - 15 * s + 6 * s * s)


def _slerp(q0: np.ndarray, q1: np.ndarray, s: float) -> np.ndarray:
    q0, q1 = np.asarray(q0, float), np.asarray(q1, float)
    if np.dot(q0, q1) < 0:
        q1 = -q1
    d = np.clip(np.dot(q0, q1), -1, 1)
    if d > 0.9995:
        q = q0 + s * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - s) * th) * q0 + np.sin(s * th) * q1) / np.sin(th)


def palm_down(yaw: float) -> np.ndarray:
    """Grasp-site orientation: palm down, fingers pointing along world yaw ``yaw``."""
    return quat_mul(yaw_quat(yaw), PALM_DOWN_QUAT)


def grasp_yaw(yaw: float, hx: float, hy: float) -> float:
    """Hand yaw that wraps the fingers across the shorter horizontal side of the object."""
    return wrap_half_pi(yaw if hx <= hy else yaw + np.pi / 2)


def wrap_half_pi(yaw: float) -> float:
    """Equivalent yaw of a 180-degree-symmetric grasp, in [-pi/2, pi/2]."""
    return float((yaw + np.pi / 2) % np.pi - np.pi / 2)


class ScriptedExpert:
    """Runs a task's waypoint plan through IK; ``act()`` returns the next joint-target action."""

    def __init__(self, env, knobs: ExpertKnobs = ExpertKnobs(), seed: int | None = None, speed: float = 1.0):
        """``speed``: every planned segment takes ``duration / speed`` (1 = the demonstrations' pace)."""
        if not 0.5 <= speed <= 2.0:
            raise ValueError(f"ScriptedExpert speed must be in [0.5, 2], got {speed}")
        self.env = env.unwrapped
        self.knobs = knobs
        self.speed = float(speed)
        self.rng = np.random.default_rng(seed)
        self.ik = ArmIK()
        self.planner = PLANNERS[self.env.task_name]
        self.plan: list[Waypoint] = []
        self.reset()

    # --- plan execution ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Plan from the current state (start of an episode, or a takeover mid-episode)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        env = self.env
        self.ik.reset(env.data.qpos[env.arm_qadr])
        self.cur_pos, self.cur_quat = self.ik.site_pose()
        self.cur_hand = env.data.qpos[env.hand_qadr].copy()
        self.sub = self.rng.random() < self.knobs.suboptimal
        self.plan = self.planner(env, self)
        self.plan = self._apply_knobs(self.plan)
        self.idx, self.t, self.pause = 0, 0.0, 0
        self.replans = 0

    @property
    def done(self) -> bool:
        return self.idx >= len(self.plan)

    @property
    def phase(self) -> str:
        return self.plan[self.idx].label if not self.done else "done"

    def _noisy(self, wp: Waypoint) -> Waypoint:
        if self.knobs.noise > 0:
            wp.pos = wp.pos + self.rng.normal(0, 0.004 * self.knobs.noise, 3)
        if self.sub:
            wp.duration *= 1.5
        wp.duration /= self.speed
        return wp

    def _apply_knobs(self, plan: list[Waypoint]) -> list[Waypoint]:
        out = [self._noisy(wp) for wp in plan]
        if self.sub and len(out) > 1:
            # detour: wander sideways above the start before the first real segment
            first = out[0]
            side = self.rng.choice([-1, 1]) * self.rng.uniform(0.06, 0.12)
            det = Waypoint(
                first.pos + np.array([-0.05, side, 0.06]), first.quat, first.hand, 1.0, label="detour"
            )
            out.insert(0, det)
        return out

    def act(self) -> np.ndarray:
        env, k = self.env, self.knobs
        dt = 1.0 / env.control_hz
        if self.done:
            wp = self.plan[-1] if self.plan else Waypoint(self.cur_pos, self.cur_quat, self.cur_hand, 1.0)
            pos, quat, hand = wp.pos, wp.quat, wp.hand
        else:
            wp = self.plan[self.idx]
            if self.t == 0.0 and wp.replan_fn is not None and self.replans < MAX_REPLANS and wp.replan_fn(env):
                # the object moved since the plan was made (it rolled, or was bumped): plan again from
                # the current command; the knobs' noise applies, their detour does not
                self.replans += 1
                self.plan = [self._noisy(w) for w in self.planner(env, self)]
                self.idx = 0
                wp = self.plan[0]
            if self.t == 0.0 and wp.target_fn is not None:
                wp.pos = np.asarray(wp.target_fn(env), float)
            if self.pause > 0:
                self.pause -= 1
            else:
                if (
                    k.hesitation > 0
                    and self.rng.random() < 0.04 * k.hesitation
                    and wp.label not in ("close", "hold")
                ):
                    self.pause = int(self.rng.integers(2, 8))
                self.t += dt
            s = _minjerk(self.t / max(wp.duration, 1e-6))
            if self.pause > 0 and k.hesitation > 0:
                s = max(0.0, s - 0.1)  # back off a little while hesitating
            pos = self.cur_pos + s * (wp.pos - self.cur_pos)
            quat = _slerp(self.cur_quat, wp.quat, s)
            hand = self.cur_hand + s * (wp.hand - self.cur_hand)
            if self.t >= wp.duration:
                finished = True
                if wp.converge:
                    p, _ = env.grasp_site_pose()
                    finished = np.linalg.norm(p - wp.pos) < wp.tol or self.t >= wp.duration + wp.max_wait
                if wp.hold_fn is not None and wp.hold_fn(env):
                    finished = True
                if finished:
                    self.cur_pos, self.cur_quat, self.cur_hand = wp.pos.copy(), wp.quat.copy(), wp.hand.copy()
                    self.idx += 1
                    self.t = 0.0
        q = self.ik.step(pos, quat, dt)
        action = np.concatenate([q, hand])
        if k.noise > 0:
            action[:7] += self.rng.normal(0, 0.01 * k.noise, 7)
            action[7:] += self.rng.normal(0, 0.05 * k.noise, len(hand))
        return action.astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Per-task planners: fn(env, expert) -> list[Waypoint]
# ------------------------------------------------------------------------------------------------


def _top_grasp(
    env,
    expert,
    center: np.ndarray,
    yaw: float,
    top_z: float,
    lift: float = 0.15,
    finger_offset: float = 0.0,
    hold_s: float = 1.5,
    moved: Callable | None = None,
) -> list[Waypoint]:
    """Approach above, descend until the palm is ~1 cm above the top, power-grasp, lift, hold.

    ``moved(env) -> bool`` (loose objects): checked before descending; True re-plans the grasp.
    """
    hand = env.hand
    flat = top_z < FLAT_TOP_Z  # a short object on the table
    q = palm_down(yaw)
    if flat:  # palm heel down: it blocks the object from being squeezed out backwards under the palm
        q = quat_mul(q, axis_quat([0.0, 1.0, 0.0], FLAT_HEEL_PITCH))
    fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    off = finger_offset
    if expert.sub:
        off += expert.rng.choice([-1, 1]) * 0.012
    c = center + off * fwd
    z_grasp = max(top_z + GRASP_Z_ABOVE_TOP, FLAT_MIN_Z if flat else GRASP_MIN_Z)
    above = np.array([c[0], c[1], max(z_grasp + 0.12, 0.16)])
    at = np.array([c[0], c[1], z_grasp])
    pre = hand.posture("open")
    power = hand.posture("power")
    return [
        Waypoint(above, q, pre, 1.2, label="approach"),
        Waypoint(at, q, pre, 1.0, converge=True, tol=0.008, label="descend", replan_fn=moved),
        Waypoint(at, q, power, 0.8, label="close"),
        Waypoint(at + np.array([0, 0, lift]), q, power, 1.5, label="lift"),
        Waypoint(at + np.array([0, 0, lift]), q, power, hold_s, label="hold"),
    ]


MAX_REPLANS = 2
REPLAN_TOL = 0.01  # m: a loose object that moved this much before the descent gets a fresh grasp plan
GRASP_Z_ABOVE_TOP = -0.018  # grasp site sits 2.9 cm in front of the palm face: palm ~1 cm above the top
GRASP_MIN_Z = 0.038
"""Lowest grasp-site height (m): below it the curling fingertips strike the table, which lifts the hand
and flicks a short object out backwards (every failure of the 4.8 cm parcel at 0.030)."""
FLAT_TOP_Z = 0.045
"""Objects lower than this (m) are grasped with the palm heel tilted down by ``FLAT_HEEL_PITCH`` and the
grasp site at least ``FLAT_MIN_Z`` high: level, the closing fingers squeeze a flat box out under the palm."""
FLAT_HEEL_PITCH = 0.2
FLAT_MIN_Z = 0.045
BASKET_FLOOR = 0.008  # top of the basket floor (tasks/pick_and_place.py)
DROP_CLEARANCE = 0.01
"""The package is lowered until its lowest corner is this far above the basket floor, then released:
dropped from higher, the opening fingers flicked it against a wall."""


def plan_pick_plush_toy(env, expert) -> list[Waypoint]:
    task, d = env.task, env.data
    p = task.object_pos(d)
    hx, hy, hz = task.obj.half_extents()
    yaw = task.object_yaw(d)
    # wrap the fingers across the shorter horizontal dimension
    g_yaw = grasp_yaw(yaw, hx, hy)
    top = p[2] + hz
    return _top_grasp(env, expert, p, g_yaw, top, finger_offset=GRASP_FINGER_OFFSET, moved=_moved_from(p))


def _moved_from(p0: np.ndarray, tol: float = REPLAN_TOL) -> Callable:
    """``fn(env) -> bool``: the task's object is more than ``tol`` (m) from where it was planned."""
    p0 = np.asarray(p0, float).copy()
    return lambda env: bool(np.linalg.norm(env.task.object_pos(env.data) - p0) > tol)


GRASP_FINGER_OFFSET = -0.045  # grasp site behind the object centre: the object sits under the finger bases


def plan_pick_and_place(env, expert) -> list[Waypoint]:
    task, d = env.task, env.data
    p = task.object_pos(d)
    hx, hy, hz = task.obj.half_extents()
    yaw = task.object_yaw(d)
    g_yaw = grasp_yaw(yaw, hx, hy)
    plan = _top_grasp(
        env, expert, p, g_yaw, p[2] + hz, finger_offset=GRASP_FINGER_OFFSET, hold_s=0.0, moved=_moved_from(p)
    )[:-1]
    bpos, _ = task.basket_pose(d)
    q = plan[-1].quat
    power, open_ = env.hand.posture("power"), env.hand.posture("open")
    jitter = expert.rng.uniform(-0.03, 0.03, 2) if expert.sub else np.zeros(2)

    def over_basket(z):  # closed loop: put the object (wherever it sits in the hand) over the basket
        def fn(env):
            site, _ = env.grasp_site_pose()
            obj = env.task.object_pos(env.data)
            xy = bpos[:2] + jitter + (site[:2] - obj[:2])
            if z is None:  # lower until the object's lowest corner is DROP_CLEARANCE above the floor
                bottom = env.task.corners_in_basket(env.data)[:, 2].min()
                return np.array([xy[0], xy[1], site[2] - bottom + BASKET_FLOOR + DROP_CLEARANCE])
            return np.array([xy[0], xy[1], z])

        return fn

    def here(dz=0.0):
        return lambda env: expert.cur_pos + np.array([0, 0, dz])

    above = np.array([bpos[0], bpos[1], 0.19])
    return plan + [
        Waypoint(above, q, power, 1.5, label="transport", target_fn=over_basket(0.19)),
        Waypoint(above, q, power, 1.0, converge=True, tol=0.015, label="lower",
                 target_fn=over_basket(None)),
        Waypoint(above, q, open_, 0.6, label="release", target_fn=here()),
        Waypoint(above, q, open_, 1.0, label="retreat", target_fn=here(0.12)),
        Waypoint(above, q, open_, 1.0, label="hold", target_fn=here()),
    ]


def plan_open_box(env, expert) -> list[Waypoint]:
    task, d, m = env.task, env.data, env.model
    handle = d.geom_xpos[task.handle_id].copy()
    from bora_sim.tasks.base import quat_yaw


    box_yaw = quat_yaw(d.mocap_quat[task.mocap_id])
    hinge = d.xpos[task.lid_id].copy()
    axis = np.array([-np.sin(box_yaw), np.cos(box_yaw), 0.0])
    r_h = m.geom_size[task.handle_id][0]
    plan = _top_grasp(
        env,
        expert,
        handle,
        box_yaw,
        handle[2] + r_h,
        finger_offset=GRASP_FINGER_OFFSET + OPEN_BOX_OFFSET,
        hold_s=0.0,
    )[:3]
    at = plan[-1].pos
    q0 = plan[-1].quat
    power, open_ = env.hand.posture("power"), env.hand.posture("open")
    th0 = task.angle(d)
    arc = []
    targets = np.linspace(th0, OPEN_BOX_TARGET, 5)[1:]
    for th in targets:
        dq = axis_quat(axis, th - th0)
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, dq)
        pos = hinge + rot.reshape(3, 3) @ (at - hinge)
        arc.append(
            Waypoint(
                pos, quat_mul(axis_quat(axis, OPEN_BOX_WRIST * (th - th0)), q0), power, 0.8, label="open"
            )
        )
    last = arc[-1]
    fwd = np.array([np.cos(box_yaw), np.sin(box_yaw), 0.0])
    back = last.pos - OPEN_BOX_BACKOFF * fwd + np.array([0, 0, 0.02])
    push = back + OPEN_BOX_PUSH * fwd
    return (
        plan
        + arc
        + [
            Waypoint(last.pos, last.quat, open_, 0.5, label="release"),
            Waypoint(back, q0, open_, 0.8, label="reposition"),
            Waypoint(push, q0, open_, 1.2, label="push"),
            Waypoint(push, q0, open_, 0.5, label="hold"),
        ]
    )


OPEN_BOX_TARGET = 1.25  # lift the lid by the handle this far, then push it over
OPEN_BOX_BACKOFF = 0.06
OPEN_BOX_PUSH = 0.3
OPEN_BOX_WRIST = 0.5  # fraction of the lid rotation the wrist follows (the bar turns inside the fist)
OPEN_BOX_OFFSET = 0.0


def plan_pull_tissue(env, expert) -> list[Waypoint]:
    from bora_sim.tasks.base import quat_yaw

    task, d = env.task, env.data
    yaw = quat_yaw(d.mocap_quat[task.mocap_id])
    hx, hy, hz = task.obj.half_extents()
    p = d.xpos[task.tab_id].copy()
    top = p[2] + hz
    plan = _top_grasp(
        env, expert, p, wrap_half_pi(yaw), top, finger_offset=GRASP_FINGER_OFFSET + TISSUE_OFFSET, hold_s=0.0
    )[:3]
    at, q = plan[-1].pos, plan[-1].quat
    power = env.hand.posture("power")
    up = at + np.array([0, 0, task.extract_length + 0.06])
    return plan + [
        Waypoint(at + np.array([0, 0, 0.03]), q, power, 0.8, label="pull"),
        Waypoint(up, q, power, 1.6, label="pull"),
        Waypoint(up, q, power, 1.0, label="hold"),
    ]


TISSUE_OFFSET = 0.0


def _tip_offset(env, posture: str, finger: str = "ff") -> np.ndarray:
    """Fingertip pad point in the grasp-site frame for a hand posture (forward kinematics)."""
    key = (id(env.model), posture, finger)
    if key not in _TIP_CACHE:
        m = env.model
        d = mujoco.MjData(m)
        d.qpos[env.arm_qadr] = env.data.qpos[env.arm_qadr]
        d.qpos[env.hand_qadr] = env.hand.posture(posture)
        mujoco.mj_kinematics(m, d)
        R = d.site_xmat[env.grasp_site_id].reshape(3, 3)
        tip = d.site(env.hand.fingertip_sites[finger]).xpos
        local = R.T @ (tip - d.site_xpos[env.grasp_site_id])
        _TIP_CACHE[key] = local + np.array([-0.012, 0.0, 0.008])  # pad: 1.2 cm back, on the palm side
    return _TIP_CACHE[key]


_TIP_CACHE: dict = {}


def _capsule_ends(env, posture: str, geom: str) -> tuple[np.ndarray, float]:
    """End-sphere centres [2, 3] of a hand capsule geom in the grasp-site frame, and its radius."""
    key = (id(env.model), posture, geom)
    if key not in _TIP_CACHE:
        m = env.model
        d = mujoco.MjData(m)
        d.qpos[env.arm_qadr] = env.data.qpos[env.arm_qadr]
        d.qpos[env.hand_qadr] = env.hand.posture(posture)
        mujoco.mj_kinematics(m, d)
        R = d.site_xmat[env.grasp_site_id].reshape(3, 3)
        g = m.geom(geom).id
        r, half = m.geom_size[g][0], m.geom_size[g][1]
        axis = d.geom_xmat[g].reshape(3, 3)[:, 2]
        ends = np.stack([d.geom_xpos[g] + s * half * axis for s in (-1.0, 1.0)])
        _TIP_CACHE[key] = ((ends - d.site_xpos[env.grasp_site_id]) @ R, float(r))
    return _TIP_CACHE[key]


def plan_press_button(env, expert) -> list[Waypoint]:
    """Press with the index fingertip, the hand pitched fingers-down by ``PRESS_PITCH``.

    With a level hand the straight index lies flat on the cap and its proximal phalanx lands on the
    housing before the cap is down (a 14 mm cap over 15 mm of travel): only the fingertip may touch.
    """
    task, d = env.task, env.data
    top = task.cap_top(d)
    yaw = 0.0
    q = quat_mul(palm_down(yaw), axis_quat([0.0, 1.0, 0.0], -PRESS_PITCH))
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, q)
    R = R.reshape(3, 3)
    ends, r = _capsule_ends(env, "point", "hand/robot0:C_ffdistal")
    w = ends @ R.T
    tip = w[np.argmin(w[:, 2])] - np.array([0.0, 0.0, r])  # lowest point of the fingertip (world offset)
    if expert.sub:
        top = top + np.r_[expert.rng.uniform(-0.006, 0.006, 2), 0]
    hand = env.hand.posture("point")
    above = top - tip + np.array([0, 0, 0.06])
    touch = top - tip + np.array([0, 0, 0.004])
    press = top - tip + np.array([0, 0, -PRESS_PAST])
    return [
        Waypoint(above, q, hand, 1.2, label="approach"),
        Waypoint(touch, q, hand, 0.8, converge=True, tol=0.006, label="descend"),
        Waypoint(press, q, hand, 0.8, label="press"),
        Waypoint(press, q, hand, 1.0, label="hold"),
        Waypoint(above, q, hand, 1.0, label="retreat"),
    ]


PRESS_PAST = 0.03  # command the tip this far below the cap top: the finger and contacts absorb part of it
PRESS_PITCH = 0.8  # rad, fingers down

PLANNERS: dict[str, Callable] = {
    "pick_plush_toy": plan_pick_plush_toy,
    "pick_and_place": plan_pick_and_place,
    "open_box": plan_open_box,
    "pull_tissue": plan_pull_tissue,
    "press_button": plan_press_button,
}

__all__ = ["ExpertKnobs", "ScriptedExpert", "Waypoint", "PLANNERS", "palm_down", "axis_quat", "mujoco"]
