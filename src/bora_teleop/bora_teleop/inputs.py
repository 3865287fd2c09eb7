"""Edge validation of the teleop's topic and service inputs (pure Python, no rclpy).

Every message is checked before anything of it reaches the arbiter: bounded sizes (at most
``MAX_JOINTS`` names / values, names of at most ``MAX_NAME_LEN`` characters), names matching the
expected joints (by name, or the expected count without names), finite values. A failing message
raises ``ValueError`` with one line naming the input, the field and what was expected; the node
drops it, counts it and logs it (rate-limited). The bounds are ours (generous for any hand).
"""

from __future__ import annotations

import numpy as np

from bora_teleop.glove import reorder

MAX_JOINTS = 256
MAX_NAME_LEN = 256
MAX_NOTE_LEN = 1024


def joint_values(what: str, names, positions, expected: list[str], finite: bool = True) -> np.ndarray:
    """(name, position) of a JointState / JointCommand -> values in ``expected`` order, or ValueError.
    ``finite``: reject NaN / inf (False for the policy command, whose NaN the safety layer holds on)."""
    names = list(names)
    if len(names) > MAX_JOINTS or len(positions) > MAX_JOINTS:
        raise ValueError(
            f"{what}: {len(names)} names and {len(positions)} positions, at most {MAX_JOINTS} expected"
        )
    for n in names:
        if not isinstance(n, str) or len(n) > MAX_NAME_LEN:
            raise ValueError(f"{what}: field name: joint names of at most {MAX_NAME_LEN} characters expected")
    pos = np.asarray(positions, dtype=np.float64).reshape(-1)
    if names:
        try:
            values = reorder(names, pos, expected)
        except ValueError as e:
            raise ValueError(f"{what}: {str(e)[:200]}") from None
    else:
        if pos.size != len(expected):
            raise ValueError(f"{what}: {pos.size} positions without names, expected {len(expected)}")
        values = pos.copy()
    if finite and not np.all(np.isfinite(values)):
        bad = [expected[i] for i in np.flatnonzero(~np.isfinite(values))[:8]]
        raise ValueError(f"{what}: field position: non-finite values for joints {bad}")
    return values


def episode_note(note: str) -> str:
    """A MarkEpisode note: at most ``MAX_NOTE_LEN`` characters (it is published in EpisodeEvent)."""
    if len(note) > MAX_NOTE_LEN:
        raise ValueError(f"MarkEpisode.note: {len(note)} characters, at most {MAX_NOTE_LEN} expected")
    return note
