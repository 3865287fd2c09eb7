"""The scripted operator's data glove: human hand joint angles (``GLOVE_JOINT_NAMES``, radians) and the linear
glove -> robot-hand map (:class:`RetargetMap`, plain data: matrix + offset + names) that the teleop package loads
and reuses (``shadow_glove_map``: the Shadow hand's map with its actuator limits). Used by
:mod:`bora_sim.operator`, which re-exports these names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GLOVE_JOINT_NAMES = (
    "thumb_cmc_abd",
    "thumb_cmc_flex",
    "thumb_mcp_abd",
    "thumb_mcp",
    "thumb_ip",
    "index_abd",
    "index_mcp",
    "index_pip",
    "index_dip",
    "middle_abd",
    "middle_mcp",
    "middle_pip",
    "middle_dip",
    "ring_abd",
    "ring_mcp",
    "ring_pip",
    "ring_dip",
    "little_abd",
    "little_mcp",
    "little_pip",
    "little_dip",
    "palm_arch",
)


@dataclass(frozen=True)
class RetargetMap:
    """Linear glove -> robot-hand retargeting: ``robot = matrix @ human + offset`` (radians)."""

    human_joint_names: tuple[str, ...]
    robot_joint_names: tuple[str, ...]
    matrix: np.ndarray  # [n_robot, n_human]
    offset: np.ndarray  # [n_robot]

    def retarget(self, human: np.ndarray) -> np.ndarray:
        human = np.asarray(human, float)
        if human.shape[-1] != len(self.human_joint_names):
            raise ValueError(
                f"glove vector has {human.shape[-1]} angles, expected {len(self.human_joint_names)}"
            )
        return human @ self.matrix.T + self.offset

    def from_robot(self, robot: np.ndarray) -> np.ndarray:
        """Least-norm human angles that retarget exactly to ``robot`` (the operator's glove output)."""
        return (np.asarray(robot, float) - self.offset) @ np.linalg.pinv(self.matrix).T

    def to_dict(self) -> dict[str, Any]:
        return {
            "human_joint_names": list(self.human_joint_names),
            "robot_joint_names": list(self.robot_joint_names),
            "matrix": self.matrix.tolist(),
            "offset": self.offset.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RetargetMap:
        m = np.asarray(d["matrix"], float)
        h, r = tuple(d["human_joint_names"]), tuple(d["robot_joint_names"])
        if m.shape != (len(r), len(h)):
            raise ValueError(f"retarget matrix shape {m.shape}, expected ({len(r)}, {len(h)})")
        return cls(h, r, m, np.asarray(d["offset"], float))


def shadow_retarget_map(robot_joint_names: tuple[str, ...]) -> RetargetMap:
    """Glove -> Shadow hand: abduction and MCP one-to-one, J1 = mean(PIP, DIP) (J1/J0 are coupled)."""
    H = {n: i for i, n in enumerate(GLOVE_JOINT_NAMES)}
    short = [n.split(":")[-1] for n in robot_joint_names]
    A = np.zeros((len(short), len(GLOVE_JOINT_NAMES)))
    fingers = {"FF": "index", "MF": "middle", "RF": "ring", "LF": "little"}
    for r, j in enumerate(short):
        f, k = j[:2], j[2:]
        if f in fingers:
            g = fingers[f]
            if k == "J3":
                A[r, H[f"{g}_abd"]] = 1.0
            elif k == "J2":
                A[r, H[f"{g}_mcp"]] = 1.0
            elif k == "J1":
                A[r, H[f"{g}_pip"]] = 0.5
                A[r, H[f"{g}_dip"]] = 0.5
            elif k == "J4":
                A[r, H["palm_arch"]] = 1.0
        elif f == "TH":
            row = {
                "J4": {"thumb_cmc_abd": 1.0},
                "J3": {"thumb_cmc_flex": 1.0},
                "J2": {"thumb_mcp_abd": 1.0},
                "J1": {"thumb_mcp": 1.0},
                "J0": {"thumb_ip": -1.0},
            }[k]
            for name, c in row.items():
                A[r, H[name]] = c
        else:
            raise KeyError(f"no glove mapping for robot joint {j!r}")
    return RetargetMap(GLOVE_JOINT_NAMES, tuple(robot_joint_names), A, np.zeros(len(short)))


def shadow_glove_map() -> dict[str, Any]:
    """The operator's glove -> Shadow map as plain data with the Shadow actuator limits (``lower``/``upper``
    per robot joint): the form ``bora_teleop.retarget.RetargetMap.from_dict`` reads, so the teleop can use
    the operator's map without importing the sim (``bora sim glove-map`` writes it;
    ``config/retarget_shadow.yaml`` holds it)."""
    from bora_sim.hand import SHADOW, shadow_ctrl_limits

    lim = shadow_ctrl_limits()
    names = SHADOW.joint_names
    return shadow_retarget_map(names).to_dict() | {
        "lower": [lim[n.split(":")[-1]][0] for n in names],
        "upper": [lim[n.split(":")[-1]][1] for n in names],
    }
