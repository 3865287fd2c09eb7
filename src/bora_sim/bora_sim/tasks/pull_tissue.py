"""Pull the tissue: pinch the tab sticking out of the slot and extract it fully (Table 4).

The tissue is a thin tab on a vertical slide joint through the slot of a fixed tissue box, with
friction and damping resisting the pull. It collides only with the hand. Success: extracted by
``extract_length`` (its whole length) -- the tab's bottom edge has left the slot.
"""

from __future__ import annotations

import mujoco
import numpy as np

from bora_sim.scene import WORKSPACE_CENTER
from bora_sim.tasks.base import Task, add_object_geom, yaw_to_quat

BOX_HALF = (0.06, 0.1, 0.045)


class PullTissue(Task):
    name = "pull_tissue"
    instruction = "pull a tissue out of the box"
    time_limit_s = 10.0
    hold_steps = 1
    extract_length = 0.10

    def build(self, spec):
        hx, hy, hz = self.obj.half_extents()  # tab half extents (thin along x)
        box = spec.worldbody.add_body(name="tissue_box", pos=[WORKSPACE_CENTER[0], 0, 0], mocap=True)
        bx, by, bz = BOX_HALF
        box.add_geom(
            name="tissue_box_geom",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[bx, by, bz],
            pos=[0, 0, bz],
            rgba=[0.3, 0.55, 0.75, 1],
            contype=1,
            conaffinity=3,
        )
        box.add_geom(
            name="tissue_slot",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.012, by * 0.7, 0.0005],
            pos=[0, 0, 2 * bz + 0.0005],
            rgba=[0.1, 0.1, 0.1, 1],
            contype=0,
            conaffinity=0,
        )
        exposed = float(self.obj.params.get("exposed", 0.04))
        tab = box.add_body(name="tissue", pos=[0, 0, 2 * bz + exposed - hz])
        tab.add_joint(
            name="tissue_slide",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, 0, 1],
            range=[0, self.extract_length + 0.02],
            damping=float(self.obj.params.get("damping", 2.0)),
            frictionloss=float(self.obj.params.get("frictionloss", 0.5)),
        )
        add_object_geom(spec, tab, self.obj, "tissue_geom", contype=0, conaffinity=2)

    def bind(self, model):
        super().bind(model)
        self.box_id = model.body("tissue_box").id
        self.mocap_id = model.body_mocapid[self.box_id]
        self.tab_id = model.body("tissue").id
        self.qadr = model.jnt_qposadr[model.joint("tissue_slide").id]
        self.geoms = [model.geom("tissue_geom").id]

    def randomize(self, data, rng):
        dx, dy = rng.uniform(-0.04, 0.04, 2)
        yaw = rng.uniform(-0.4, 0.4)
        data.mocap_pos[self.mocap_id] = [WORKSPACE_CENTER[0] + dx, dy, 0]
        data.mocap_quat[self.mocap_id] = yaw_to_quat(yaw)
        data.qpos[self.qadr] = 0.0
        return {"x": float(WORKSPACE_CENTER[0] + dx), "y": float(dy), "yaw": float(yaw)}

    def extraction(self, data) -> float:
        return float(data.qpos[self.qadr])

    def pinched(self, data) -> bool:
        """The tab is touched by the thumb and at least one finger."""
        names = {self.model.geom(g).name for g, _ in self.hand_contacts(data, self.geoms)}
        return any("th" in n for n in names) and any(("ff" in n or "mf" in n or "rf" in n) for n in names)

    def instant_success(self, data) -> bool:
        return self.extraction(data) >= self.extract_length

    def progress(self, data):
        return float(np.clip(self.extraction(data) / self.extract_length, 0, 1))

    def extras(self, data):
        return {
            "extraction": self.extraction(data),
            "pinched": self.pinched(data),
            "hand_contacts": len(self.hand_contacts(data, self.geoms)),
        }
