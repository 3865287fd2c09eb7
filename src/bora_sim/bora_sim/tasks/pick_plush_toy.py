"""Pick the plush toy: lift a compliant toy clear of the table and hold it steady (Table 4).

The toy is a body with soft contact (compliant solref/solimp: it squashes a few millimetres under
the fingers) plus two floppy ears on spring hinges. Success: the lowest point of the toy body is at
least ``lift_height`` above the table and its speed is below ``max_speed``, for ``hold_steps``
control steps in a row.
"""

from __future__ import annotations

import mujoco
import numpy as np

from bora_sim.scene import WORKSPACE_CENTER
from bora_sim.tasks.base import Task, add_object_geom, free_joint_set, quat_yaw, yaw_to_quat


class PickPlushToy(Task):
    name = "pick_plush_toy"
    instruction = "pick up the plush toy"
    time_limit_s = 10.0
    hold_steps = 8
    # the operator's rescues took 4.0-5.2 s against its plan's nominal 4.3 s (the descent waits for the hand to be
    # at the grasp; a bumped toy is planned for again); without this slack its deadline takeover (step 43 of 100)
    # left no room: 7 of 16 taken-over online episodes through the ROS graph ran out of time (2026-12-05)
    rescue_slack_s = 1.0
    lift_height = 0.06
    max_speed = 0.15
    pos_range = 0.05  # +- m around the workspace centre (x and y)

    def build(self, spec: mujoco.MjSpec) -> None:
        hx, hy, hz = self.obj.half_extents()
        body = spec.worldbody.add_body(name="toy", pos=[WORKSPACE_CENTER[0], 0, hz])
        body.add_freejoint(name="toy_free")
        add_object_geom(spec, body, self.obj, "toy_geom")
        # floppy ears: small spheres on spring hinges (compliant appendages)
        ear_r = 0.35 * min(hx, hy, hz) + 0.004
        for side in (-1, 1):
            ear = body.add_body(name=f"toy_ear{side:+d}", pos=[-0.6 * hx, side * 0.6 * hy, 0.8 * hz])
            ear.add_joint(
                name=f"toy_ear{side:+d}_hinge",
                type=mujoco.mjtJoint.mjJNT_HINGE,
                axis=[1, 0, 0],
                stiffness=0.02,
                damping=0.002,
                range=[-0.6, 0.6],
            )
            ear.add_geom(
                name=f"toy_ear{side:+d}_geom",
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=[ear_r, 0, 0],
                pos=[0, side * 0.3 * ear_r, 0.6 * ear_r],
                mass=0.005,
                rgba=[c * 0.7 for c in self.obj.rgba[:3]] + [1.0],
                contype=1,
                conaffinity=3,
                solref=[0.02, 0.8],
                friction=[self.obj.friction, 0.005, 0.0001],
                condim=4,
            )

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self.body_id = model.body("toy").id
        self.geoms = [
            model.geom("toy_geom").id,
            model.geom("toy_ear-1_geom").id,
            model.geom("toy_ear+1_geom").id,
        ]
        self.rest_z = float(self.obj.half_extents()[2])

    def randomize(self, data: mujoco.MjData, rng: np.random.Generator) -> dict[str, float]:
        dx, dy = rng.uniform(-self.pos_range, self.pos_range, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        pos = [WORKSPACE_CENTER[0] + dx, WORKSPACE_CENTER[1] + dy, self.rest_z + 0.002]
        free_joint_set(data, self.model, "toy_free", pos, yaw_to_quat(yaw))
        return {"x": float(pos[0]), "y": float(pos[1]), "yaw": float(yaw)}

    # --- state ---------------------------------------------------------------------------------
    def object_pos(self, data) -> np.ndarray:
        return data.xpos[self.body_id].copy()

    def object_yaw(self, data) -> float:
        return quat_yaw(data.xquat[self.body_id])

    def clearance(self, data) -> float:
        """Height of the toy body's lowest point above the table (bounding-sphere free estimate)."""
        return float(data.xpos[self.body_id][2] - self.rest_z)

    def speed(self, data) -> float:
        v = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_BODY, self.body_id, v, 0)
        return float(np.linalg.norm(v[3:]))

    def instant_success(self, data) -> bool:
        return self.clearance(data) >= self.lift_height and self.speed(data) <= self.max_speed

    def progress(self, data) -> float:
        return float(np.clip(self.clearance(data) / self.lift_height, 0.0, 1.0))

    def extras(self, data) -> dict:
        return {
            "object_height": self.clearance(data),
            "object_speed": self.speed(data),
            "hand_contacts": len(self.hand_contacts(data, self.geoms)),
        }
