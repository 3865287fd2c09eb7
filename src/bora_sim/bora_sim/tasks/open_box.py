"""Open the box: rotate the hinged lid past ``success_angle`` (Table 4: "fully ... flip open").

The box base is fixed; the lid turns about a hinge on the far edge and carries a bar handle at its
front edge. Variation (paper Fig. 7): box position and yaw, and the lid's initial opening angle.
The "object" of an object set is the lid (size = half extents, mass, friction, colour).
"""

from __future__ import annotations

import mujoco
import numpy as np

from bora_sim.scene import WORKSPACE_CENTER
from bora_sim.tasks.base import Task, add_object_geom, yaw_to_quat

BASE_HEIGHT = 0.07


class OpenBox(Task):
    name = "open_box"
    instruction = "open the box"
    time_limit_s = 12.0
    hold_steps = 1
    success_angle = 1.4  # rad (80 degrees)
    init_angle_range = (0.0, 0.3)

    def build(self, spec: mujoco.MjSpec) -> None:
        lx, ly, lz = self.obj.half_extents()
        box = spec.worldbody.add_body(name="box", pos=[WORKSPACE_CENTER[0], 0, 0], mocap=True)
        box.add_geom(
            name="box_base",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[lx, ly, BASE_HEIGHT / 2],
            pos=[0, 0, BASE_HEIGHT / 2],
            rgba=[0.75, 0.7, 0.6, 1],
            contype=1,
            conaffinity=3,
        )
        lid = box.add_body(name="lid", pos=[lx, 0, BASE_HEIGHT])
        lid.add_joint(
            name="lid_hinge",
            type=mujoco.mjtJoint.mjJNT_HINGE,
            axis=[0, 1, 0],
            range=[0, 2.7],
            damping=0.05,
            frictionloss=float(self.obj.params.get("hinge_friction", 0.08)),
        )
        add_object_geom(spec, lid, self.obj, "lid_geom", pos=[-lx, 0, lz])
        r = float(self.obj.params.get("handle_radius", 0.011))
        hl = 0.6 * ly
        lid.add_geom(
            name="lid_handle",
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            size=[r, hl, 0],
            pos=[-2 * lx + 0.02, 0, 2 * lz + 0.03],
            quat=[0.7071068, 0.7071068, 0, 0],
            mass=0.01,
            rgba=[0.2, 0.2, 0.2, 1],
            contype=1,
            conaffinity=3,
            friction=[1.5, 0.005, 0.0001],
            condim=4,
        )
        for s in (-1, 1):
            lid.add_geom(
                name=f"lid_post{s:+d}",
                type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                size=[0.005, 0.015, 0],
                pos=[-2 * lx + 0.02, s * hl, 2 * lz + 0.015],
                mass=0.005,
                rgba=[0.2, 0.2, 0.2, 1],
                contype=1,
                conaffinity=3,
            )

    def bind(self, model):
        super().bind(model)
        self.box_id = model.body("box").id
        self.mocap_id = model.body_mocapid[self.box_id]
        self.lid_id = model.body("lid").id
        self.qadr = model.jnt_qposadr[model.joint("lid_hinge").id]
        self.geoms = [model.geom(n).id for n in ("lid_geom", "lid_handle", "lid_post-1", "lid_post+1")]
        self.handle_id = model.geom("lid_handle").id

    def randomize(self, data, rng) -> dict[str, float]:
        dx, dy = rng.uniform(-0.04, 0.04, 2)
        yaw = rng.uniform(-0.35, 0.35)
        ang = rng.uniform(*self.init_angle_range)
        data.mocap_pos[self.mocap_id] = [WORKSPACE_CENTER[0] + 0.04 + dx, dy, 0]
        data.mocap_quat[self.mocap_id] = yaw_to_quat(yaw)
        data.qpos[self.qadr] = ang
        return {
            "x": float(WORKSPACE_CENTER[0] + 0.04 + dx),
            "y": float(dy),
            "yaw": float(yaw),
            "lid_angle": float(ang),
        }

    def angle(self, data) -> float:
        return float(data.qpos[self.qadr])

    def instant_success(self, data) -> bool:
        return self.angle(data) >= self.success_angle

    def progress(self, data) -> float:
        return float(np.clip(self.angle(data) / self.success_angle, 0, 1))

    def extras(self, data) -> dict:
        return {"lid_angle": self.angle(data), "hand_contacts": len(self.hand_contacts(data, self.geoms))}
