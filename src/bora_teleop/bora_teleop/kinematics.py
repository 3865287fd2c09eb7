"""Forward kinematics of the Franka Panda / FR3 arm (published modified-DH parameters).

Franka documents the kinematic chain in Craig's modified DH convention
(https://frankaemika.github.io/docs/control_parameters.html, identical for Panda and FR3):

    T_{i-1,i} = RotX(alpha_{i-1}) * TransX(a_{i-1}) * RotZ(theta_i) * TransZ(d_i)

| joint | a (m)   | d (m) | alpha (rad) |
| 1     | 0       | 0.333 | 0           |
| 2     | 0       | 0     | -pi/2       |
| 3     | 0       | 0.316 | pi/2        |
| 4     | 0.0825  | 0     | pi/2        |
| 5     | -0.0825 | 0.384 | -pi/2       |
| 6     | 0       | 0     | pi/2        |
| 7     | 0.088   | 0     | pi/2        |
| flange| 0       | 0.107 | 0           |

``joint_offsets`` are added to the measured angles before the DH chain, for models whose joint
zeros differ from Franka's (the gymnasium-robotics kitchen Panda used by the simulation rotates
link 6 by +1.57 rad about its axis: offset ``[0, 0, 0, 0, 0, 1.57, 0]``). ``tool_offset`` is a
point in the flange frame (e.g. the grasp point of the mounted hand). Pure numpy, no ROS.
"""

from __future__ import annotations

import numpy as np

# (a_{i-1}, d_i, alpha_{i-1}) for the 7 joints and the fixed flange.
PANDA_DH = np.array(
    [
        [0.0, 0.333, 0.0],
        [0.0, 0.0, -np.pi / 2],
        [0.0, 0.316, np.pi / 2],
        [0.0825, 0.0, np.pi / 2],
        [-0.0825, 0.384, -np.pi / 2],
        [0.0, 0.0, np.pi / 2],
        [0.088, 0.0, np.pi / 2],
    ]
)
FLANGE_D = 0.107


def _mdh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def panda_fk(q, joint_offsets=None, tool_offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 pose of the tool point in the arm base frame for joint angles ``q`` (7,) in rad."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (7,):
        raise ValueError(f"panda_fk: expected 7 joint angles, got shape {q.shape}")
    if joint_offsets is not None:
        q = q + np.asarray(joint_offsets, dtype=np.float64).reshape(7)
    T = np.eye(4)
    for (a, d, alpha), theta in zip(PANDA_DH, q):
        T = T @ _mdh(a, d, alpha, theta)
    T = T @ _mdh(0.0, FLANGE_D, 0.0, 0.0)
    tool = np.eye(4)
    tool[:3, 3] = np.asarray(tool_offset, dtype=np.float64).reshape(3)
    return T @ tool


def panda_tool_position(q, joint_offsets=None, tool_offset=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Position (3,) of the tool point in the base frame."""
    return panda_fk(q, joint_offsets, tool_offset)[:3, 3]
