"""``BoraSimEnv``: one gymnasium environment per task, seeded and deterministic.

Observation (dict): ``color`` [n_cam, H, W, 3] uint8, ``depth`` [n_cam, H, W] float32 metres,
``arm_qpos`` [7], ``hand_qpos`` [n_hand] (the raw parts of the state; ``bora_policy.common.state`` defines
how they form the state vector, ``state_vector()``), ``instruction`` str. Cameras: ``CAMERA_NAMES``;
the arm draws its detailed meshes unless ``arm_mesh="collision"`` (low-poly, faster; images only, ``bora_sim.scene``).
A caller that will not look at the next observation's images (an evaluation between two replans) says so
with :meth:`BoraSimEnv.skip_next_images`: that observation then has no ``color``/``depth`` keys and the three
renders, most of a control step's time, are not done; physics and every other key are unchanged.

Action: joint POSITION targets in radians, ``[7 arm joints, n_hand hand joints]``
(docs/interfaces.md). The policy acts in joint space; the scripted experts plan in a
low-dimensional space (grasp-site pose by IK + grasp synergies) and output the same joint targets.
Targets outside the actuator ranges are clipped.

Reward (sparse, paper Section 3: terminal success reward + per-step time penalty):
:func:`bora_policy.common.rewards.step_task_reward` with ``SIM_REWARD`` by default: ``-time_penalty``
every step, plus ``success_reward`` on the step the success predicate becomes true, which terminates
the episode. The time limit truncates.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

import bora_sim  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)
from bora_policy.common.graph_params import graph_default
from bora_policy.common.rewards import SIM_REWARD, RewardConfig, step_task_reward
from bora_policy.common.state import ARM_KEY, HAND_KEY, state_vector
from bora_sim.hand import HandConfig, get_hand
from bora_sim.objects import ObjectSet, ObjectSpec, resolve_object_set
from bora_sim.scene import (
    ARM_HOME,
    ARM_JOINT_NAMES,
    CAMERA_NAMES,
    CAMERAS,
    GRASP_SITE,
    TIMESTEP,
    actuator_ids_for_joints,
    base_spec,
    camera_intrinsics,
    joint_dof_adr,
    joint_qpos_adr,
)
from bora_sim.tasks import Task, get_task_class

_MODEL_CACHE: dict[tuple, mujoco.MjModel] = {}


def build_model(task_name: str, obj: ObjectSpec, hand: HandConfig, arm_mesh: str = "detailed",
                timestep: float = TIMESTEP) -> mujoco.MjModel:
    """Compiled model of ``task_name`` with ``obj``; cached per (task, hand, object, arm_mesh, timestep)."""
    key = (task_name, hand.name, repr(obj), arm_mesh, float(timestep))
    if key not in _MODEL_CACHE:
        spec = base_spec(hand, arm_mesh)
        spec.option.timestep = float(timestep)
        get_task_class(task_name)(obj).build(spec)
        with warnings.catch_warnings():  # harmless "Attach conflict ... nuser_*" notes of MjSpec.attach
            warnings.filterwarnings("ignore", message="Attach conflict")
            _MODEL_CACHE[key] = spec.compile()
    return _MODEL_CACHE[key]


class BoraSimEnv(gym.Env):
    """Franka + dexterous hand, one of the five BORA tasks (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str,
        object_set: str | Path | ObjectSet = "standard",
        hand: str = "shadow",
        image_size: int | tuple[int, int] = 96,
        control_hz: float | None = None,
        render: bool = True,
        reward: RewardConfig = SIM_REWARD,
        time_limit_s: float | None = None,
        arm_mesh: str = "detailed",
    ):
        self.arm_mesh = arm_mesh  # checked where the scene is built (bora_sim.scene._arm_spec)
        control_hz = graph_default("control_hz") if control_hz is None else control_hz  # config/graph.yaml
        if not 5.0 <= control_hz <= 50.0:
            raise ValueError(f"control_hz must be in [5, 50] Hz (10-30 recommended), got {control_hz}")
        self.task_name = task
        self.task_cls = get_task_class(task)
        self.object_set = resolve_object_set(task, object_set)
        self.hand = get_hand(hand)
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_size = (int(h), int(w))
        self.control_hz = float(control_hz)
        # physics substeps of one control step: TIMESTEP (2 ms) where it divides the control period (10, 20 Hz: the
        # same model as always), else the nearest count with the timestep shortened to fit exactly (30 Hz: 17 x
        # 1.96 ms; until 2026-12-08 17 x 2 ms, so simulated time ran 2% ahead of the control clock)
        self.n_substeps = max(1, int(round(1.0 / (self.control_hz * TIMESTEP))))
        self.timestep = 1.0 / (self.control_hz * self.n_substeps)
        self.render_images = bool(render)
        self._skip_images = False  # one-shot: skip_next_images()
        self.reward_cfg = reward
        self.time_limit_s = float(time_limit_s if time_limit_s is not None else self.task_cls.time_limit_s)
        self.max_steps = int(round(self.time_limit_s * self.control_hz))
        self.arm_joint_names = ARM_JOINT_NAMES
        self.hand_joint_names = self.hand.joint_names
        self.camera_names = CAMERA_NAMES
        self.action_dim = 7 + len(self.hand_joint_names)
        self._renderers: dict[int, Any] = {}
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self.task: Task | None = None
        self.obj: ObjectSpec | None = None
        self._load(self.object_set.objects[0])
        H, W = self.image_size
        n_cam, n_hand = len(CAMERA_NAMES), len(self.hand_joint_names)
        lo, hi = self.model.actuator_ctrlrange[self.act_ids].T
        self.action_space = gym.spaces.Box(lo.astype(np.float32), hi.astype(np.float32), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(
            {
                "color": gym.spaces.Box(0, 255, (n_cam, H, W, 3), np.uint8),
                "depth": gym.spaces.Box(0.0, np.inf, (n_cam, H, W), np.float32),
                ARM_KEY: gym.spaces.Box(-np.inf, np.inf, (7,), np.float32),
                HAND_KEY: gym.spaces.Box(-np.inf, np.inf, (n_hand,), np.float32),
                "instruction": gym.spaces.Text(
                    max_length=200,
                    min_length=0,
                    charset="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-'",
                ),
            }
        )
        self.intrinsics = {c.name: camera_intrinsics(c.fovy_deg, W, H) for c in CAMERAS}

    # --- model management ----------------------------------------------------------------------
    def _load(self, obj: ObjectSpec) -> None:
        model = build_model(self.task_name, obj, self.hand, self.arm_mesh, self.timestep)
        if model is not self.model:
            self.model = model
            self.data = mujoco.MjData(model)
            self.arm_qadr = joint_qpos_adr(model, ARM_JOINT_NAMES)
            self.arm_dadr = joint_dof_adr(model, ARM_JOINT_NAMES)
            self.hand_qadr = joint_qpos_adr(model, self.hand_joint_names)
            self.act_ids = np.concatenate(
                [
                    actuator_ids_for_joints(model, ARM_JOINT_NAMES),
                    actuator_ids_for_joints(model, self.hand_joint_names),
                ]
            )
            self.grasp_site_id = model.site(GRASP_SITE).id
            self.task = self.task_cls(obj)
            self.task.bind(model)
        self.obj = obj

    def _renderer(self):
        from bora_sim.render import RGBDRenderer

        key = id(self.model)
        if key not in self._renderers:
            self._renderers[key] = RGBDRenderer(self.model, CAMERA_NAMES, *self.image_size)
        return self._renderers[key]

    # --- gym API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._skip_images = False
        rng = self.np_random
        obj = self.object_set.objects[int(rng.integers(len(self.object_set.objects)))]
        self._load(obj)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self.arm_qadr] = ARM_HOME
        hand0 = self.hand.posture("open")
        d.qpos[self.hand_qadr] = hand0
        self.variation = self.task.randomize(d, rng)
        self.task.reset_counters()
        d.ctrl[self.act_ids] = np.concatenate([ARM_HOME, hand0])
        mujoco.mj_forward(m, d)
        for _ in range(100):  # let objects settle (0.2 s)
            mujoco.mj_step(m, d)
        self.steps = 0
        self.last_action = np.concatenate([ARM_HOME, hand0]).astype(np.float32)
        self.last_status = self.task.evaluate(d)
        self.task.reset_counters()
        return self._obs(), self._info(self.last_status)

    def step(self, action):
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(
                f"action must have shape ({self.action_dim},) = 7 arm + {len(self.hand_joint_names)} "
                f"hand joint targets, got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        a = np.clip(a, self.action_space.low, self.action_space.high)
        m, d = self.model, self.data
        d.ctrl[self.act_ids] = a
        for _ in range(self.n_substeps):
            mujoco.mj_step(m, d)
        self.steps += 1
        self.last_action = a.astype(np.float32)
        status = self.task.evaluate(d)
        self.last_status = status
        terminated = bool(status.success)
        truncated = (not terminated) and self.steps >= self.max_steps
        reward = step_task_reward(self.reward_cfg, terminated)
        return self._obs(), float(reward), terminated, truncated, self._info(status)

    def close(self):
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def skip_next_images(self) -> None:
        """The observation of the NEXT ``step`` (only that one) comes without ``color`` and ``depth``: the
        cameras are not rendered. For callers that will not look at those images (``bora eval`` renders only
        the observations a chunk is planned from, or whose critic value is recorded); physics, rewards and the
        other observation keys are the same either way. A ``reset`` always renders and clears the request."""
        self._skip_images = True

    # --- observation ---------------------------------------------------------------------------
    def _obs(self) -> dict[str, Any]:
        d = self.data
        n_cam, (H, W) = len(CAMERA_NAMES), self.image_size
        skip, self._skip_images = self._skip_images, False
        if skip:
            return {
                ARM_KEY: d.qpos[self.arm_qadr].astype(np.float32),
                HAND_KEY: d.qpos[self.hand_qadr].astype(np.float32),
                "instruction": self.task.instruction,
            }
        if self.render_images:
            color, depth = self._renderer().render(d)
        else:
            color = np.zeros((n_cam, H, W, 3), np.uint8)
            depth = np.zeros((n_cam, H, W), np.float32)
        return {
            "color": color,
            "depth": depth,
            ARM_KEY: d.qpos[self.arm_qadr].astype(np.float32),
            HAND_KEY: d.qpos[self.hand_qadr].astype(np.float32),
            "instruction": self.task.instruction,
        }

    def _info(self, status) -> dict[str, Any]:
        info = {
            "success": bool(status.success),
            "task_progress": float(status.progress),
            "step": self.steps,
            "time_s": self.steps / self.control_hz,
            "object": self.obj.name,
            "object_set": self.object_set.name,
            "variation": dict(self.variation),
        }
        info.update(status.extras)
        return info

    def state_vector(self) -> np.ndarray:
        """Proprio / state vector ``[arm qpos (7), hand qpos (n_hand)]`` float32 (``bora_policy.common.state``,
        the layout the policy runtime's processor builds from the observation's raw parts)."""
        d = self.data
        return state_vector(d.qpos[self.arm_qadr], d.qpos[self.hand_qadr])

    def grasp_site_pose(self) -> tuple[np.ndarray, np.ndarray]:
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, self.data.site_xmat[self.grasp_site_id])
        return self.data.site_xpos[self.grasp_site_id].copy(), q

    def camera_info(self) -> dict[str, dict[str, float]]:
        """Pinhole intrinsics (fx, fy, cx, cy, width, height) per camera, for sensor_msgs/CameraInfo."""
        return dict(self.intrinsics)

    def render(self):
        color, _ = self._renderer().render(self.data)
        return np.concatenate(list(color), axis=1)


