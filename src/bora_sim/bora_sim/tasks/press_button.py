"""Press the button: depress a spring-loaded button fully without the finger slipping off (Table 4).

The cap rides a vertical slide joint with a preloaded spring (``stiffness`` N/m); it collides only
with the hand. Success: depressed by at least ``press_depth`` while a hand geom touches the cap,
for ``hold_steps`` control steps (stable pressing, no slip).
"""

from __future__ import annotations

import mujoco
import numpy as np

from bora_sim.scene import WORKSPACE_CENTER
from bora_sim.tasks.base import Task, add_object_geom, yaw_to_quat

HOUSING_R, HOUSING_H = 0.04, 0.10
TRAVEL = 0.015
CAP_SOLREF = (0.004, 1.0)  # stiff contact of the hard cap (time constant 2 timesteps)
CAP_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)


class PressButton(Task):
    name = "press_button"
    instruction = "press the button"
    time_limit_s = 8.0
    hold_steps = 3
    press_depth = 0.012

    def build(self, spec):
        cap_hx, cap_hy, cap_hz = self.obj.half_extents()
        base = spec.worldbody.add_body(name="button_base", pos=[WORKSPACE_CENTER[0], 0, 0], mocap=True)
        base.add_geom(
            name="button_housing",
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[HOUSING_R, HOUSING_H / 2, 0],
            pos=[0, 0, HOUSING_H / 2],
            rgba=[0.25, 0.25, 0.28, 1],
            contype=1,
            conaffinity=3,
        )
        cap = base.add_body(name="button_cap", pos=[0, 0, HOUSING_H + cap_hz])
        k = float(self.obj.params.get("stiffness", 150.0))
        cap.add_joint(
            name="button_slide",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, 0, 1],
            range=[-TRAVEL, 0],
            stiffness=k,
            springref=0.01,
            damping=1.0,
        )
        # hard plastic cap: stiff contact (MuJoCo's default solref lets a light fingertip sink ~1 cm
        # into a 10 g cap under a firm press, right through to the housing)
        add_object_geom(
            spec,
            cap,
            self.obj,
            "button_cap_geom",
            contype=0,
            conaffinity=2,
            solref=list(CAP_SOLREF),
            solimp=list(CAP_SOLIMP),
            priority=1,  # the cap's contact parameters win over the (soft) fingertip's
        )

    def bind(self, model):
        super().bind(model)
        self.base_id = model.body("button_base").id
        self.mocap_id = model.body_mocapid[self.base_id]
        self.cap_id = model.body("button_cap").id
        self.qadr = model.jnt_qposadr[model.joint("button_slide").id]
        self.geoms = [model.geom("button_cap_geom").id]
        self.housing = [model.geom("button_housing").id]

    def randomize(self, data, rng):
        dx, dy = rng.uniform(-0.05, 0.05, 2)
        data.mocap_pos[self.mocap_id] = [WORKSPACE_CENTER[0] + dx, dy, 0]
        data.mocap_quat[self.mocap_id] = yaw_to_quat(0.0)
        data.qpos[self.qadr] = 0.0
        return {"x": float(WORKSPACE_CENTER[0] + dx), "y": float(dy)}

    def depression(self, data) -> float:
        return float(-data.qpos[self.qadr])

    def cap_top(self, data) -> np.ndarray:
        p = data.xpos[self.cap_id].copy()
        p[2] += self.obj.half_extents()[2]
        return p

    def finger_on_cap(self, data) -> bool:
        return len(self.hand_contacts(data, self.geoms)) > 0

    def instant_success(self, data) -> bool:
        return self.depression(data) >= self.press_depth and self.finger_on_cap(data)

    def progress(self, data):
        return float(np.clip(self.depression(data) / self.press_depth, 0, 1))

    def extras(self, data):
        return {
            "depression": self.depression(data),
            "finger_on_cap": self.finger_on_cap(data),
            "hand_contacts": len(self.hand_contacts(data, self.geoms)),
            "housing_contacts": len(self.hand_contacts(data, self.housing)),
        }
