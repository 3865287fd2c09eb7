"""Pick and place: put the package entirely inside the basket (Table 4).

Success: every corner of the package's bounding box lies inside the basket's inner walls (xy) and
below the rim, the package is at rest and no longer touched by the hand, for ``hold_steps`` steps.
"""

from __future__ import annotations

import mujoco
import numpy as np

from bora_sim.scene import WORKSPACE_CENTER
from bora_sim.tasks.base import Task, add_object_geom, free_joint_set, quat_yaw, yaw_to_quat

BASKET_HALF = 0.085  # inner half width (m)
BASKET_WALL = 0.008
BASKET_HEIGHT = 0.06


class PickAndPlace(Task):
    name = "pick_and_place"
    instruction = "put the package in the basket"
    time_limit_s = 14.0
    hold_steps = 3
    pos_range = 0.04
    max_speed = 0.05

    def build(self, spec: mujoco.MjSpec) -> None:
        hx, hy, hz = self.obj.half_extents()
        body = spec.worldbody.add_body(name="package", pos=[WORKSPACE_CENTER[0], 0.08, hz])
        body.add_freejoint(name="package_free")
        add_object_geom(spec, body, self.obj, "package_geom")
        basket = spec.worldbody.add_body(name="basket", pos=[WORKSPACE_CENTER[0], -0.16, 0], mocap=True)
        rgba = [0.35, 0.25, 0.15, 1]
        kw = dict(
            type=mujoco.mjtGeom.mjGEOM_BOX, rgba=rgba, contype=1, conaffinity=3, friction=[1, 0.005, 0.0001]
        )
        a, w, h = BASKET_HALF, BASKET_WALL, BASKET_HEIGHT
        basket.add_geom(name="basket_floor", size=[a + w, a + w, 0.004], pos=[0, 0, 0.004], **kw)
        for i, (px, py, sx, sy) in enumerate(
            [
                (a + w / 2, 0, w / 2, a + w),
                (-a - w / 2, 0, w / 2, a + w),
                (0, a + w / 2, a, w / 2),
                (0, -a - w / 2, a, w / 2),
            ]
        ):
            basket.add_geom(name=f"basket_wall{i}", size=[sx, sy, h / 2], pos=[px, py, h / 2], **kw)

    def bind(self, model: mujoco.MjModel) -> None:
        super().bind(model)
        self.body_id = model.body("package").id
        self.geoms = [model.geom("package_geom").id]
        self.basket_id = model.body("basket").id
        self.mocap_id = model.body_mocapid[self.basket_id]
        self.half = np.array(self.obj.half_extents())

    def randomize(self, data, rng) -> dict[str, float]:
        side = 1.0  # package left (+y), basket right (-y)
        dx, dy = rng.uniform(-self.pos_range, self.pos_range, 2)
        yaw = rng.uniform(-np.pi, np.pi)
        pos = [WORKSPACE_CENTER[0] + dx, side * 0.09 + dy, self.half[2] + 0.002]
        free_joint_set(data, self.model, "package_free", pos, yaw_to_quat(yaw))
        bx, by = rng.uniform(-0.04, 0.04), -0.17 + rng.uniform(-0.03, 0.03)
        byaw = rng.uniform(-0.3, 0.3)
        data.mocap_pos[self.mocap_id] = [WORKSPACE_CENTER[0] + bx, by, 0.0]
        data.mocap_quat[self.mocap_id] = yaw_to_quat(byaw)
        return {
            "x": float(pos[0]),
            "y": float(pos[1]),
            "yaw": float(yaw),
            "basket_x": float(WORKSPACE_CENTER[0] + bx),
            "basket_y": float(by),
            "basket_yaw": float(byaw),
        }

    def object_pos(self, data) -> np.ndarray:
        return data.xpos[self.body_id].copy()

    def object_yaw(self, data) -> float:
        return quat_yaw(data.xquat[self.body_id])

    def basket_pose(self, data) -> tuple[np.ndarray, float]:
        return data.mocap_pos[self.mocap_id].copy(), quat_yaw(data.mocap_quat[self.mocap_id])

    def corners_in_basket(self, data) -> np.ndarray:
        """Package bounding-box corners in the basket frame, [8, 3]."""
        R = data.xmat[self.body_id].reshape(3, 3)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        world = data.xpos[self.body_id] + (signs * self.half) @ R.T
        return self.to_basket_frame(data, world)

    def to_basket_frame(self, data, world: np.ndarray) -> np.ndarray:
        """World points [..., 3] in the basket's frame (origin at its floor centre, yawed with it)."""
        bpos, byaw = self.basket_pose(data)
        c, s = np.cos(byaw), np.sin(byaw)
        Rb = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return (world - bpos) @ Rb

    def over_basket(self, data) -> bool:
        """The package's centre lies over the basket's inner floor (xy, any height): a release here is a placement."""
        local = self.to_basket_frame(data, data.xpos[self.body_id])
        return bool(np.all(np.abs(local[:2]) <= BASKET_HALF))

    def inside(self, data) -> bool:
        loc = self.corners_in_basket(data)
        return bool(
            np.all(np.abs(loc[:, :2]) <= BASKET_HALF + 1e-3)
            and np.all(loc[:, 2] <= BASKET_HEIGHT + 0.01)
            and np.all(loc[:, 2] >= -0.005)
        )

    def speed(self, data) -> float:
        v = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_BODY, self.body_id, v, 0)
        return float(np.linalg.norm(v[3:]))

    def instant_success(self, data) -> bool:
        return (
            self.inside(data)
            and self.speed(data) <= self.max_speed
            and not self.hand_contacts(data, self.geoms)
        )

    def progress(self, data) -> float:
        bpos, _ = self.basket_pose(data)
        p = data.xpos[self.body_id]
        d0 = 0.26
        return float(np.clip(1.0 - np.linalg.norm(p[:2] - bpos[:2]) / d0, 0.0, 1.0))

    def extras(self, data) -> dict:
        return {
            "object_height": float(data.xpos[self.body_id][2] - self.half[2]),
            "object_speed": self.speed(data),
            "hand_contacts": len(self.hand_contacts(data, self.geoms)),
            "in_basket": self.inside(data),
        }
