"""Task base: objects added to the scene, seeded variation, a success predicate from physics state.

A task instance is bound to one compiled model (``bind``). Success predicates read only
``MjData`` (positions, velocities, contacts) plus, for "held steady" criteria, a step counter that
``evaluate`` advances; ``instant_success`` is the memoryless part, usable on hand-made states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from bora_sim.objects import ObjectSpec

_GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
    "mesh": mujoco.mjtGeom.mjGEOM_MESH,
}
SOFT_SOLREF = (0.02, 0.8)
SOFT_SOLIMP = (0.5, 0.95, 0.006, 0.5, 2.0)


def add_object_geom(spec: mujoco.MjSpec, body, obj: ObjectSpec, name: str, **kw) -> Any:
    """Add ``obj`` as a geom of ``body`` (mesh assets registered on ``spec``); returns the geom."""
    g_kw: dict[str, Any] = dict(
        name=name,
        type=_GEOM_TYPES[obj.shape],
        mass=obj.mass,
        rgba=list(obj.rgba),
        friction=[obj.friction, 0.005, 0.0001],
        condim=4,
        contype=1,
        conaffinity=3,
    )
    if obj.shape == "mesh":
        mesh_name = f"{name}_mesh"
        spec.add_mesh(name=mesh_name, file=obj.mesh, scale=list(obj.scale))
        g_kw["meshname"] = mesh_name
    else:
        g_kw["size"] = list(obj.size) + [0.0] * (3 - len(obj.size))
    if obj.soft:
        g_kw["solref"], g_kw["solimp"] = list(SOFT_SOLREF), list(SOFT_SOLIMP)
    g_kw.update(kw)
    return body.add_geom(**g_kw)


@dataclass
class TaskStatus:
    success: bool
    progress: float
    """Task-specific progress in [0, 1] (lift height, lid angle, extraction, depression...)."""
    extras: dict[str, Any] = field(default_factory=dict)


class Task:
    """Base class; subclasses define ``name``, ``instruction``, ``time_limit_s`` and the hooks."""

    name: str = ""
    instruction: str = ""
    time_limit_s: float = 10.0
    hold_steps: int = 0
    """Control steps the instant predicate must hold in a row ("held steady")."""
    rescue_slack_s: float = 0.0
    """Time (s) the scripted operator's rescue of this task takes beyond its plan's nominal durations (measured;
    its deadline takeover adds it: ``ScriptedOperator.plan_seconds``)."""

    def __init__(self, obj: ObjectSpec):
        self.obj = obj
        self._held = 0
        self.model: mujoco.MjModel | None = None

    # --- scene -------------------------------------------------------------------------------
    def build(self, spec: mujoco.MjSpec) -> None:
        raise NotImplementedError

    def bind(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.hand_geoms = np.array(
            [g for g in range(model.ngeom) if model.body(model.geom_bodyid[g]).name.startswith("hand/")]
        )
        self._hand_geom_set = set(self.hand_geoms.tolist())

    # --- episode -----------------------------------------------------------------------------
    def randomize(self, data: mujoco.MjData, rng: np.random.Generator) -> dict[str, float]:
        """Set the initial object state; returns the variation parameters (recorded per episode)."""
        raise NotImplementedError

    def reset_counters(self) -> None:
        self._held = 0

    def instant_success(self, data: mujoco.MjData) -> bool:
        raise NotImplementedError

    def progress(self, data: mujoco.MjData) -> float:
        return 0.0

    def extras(self, data: mujoco.MjData) -> dict[str, Any]:
        return {}

    def evaluate(self, data: mujoco.MjData) -> TaskStatus:
        """Advance the hold counter by one control step and report success and progress."""
        ok = self.instant_success(data)
        self._held = self._held + 1 if ok else 0
        success = ok and self._held >= max(1, self.hold_steps)
        return TaskStatus(success=success, progress=float(self.progress(data)), extras=self.extras(data))

    # --- helpers -----------------------------------------------------------------------------
    def hand_contacts(self, data: mujoco.MjData, geom_ids) -> list[tuple[int, int]]:
        """(hand geom, object geom) pairs in contact."""
        gset = set(int(g) for g in geom_ids)
        out = []
        for i in range(data.ncon):
            c = data.contact[i]
            g1, g2 = int(c.geom1), int(c.geom2)
            if g1 in self._hand_geom_set and g2 in gset:
                out.append((g1, g2))
            elif g2 in self._hand_geom_set and g1 in gset:
                out.append((g2, g1))
        return out

    def geom_contacts(self, data: mujoco.MjData, geoms_a, geoms_b) -> int:
        a, b = set(int(g) for g in geoms_a), set(int(g) for g in geoms_b)
        n = 0
        for i in range(data.ncon):
            g1, g2 = int(data.contact[i].geom1), int(data.contact[i].geom2)
            if (g1 in a and g2 in b) or (g2 in a and g1 in b):
                n += 1
        return n

    # expert hooks (privileged state) ------------------------------------------------------------
    def expert_plan(self, data: mujoco.MjData, expert) -> list:
        raise NotImplementedError


def free_joint_set(data: mujoco.MjData, model: mujoco.MjModel, joint: str, pos, quat) -> None:
    adr = model.jnt_qposadr[model.joint(joint).id]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = quat
    dadr = model.jnt_dofadr[model.joint(joint).id]
    data.qvel[dadr : dadr + 6] = 0.0


def yaw_to_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])


def quat_yaw(q: np.ndarray) -> float:
    """Yaw of the body's x axis projected on the table plane."""
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q)
    m = m.reshape(3, 3)
    return float(np.arctan2(m[1, 0], m[0, 0]))
