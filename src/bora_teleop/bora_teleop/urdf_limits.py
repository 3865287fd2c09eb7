"""Joint limits from a robot description (URDF) for the safety layer (pure Python, xml.etree only).

:func:`urdf_joint_limits` returns, per named joint, the position limits and the velocity limit of
the URDF ``<joint>``: ``<limit lower upper velocity>``, tightened by ``<safety_controller
soft_lower_limit soft_upper_limit>`` when present (the soft limits are what ros2_control and the
Franka description treat as the usable range). :func:`tighten` takes the stricter of those and the
teleop YAML limits (larger lower, smaller upper, smaller velocity), so a description can only make
the safety layer more conservative, never less.

The teleop node uses it when ``robot_description_file`` (a URDF file, e.g. written with
``xacro fr3.urdf.xacro > fr3.urdf``) or ``robot_description_topic`` (the latched std_msgs/String
of robot_state_publisher, ``/robot_description``) is set. Errors name the joint and the problem:
a joint missing from the description, a continuous joint (no position limits), a joint without
``<limit>``, a malformed file.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

LIMITED_TYPES = ("revolute", "prismatic")


@dataclass(frozen=True)
class JointLimit:
    """Limits of one URDF joint: position (rad or m) and velocity (rad/s or m/s; inf when absent)."""

    name: str
    lower: float
    upper: float
    velocity: float


def _float(elem: ET.Element, attr: str, joint: str, where: str) -> float | None:
    raw = elem.get(attr)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{where}: joint {joint!r} <{elem.tag} {attr}={raw!r}>: expected a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: joint {joint!r} <{elem.tag} {attr}={raw!r}>: expected a finite number")
    return value


def parse_urdf(text: str, where: str = "robot description") -> ET.Element:
    """The ``<robot>`` root of a URDF string; a clear error for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: empty robot description (expected URDF XML with a <robot> root)")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"{where}: malformed URDF XML: {e}") from None
    if root.tag != "robot":
        raise ValueError(f"{where}: expected a <robot> root element, got <{root.tag}>")
    return root


def urdf_joint_limits(text: str, joints: list[str], where: str = "robot description") -> dict[str, JointLimit]:
    """Limits of the named joints of a URDF string (see the module docstring for the rules)."""
    root = parse_urdf(text, where)
    found = {j.get("name"): j for j in root.findall("joint")}
    missing = [n for n in joints if n not in found]
    if missing:
        known = sorted(n for n in found if n)
        raise ValueError(f"{where}: joints {missing} are not in the robot description; it has {known}")
    out: dict[str, JointLimit] = {}
    for name in joints:
        j = found[name]
        jtype = j.get("type", "")
        if jtype == "continuous":
            raise ValueError(
                f"{where}: joint {name!r} is continuous (no position limits); the safety layer needs "
                "position limits: give them in the teleop parameters instead"
            )
        if jtype not in LIMITED_TYPES:
            raise ValueError(f"{where}: joint {name!r} has type {jtype!r}; expected one of {LIMITED_TYPES}")
        lim = j.find("limit")
        if lim is None:
            raise ValueError(f"{where}: joint {name!r} ({jtype}) has no <limit> element")
        lower, upper = _float(lim, "lower", name, where), _float(lim, "upper", name, where)
        if lower is None or upper is None:
            raise ValueError(f"{where}: joint {name!r} <limit> needs both 'lower' and 'upper'")
        velocity = _float(lim, "velocity", name, where)
        velocity = math.inf if velocity is None else velocity
        soft = j.find("safety_controller")
        if soft is not None:
            s_lo = _float(soft, "soft_lower_limit", name, where)
            s_hi = _float(soft, "soft_upper_limit", name, where)
            lower = lower if s_lo is None else max(lower, s_lo)
            upper = upper if s_hi is None else min(upper, s_hi)
        if lower > upper:
            raise ValueError(f"{where}: joint {name!r}: lower limit {lower} > upper limit {upper}")
        if velocity <= 0:
            raise ValueError(f"{where}: joint {name!r}: velocity limit must be > 0, got {velocity}")
        out[name] = JointLimit(name, lower, upper, velocity)
    return out


def load_robot_description(path: str | Path) -> str:
    """The text of a URDF file; a clear error when it is missing."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"parameter robot_description_file={str(path)!r}: file not found (write one with "
            "`xacro <robot>.urdf.xacro > robot.urdf`, or set robot_description_topic instead)"
        )
    return p.read_text()


def tighten(lower, upper, velocity, limits: list[JointLimit]) -> tuple[list[float], list[float], list[float]]:
    """The stricter of the given per-joint limits and the URDF ones (same joint order)."""
    n = len(limits)
    vel = list(velocity) if isinstance(velocity, (list, tuple)) else [float(velocity)] * n
    if not (len(lower) == len(upper) == len(vel) == n):
        raise ValueError(
            f"tighten: expected {n} values each, got lower={len(lower)}, upper={len(upper)}, velocity={len(vel)}"
        )
    lo = [max(float(a), lim.lower) for a, lim in zip(lower, limits)]
    hi = [min(float(b), lim.upper) for b, lim in zip(upper, limits)]
    v = [min(float(c), lim.velocity) for c, lim in zip(vel, limits)]
    bad = [lim.name for a, b, lim in zip(lo, hi, limits) if a > b]
    if bad:
        raise ValueError(f"the parameter limits and the robot description's limits do not overlap for {bad}")
    return lo, hi, v
