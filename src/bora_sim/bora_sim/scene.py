"""Scene composition with MjSpec: Franka Panda arm + dexterous hand + table + three RGB-D cameras.

Everything comes from assets inside installed wheels (gymnasium_robotics), so nothing is
downloaded. The Panda's gripper is removed and the hand is attached to a flange site through a
90 degree bracket (palm normal along the flange axis), which keeps palm-down grasps away from the
joint limits. World frame: robot base at the origin, table top at z = 0, x points away from the robot.

Rendering cost (our choice): the Panda's visual meshes have 127k triangles, 85% of everything the
cameras draw, and on a CPU (Mesa llvmpipe) a camera's cost is its vertex work, not its pixels.
``arm_mesh="collision"`` makes the arm's visual geoms draw the Panda's own collision meshes instead (same
colour, 11k triangles in all): three 64 px views render about 4x faster, physics is unchanged (the visual
geoms are massless and collide with nothing) and about 1.5% of the pixels differ, at the arm's edges
(bench/results/sim.md). The default stays ``"detailed"``: policies trained on the low-poly arm learned the
demo task far worse (CP Base 7/40 and 20/40 against 36/40 and 37/40 with the detailed arm, two training
seeds each, the same losses; bench/results/arm_mesh_learning.md). Use ``"collision"`` for speed where the
images do not train a policy (benchmarks of the graph, figures of the physics).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from bora_sim.hand import HandConfig, gymnasium_robotics_assets

ARM_JOINT_NAMES = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
ARM_HOME = np.array([0.0, 0.0, 0.0, -2.36, 0.0, 0.8, 0.0])  # palm down, grasp site ~(0.5, 0, 0.25)
CAMERA_NAMES = ("left", "front", "right")
TIMESTEP = 0.002
WORKSPACE_CENTER = np.array([0.55, 0.0, 0.0])
GRASP_SITE = "grasp_site"
GRASP_SITE_POS = (0.0, 0.0, 0.075)  # in the flange frame: ~3 cm in front of the palm surface
ARM_MESHES = ("collision", "detailed")  # what the arm's visual geoms draw (module docstring)


@dataclass(frozen=True)
class CameraSpec:
    """A fixed RGB-D camera: pose (position, look-at point) and vertical field of view."""

    name: str
    pos: tuple[float, float, float]
    target: tuple[float, float, float]
    fovy_deg: float = 58.0  # ~ Intel RealSense D435 depth vertical FoV


CAMERAS = (
    CameraSpec("left", (0.55, 0.45, 0.40), (0.55, 0.0, 0.08)),
    CameraSpec("front", (1.0, 0.0, 0.42), (0.5, 0.0, 0.08)),
    CameraSpec("right", (0.55, -0.45, 0.40), (0.55, 0.0, 0.08)),
)


def camera_intrinsics(fovy_deg: float, width: int, height: int) -> dict[str, float]:
    """Pinhole intrinsics of a MuJoCo camera (square pixels): fy = (H/2) / tan(fovy/2), fx = fy."""
    fy = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    return {
        "fx": float(fy),
        "fy": float(fy),
        "cx": (width - 1) / 2.0,
        "cy": (height - 1) / 2.0,
        "width": int(width),
        "height": int(height),
    }


def _look_at_quat(pos, target) -> np.ndarray:
    """Quaternion of a MuJoCo camera (looks along -z, y up) at ``pos`` looking at ``target``."""
    pos, target = np.asarray(pos, float), np.asarray(target, float)
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    z = -fwd
    x = np.cross(np.array([0.0, 0.0, 1.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    mat = np.stack([x, y, z], axis=1)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat.flatten())
    return q


_ARM_WRAPPER = """
<mujoco model="panda">
  <include file="{d}/assets.xml"/>
  <compiler angle="radian" meshdir="{d}/meshes" inertiagrouprange="0 5" autolimits="true"/>
  <worldbody>
    <include file="{d}/chain.xml"/>
  </worldbody>
  <include file="{d}/actuator.xml"/>
