"""Hand configurations: which asset is mounted on the Franka and which joints the policy commands.

Only the Shadow hand (from the ``gymnasium_robotics`` wheel, so it works offline) ships now; a
``HandConfig`` names the asset, the mount, the actuated joints and the named postures the scripted
experts blend (grasp synergies). Adding a hand means adding one ``HandConfig`` to ``HANDS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def gymnasium_robotics_assets() -> Path:
    """Directory of the MuJoCo assets shipped inside the ``gymnasium_robotics`` wheel."""
    import gymnasium_robotics

    return Path(gymnasium_robotics.__file__).parent / "envs" / "assets"


@dataclass(frozen=True)
class HandConfig:
    """A dexterous hand: asset, mount on the flange, actuated joints and synergy postures.

    ``joint_names`` are the joints whose position targets form the hand part of the action
    (docs/interfaces.md: action = [7 arm targets, n_hand hand targets]); ``hand_qpos`` in the
    observation is the position of the same joints, in the same order.
    """

    name: str
    joint_names: tuple[str, ...]
    """Actuated hand joints (names in the composed model, after the ``hand/`` prefix)."""
    root_body: str
    """Body of the hand asset that is attached to the flange."""
    mount_pos: tuple[float, float, float]
    """Root body position in the flange frame (a 90 degree bracket: palm normal along the flange axis)."""
    mount_quat: tuple[float, float, float, float]
    """Root body orientation in the flange frame (w, x, y, z)."""
    drop_joints: tuple[str, ...] = ()
    """Joints of the asset that are removed (welded), e.g. the Shadow wrist: the arm does that job."""
    kp_scale: float = 3.0
    """Position-servo gain multiplier (the asset's kp=1 is too weak to hold objects)."""
    force_scale: float = 2.0
    """Force-range multiplier of the hand actuators."""
    fingertip_sites: dict[str, str] = field(default_factory=dict)
    """Finger name -> fingertip site name (thumb first)."""
    postures: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Named hand postures (one value per joint in ``joint_names``) used by the synergies."""

    def posture(self, name: str) -> np.ndarray:
        if name not in self.postures:
            raise KeyError(f"hand {self.name!r} has no posture {name!r}; known: {sorted(self.postures)}")
        return np.asarray(self.postures[name], dtype=np.float64)


_SHADOW_JOINTS = (
    "FFJ3",
    "FFJ2",
    "FFJ1",
    "MFJ3",
    "MFJ2",
    "MFJ1",
    "RFJ3",
    "RFJ2",
    "RFJ1",
    "LFJ4",
    "LFJ3",
    "LFJ2",
    "LFJ1",
    "THJ4",
    "THJ3",
    "THJ2",
    "THJ1",
    "THJ0",
)
# Posture vectors follow _SHADOW_JOINTS. J3 = abduction, J2 = MCP flexion, J1 = PIP (+DIP, coupled).
_SHADOW_POSTURES = {
    # flat open hand, thumb slightly rotated towards the palm (THJ4 ~ 0.3 keeps it off the object)
    "open": (0, 0.05, 0.05, 0, 0.05, 0.05, 0, 0.05, 0.05, 0, 0, 0.05, 0.05, 0.3, 0.3, 0.0, 0.0, -0.1),
    # power grasp: targets overshoot a 5-6 cm object so the servos keep squeezing
    "power": (0, 1.45, 1.5, 0, 1.45, 1.5, 0, 1.45, 1.5, 0.3, 0, 1.45, 1.5, 0.6, 1.2, 0.2, 0.5, -0.8),
    # pointing: index straight, other fingers curled, thumb tucked
    "point": (0, 0.0, 0.0, 0, 1.5, 1.5, 0, 1.5, 1.5, 0.3, 0, 1.5, 1.5, 0.6, 1.2, 0.2, 0.5, -0.8),
}
_SHADOW_MOUNT_QUAT = (0.5, -0.5, 0.5, -0.5)  # columns of R: x_w=-y_f, y_w=-z_f, z_w=+x_f

SHADOW = HandConfig(
    name="shadow",
    joint_names=tuple("hand/robot0:" + j for j in _SHADOW_JOINTS),
    root_body="robot0:wrist",
    mount_pos=(-0.085, 0.0, 0.035),
    mount_quat=_SHADOW_MOUNT_QUAT,
    drop_joints=("robot0:WRJ1", "robot0:WRJ0"),
    fingertip_sites={
        "th": "hand/robot0:S_thtip",
        "ff": "hand/robot0:S_fftip",
        "mf": "hand/robot0:S_mftip",
        "rf": "hand/robot0:S_rftip",
        "lf": "hand/robot0:S_lftip",
    },
    postures=_SHADOW_POSTURES,
)

HANDS: dict[str, HandConfig] = {"shadow": SHADOW}


def shadow_ctrl_limits() -> dict[str, tuple[float, float]]:
    """Shadow hand actuator ctrlrange per joint (``"FFJ3" -> (lo, hi)``) from the gymnasium-robotics asset."""
    import xml.etree.ElementTree as ET

    root = ET.parse(gymnasium_robotics_assets() / "hand" / "shared.xml").getroot()
    out = {}
    for el in root.iter("position"):
        joint, rng = el.get("joint", ""), el.get("ctrlrange")
        if joint and rng:
            lo, hi = (float(x) for x in rng.split())
            out[joint.split(":")[-1]] = (lo, hi)
    return out


def get_hand(name: str) -> HandConfig:
    if name not in HANDS:
        raise KeyError(f"unknown hand {name!r}; known hands: {sorted(HANDS)}")
    return HANDS[name]
