"""Differential inverse kinematics of the arm (mink + daqp) on a separate 7-DoF arm-only model.

Solving on the arm-only model keeps the solver from moving finger joints or object free joints.
Settings that track a moving target stably (see docs): FrameTask (orientation cost 0.5),
PostureTask 1e-3 towards the home posture, ConfigurationLimit, VelocityLimit 2 rad/s, damping 1e-3.
"""

from __future__ import annotations

import mink
import mujoco
import numpy as np

from bora_sim.scene import ARM_HOME, GRASP_SITE, arm_only_model

# palm down, fingers pointing away from the robot (+x): grasp-site axes x=+x, y=-y, z=-z (world)
PALM_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])

_ARM_MODEL: mujoco.MjModel | None = None


def _arm_model() -> mujoco.MjModel:
    global _ARM_MODEL
    if _ARM_MODEL is None:
        _ARM_MODEL = arm_only_model()
    return _ARM_MODEL


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def axis_quat(axis, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


class ArmIK:
    """Tracks grasp-site pose targets; returns arm joint targets (rad)."""

    def __init__(
        self,
        orientation_cost: float = 0.5,
        posture_cost: float = 1e-3,
        max_vel: float = 2.0,
        damping: float = 1e-3,
        iters: int = 2,
    ):
        model = _arm_model()
        self.model = model
        self.cfg = mink.Configuration(model)
        self.frame = mink.FrameTask(
            GRASP_SITE, "site", position_cost=1.0, orientation_cost=orientation_cost, lm_damping=1.0
        )
        self.posture = mink.PostureTask(model, cost=posture_cost)
        self.posture.set_target(ARM_HOME)
        names = [model.joint(i).name for i in range(model.njnt)]
        self.limits = [mink.ConfigurationLimit(model), mink.VelocityLimit(model, {n: max_vel for n in names})]
        self.damping, self.iters = damping, iters
        self.reset(ARM_HOME)

    def reset(self, q: np.ndarray) -> None:
        self.cfg.update(np.asarray(q, float).copy())

    @property
    def q(self) -> np.ndarray:
        return self.cfg.q.copy()

    def site_pose(self, q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if q is not None:
            self.cfg.update(np.asarray(q, float))
        d = self.cfg.data
        sid = self.model.site(GRASP_SITE).id
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[sid])
        return d.site_xpos[sid].copy(), quat

    def step(self, pos: np.ndarray, quat: np.ndarray, dt: float) -> np.ndarray:
        """Move the internal configuration towards the target for ``dt`` seconds; return q."""
        target = mink.SE3.from_rotation_and_translation(
            mink.SO3(np.asarray(quat, float)), np.asarray(pos, float)
        )
        self.frame.set_target(target)
        sub = dt / self.iters
        for _ in range(self.iters):
            vel = mink.solve_ik(
                self.cfg, [self.frame, self.posture], sub, "daqp", damping=self.damping, limits=self.limits
            )
            self.cfg.integrate_inplace(vel, sub)
        return self.q

    def solve(self, pos, quat, q0=None, iters: int = 200, tol: float = 1e-3) -> tuple[np.ndarray, float]:
        """Converge to a static target from ``q0``; returns (q, position error)."""
        self.reset(ARM_HOME if q0 is None else q0)
        err = np.inf
        for _ in range(iters):
            self.step(pos, quat, 0.05)
            p, _ = self.site_pose()
            err = float(np.linalg.norm(p - pos))
            if err < tol:
                break
        return self.q, err