</mujoco>
"""


def _arm_spec(arm_mesh: str = "detailed") -> mujoco.MjSpec:
    if arm_mesh not in ARM_MESHES:
        raise ValueError(f"arm_mesh: expected one of {ARM_MESHES}, got {arm_mesh!r}")
    d = gymnasium_robotics_assets() / "kitchen_franka" / "franka_assets"
    spec = mujoco.MjSpec.from_string(_ARM_WRAPPER.format(d=d))
    # remove the Panda gripper: finger bodies, their actuators, and the hand meshes on link7
    for a in list(spec.actuators):
        if "finger" in a.name:
            spec.delete(a)
    for b in ("panda0_leftfinger", "panda0_rightfinger"):
        spec.delete(spec.body(b))
    link7 = spec.body("panda0_link7")
    for g in list(link7.geoms):
        if g.meshname in ("hand_viz", "hand_col"):
            spec.delete(g)
    for s in list(link7.sites):
        spec.delete(s)
    if arm_mesh == "collision":  # the links' visual geoms draw the low-poly collision meshes
        for g in spec.geoms:
            if g.classname.name == "panda_viz":
                g.meshname = g.meshname.removesuffix("_viz") + "_col"
        for m in list(spec.meshes):
            if m.name.endswith("_viz"):
                spec.delete(m)
    flange = link7.add_site(
        name="flange", pos=[0, 0, 0.107], quat=[0.92388, 0, 0, -0.382683], size=[0.005] * 3
    )
    del flange
    return spec


def add_grasp_site(spec: mujoco.MjSpec) -> None:
    """The point the experts steer: on the flange axis, a few cm in front of the palm."""
    link7 = spec.body("panda0_link7")
    f = spec.site("flange")
    q = np.zeros(4)
    q[:] = f.quat
    p = np.asarray(f.pos) + _rotate(q, np.asarray(GRASP_SITE_POS))
    link7.add_site(name=GRASP_SITE, pos=p, quat=q, size=[0.006] * 3, rgba=[1, 0, 0, 0.0], group=4)


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, v, q)
    return out


def arm_only_model() -> mujoco.MjModel:
    """7-DoF arm with the grasp site, no hand, no objects: the IK model of the scripted experts."""
    spec = _arm_spec()
    add_grasp_site(spec)
    return spec.compile()


def _hand_spec(hand: HandConfig) -> mujoco.MjSpec:
    if hand.name != "shadow":
        raise NotImplementedError(f"hand {hand.name!r}: only the Shadow hand asset is wired up")
    d = gymnasium_robotics_assets() / "hand"
    xml = f"""
<mujoco model="shadow">
  <compiler angle="radian" meshdir="{d.parent / "stls" / "hand"}"/>
  <include file="{d}/shared.xml"/>
  <asset><include file="{d}/shared_asset.xml"/></asset>
  <worldbody><include file="{d}/robot.xml"/></worldbody>
