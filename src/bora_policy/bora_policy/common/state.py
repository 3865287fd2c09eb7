"""The proprioceptive state layout, defined once (numpy only: the sim and the teleop may import it).

    state = [arm joint positions (ARM_DOF = 7, Franka order), hand joint positions (n_hand)]   float32

This is the layout of docs/interfaces.md (``Observation.arm`` then ``Observation.hand``) and of the
action vector (joint position targets in the same order). The paper (Sec. 3, "proprioceptive state
s_t") fixes only that the policy sees the robot's joint state; the order (arm first, hand second),
the float32 precision and the absence of velocities are our choices, shared by the simulated robot,
the recorder / bag conversion and the policy runtime.

``state_vector(arm_q, hand_q)`` builds it, ``state_of(obs)`` from a simulated-robot observation dict
(keys ``ARM_KEY`` / ``HAND_KEY``), ``split_state`` undoes it. The policy runtime's
``ObservationProcessor`` (``bora_policy.runtime.processor``) uses these and adds normalisation and
image conversion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ARM_DOF = 7  # Franka FR3 joints
ARM_KEY = "arm_qpos"  # simulated-robot observation dict: arm joint positions [7] (rad)
HAND_KEY = "hand_qpos"  # simulated-robot observation dict: hand joint positions [n_hand] (rad)


def _joint_vector(x, field: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 1:
        raise ValueError(f"state: {field} must be a 1-D vector of joint positions, got shape {a.shape}")
    return a


def state_vector(arm_q, hand_q) -> np.ndarray:
    """``[arm_q, hand_q]`` as float32 ``[n_arm + n_hand]`` (each input is cast to float32 first)."""
    return np.concatenate([_joint_vector(arm_q, "arm positions"), _joint_vector(hand_q, "hand positions")])


def state_of(obs: Mapping) -> np.ndarray:
    """The state vector of a simulated-robot observation dict (``obs[ARM_KEY]``, ``obs[HAND_KEY]``)."""
    missing = [k for k in (ARM_KEY, HAND_KEY) if k not in obs]
    if missing:
        raise KeyError(f"state: observation has no {missing} (expected keys {ARM_KEY!r} and {HAND_KEY!r})")
    return state_vector(obs[ARM_KEY], obs[HAND_KEY])


def split_state(state, arm_dof: int = ARM_DOF) -> tuple[np.ndarray, np.ndarray]:
    """``state [..., arm_dof + n_hand]`` -> ``(arm [..., arm_dof], hand [..., n_hand])`` (views)."""
    s = np.asarray(state)
    if s.ndim < 1 or s.shape[-1] < arm_dof:
        raise ValueError(f"state: expected [..., >= {arm_dof}] (arm first), got shape {s.shape}")
    return s[..., :arm_dof], s[..., arm_dof:]


def state_names(arm_names: Sequence[str], hand_names: Sequence[str]) -> list[str]:
    """Joint names in state order (arm, then hand)."""
    return [str(n) for n in arm_names] + [str(n) for n in hand_names]