#: the keys of :meth:`BoraSimEnv._info` that describe the episode, not the task's state
EPISODE_INFO_KEYS = frozenset({"success", "step", "time_s", "object", "object_set", "variation"})


def task_state(info: dict[str, Any]) -> dict[str, Any]:
    """The task's state in a step's ``info``: ``task_progress`` and the task's own extras (``tasks/*.py``
    ``extras``: object height, in the basket, lid angle, contacts, ...) as plain JSON values, floats to 4
    decimals. ``bora eval`` records it at each episode's end, to tell failures apart."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        if k in EPISODE_INFO_KEYS:
            continue
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = round(float(v), 4)
        elif isinstance(v, (str, type(None))):
            out[k] = v
        elif isinstance(v, (np.ndarray, list, tuple)):
            out[k] = np.round(np.asarray(v, dtype=np.float64), 4).tolist()
        else:
            raise TypeError(f"task_state: info[{k!r}] is a {type(v).__name__}; expected a number, bool, str or array")
    return out


def make_env(
    task: str,
    object_set: str | Path | ObjectSet = "standard",
    seed: int | None = None,
    image_size: int | tuple[int, int] = 96,
    control_hz: float | None = None,  # None: config/graph.yaml's
    render: bool = True,
    hand: str = "shadow",
    **kw,
) -> BoraSimEnv:
    """Build a task environment; if ``seed`` is given the first ``reset`` uses it."""
    env = BoraSimEnv(
        task,
        object_set=object_set,
        hand=hand,
        image_size=image_size,
        control_hz=control_hz,
        render=render,
        **kw,
    )
    if seed is not None:
        env.reset(seed=seed)
    return env