</mujoco>"""
    spec = mujoco.MjSpec.from_string(xml)
    for t in list(spec.textures):  # the asset's green skybox
        if t.type == mujoco.mjtTexture.mjTEXTURE_SKYBOX:
            spec.delete(t)
    # drop the wrist joints (the arm positions the palm) with their tendons and actuators
    drop = set(hand.drop_joints)
    for t in list(spec.tendons):
        if any(j in t.name for j in ("WRJ1", "WRJ0")) and drop:
            spec.delete(t)
    for a in list(spec.actuators):
        if a.target in drop:
            spec.delete(a)
    for j in list(spec.joints):
        if j.name in drop:
            spec.delete(j)
    for a in spec.actuators:
        a.gainprm[0] *= hand.kp_scale
        a.biasprm[1] *= hand.kp_scale
        a.forcerange = np.asarray(a.forcerange) * hand.force_scale
    for g in spec.geoms:
        if g.contype or g.conaffinity:
            g.condim = 4
            g.friction = [1.5, 0.005, 0.0001]
    # hand collision geoms collide with objects (conaffinity 1 in our scene), not with each other
    for g in spec.geoms:
        if g.contype:
            g.contype, g.conaffinity = 2, 1
    root = spec.body(hand.root_body)
    root.pos = list(hand.mount_pos)
    root.quat = list(hand.mount_quat)
    return spec


def base_spec(hand: HandConfig, arm_mesh: str = "detailed") -> mujoco.MjSpec:
    """Arm + hand + table + cameras + lights; tasks add their objects to the returned spec.

    ``arm_mesh``: what the arm's visual geoms draw, ``"detailed"`` (default) or ``"collision"`` (module
    docstring); it changes the images only, never the physics."""
    spec = _arm_spec(arm_mesh)
    spec.option.timestep = TIMESTEP
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    spec.visual.map.znear = 0.01
    spec.visual.map.zfar = 10.0
    spec.stat.extent = 1.0
    spec.stat.center = list(WORKSPACE_CENTER)
    add_grasp_site(spec)
    flange = spec.site("flange")
    flange.attach_body(_hand_spec(hand).body(hand.root_body), "hand/", "")
    # arm: Panda collision meshes in group 3 -> make them collide with objects only
    for g in spec.geoms:
        if g.classname.name == "panda_col" or (g.contype and not g.name.startswith("hand/")):
            g.contype, g.conaffinity = 2, 1
    for b in spec.bodies:
        if b.name.startswith("panda0_") or b.name.startswith("hand/"):
            b.gravcomp = 1.0
    wb = spec.worldbody
    wb.add_light(
        name="key",
        pos=[0.6, 0.3, 2.0],
        dir=[0, -0.1, -1],
        diffuse=[0.7, 0.7, 0.7],
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        castshadow=False,
    )
    wb.add_light(
        name="fill",
        pos=[1.5, -1.0, 1.5],
        dir=[-1, 0.6, -1],
        diffuse=[0.3, 0.3, 0.3],
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        castshadow=False,
    )
    spec.add_texture(
        name="grid",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.62, 0.55, 0.47],
        rgb2=[0.58, 0.51, 0.43],
        width=256,
        height=256,
    )
    spec.add_material(name="table", textures=["", "grid"], texrepeat=[6, 6])
    wb.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3, 3, 0.05],
        pos=[0, 0, -0.75],
        rgba=[0.35, 0.37, 0.4, 1],
        contype=1,
        conaffinity=1,
    )
    wb.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.55, 0.6, 0.375],
        pos=[0.5, 0, -0.375],
        material="table",
        contype=1,
        conaffinity=3,
        friction=[1.0, 0.005, 0.0001],
    )
    for cam in CAMERAS:
        wb.add_camera(
            name=cam.name, pos=list(cam.pos), quat=list(_look_at_quat(cam.pos, cam.target)), fovy=cam.fovy_deg
        )
    return spec


def joint_qpos_adr(model: mujoco.MjModel, names) -> np.ndarray:
    return np.array([model.jnt_qposadr[model.joint(n).id] for n in names])


def joint_dof_adr(model: mujoco.MjModel, names) -> np.ndarray:
    return np.array([model.jnt_dofadr[model.joint(n).id] for n in names])


def actuator_ids_for_joints(model: mujoco.MjModel, names) -> np.ndarray:
    """Actuator index driving each named joint (in the order of ``names``)."""
    jid_to_act = {
        int(model.actuator_trnid[a, 0]): a
        for a in range(model.nu)
        if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
    }
    out = []
    for n in names:
        jid = model.joint(n).id
        if jid not in jid_to_act:
            raise KeyError(f"joint {n!r} has no actuator")
        out.append(jid_to_act[jid])
    return np.array(out)
