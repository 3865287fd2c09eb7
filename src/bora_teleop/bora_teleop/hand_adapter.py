"""Hand-driver adapter: our hand command (retarget map joint order) <-> the hand driver's message (pure Python).

The arbiter produces hand targets in the order and names of the retarget map's ``robot_joints``
(radians). Drivers differ in message type, joint names, joint order and units; an adapter file
(``config/hand_*.yaml``, teleop parameter ``hand_driver_file``) describes the driver::

    message_type: sensor_msgs/JointState      # or std_msgs/Float64MultiArray (positions by index)
    driver_joints: [j_a, j_b, j_c, ...]       # the driver's joint order (the array layout)
    joints:                                   # one entry per internal (retarget) joint
      - name: th_rot                          # internal name = a robot_joints name of the retarget map
        driver: [j_a]                         # driver joint(s) it commands (several = coupled joints)
        scale: 1.0                            # driver value = scale * internal + offset (units)
        offset: 0.0

``joints`` omitted = identity (driver joints = internal joints, same names and order). Every
driver joint must be fed by exactly one internal joint, so no driver slot is ever left unset.
Commands: :meth:`HandAdapter.command` -> (names, values) in driver order. Driver joint states back
to internal order: :meth:`HandAdapter.state_to_internal` (our names when the driver reports them,
else the mean over the driver joints of an internal joint, unscaled; unnamed = driver order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

MESSAGE_TYPES = ("sensor_msgs/JointState", "std_msgs/Float64MultiArray")


@dataclass
class HandAdapter:
    """Maps internal hand joints (retarget order) to the driver's joints; see the module docstring."""

    message_type: str
    internal_joints: list[str]
    driver_joints: list[str]
    # per driver joint: index of the internal joint that feeds it, its scale and offset
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def identity(cls, internal_joints: list[str], message_type: str = MESSAGE_TYPES[0]) -> HandAdapter:
        return cls.from_dict({"message_type": message_type}, list(internal_joints), where="identity adapter")

    @classmethod
    def from_dict(cls, d: dict, internal_joints: list[str], where: str = "hand driver") -> HandAdapter:
        """Build and check an adapter against the internal (retarget map) joint names."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a mapping with message_type, driver_joints, joints")
        mtype = d.get("message_type", MESSAGE_TYPES[0])
        if mtype not in MESSAGE_TYPES:
            raise ValueError(f"{where}.message_type: expected one of {MESSAGE_TYPES}, got {mtype!r}")
        internal = [str(n) for n in internal_joints]
        idx = {n: i for i, n in enumerate(internal)}
        entries = d.get("joints")
        if entries is None:  # identity
            entries = [{"name": n, "driver": [n]} for n in internal]
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{where}.joints: expected a non-empty list of {{name, driver}} entries")
        driver = [str(n) for n in d.get("driver_joints") or [j for e in entries for j in _drivers(e, where)]]
        if len(set(driver)) != len(driver):
            raise ValueError(f"{where}.driver_joints: duplicate names in {driver}")
        didx = {n: i for i, n in enumerate(driver)}
        source = np.full(len(driver), -1, dtype=np.int64)
        scale, offset = np.ones(len(driver)), np.zeros(len(driver))
        seen = set()
        for k, e in enumerate(entries):
            w = f"{where}.joints[{k}]"
            if not isinstance(e, dict) or "name" not in e:
                raise ValueError(f"{w}: expected a mapping with 'name' and 'driver'")
            name = str(e["name"])
            if name not in idx:
                raise ValueError(f"{w}: {name!r} is not a hand joint of the retarget map; known: {internal}")
            if name in seen:
                raise ValueError(f"{w}: {name!r} is listed twice")
            seen.add(name)
            s, o = float(e.get("scale", 1.0)), float(e.get("offset", 0.0))
            if not np.isfinite(s) or s == 0.0 or not np.isfinite(o):
                raise ValueError(f"{w} ({name}): scale must be finite and non-zero, offset finite")
            for dj in _drivers(e, w):
                if dj not in didx:
                    raise ValueError(f"{w} ({name}): driver joint {dj!r} is not in driver_joints {driver}")
                if source[didx[dj]] >= 0:
                    other = internal[source[didx[dj]]]
                    raise ValueError(f"{w} ({name}): driver joint {dj!r} is already fed by {other!r}")
                source[didx[dj]], scale[didx[dj]], offset[didx[dj]] = idx[name], s, o
        unmapped = [n for n in internal if n not in seen]
        if unmapped:
            raise ValueError(f"{where}.joints: hand joints {unmapped} of the retarget map have no driver joint")
        unfed = [driver[i] for i in np.flatnonzero(source < 0)]
        if unfed:
            raise ValueError(f"{where}: driver joints {unfed} are fed by no hand joint (every slot must be set)")
        return cls(mtype, internal, driver, source, scale, offset)

    @classmethod
    def load(cls, path: str | Path, internal_joints: list[str]) -> HandAdapter:
        p = Path(path)
        try:
            d = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"hand driver file {p}: not valid YAML: {e}") from None
        return cls.from_dict(d, internal_joints, where=f"hand driver file {p.name}")

    @property
    def is_identity(self) -> bool:
        return (
            self.driver_joints == self.internal_joints
            and np.array_equal(self.source, np.arange(len(self.internal_joints)))
            and np.all(self.scale == 1.0)
            and np.all(self.offset == 0.0)
        )

    def command(self, internal_values) -> tuple[list[str], np.ndarray]:
        """Driver joint names and values for internal hand targets (retarget order)."""
        q = np.asarray(internal_values, dtype=np.float64).reshape(-1)
        if q.size != len(self.internal_joints):
            raise ValueError(f"hand adapter: expected {len(self.internal_joints)} hand values, got {q.size}")
        return list(self.driver_joints), self.scale * q[self.source] + self.offset

    def state_to_internal(self, names: list[str], positions) -> np.ndarray:
        """Internal hand positions from a driver JointState (names in driver naming; unscaled, averaged)."""
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        if names:
            if len(names) != pos.size:
                raise ValueError(f"hand joint states: {len(names)} names but {pos.size} positions")
            by_name = dict(zip(names, pos))
            if all(n in by_name for n in self.internal_joints):  # the driver reports our own names
                return np.array([by_name[n] for n in self.internal_joints])
        else:
            if pos.size != len(self.driver_joints):
                raise ValueError(
                    f"hand joint states: unnamed message with {pos.size} positions, expected "
                    f"{len(self.driver_joints)} in driver order {self.driver_joints}"
                )
            by_name = dict(zip(self.driver_joints, pos))
        out = np.zeros(len(self.internal_joints))
        count = np.zeros(len(self.internal_joints))
        for j, dj in enumerate(self.driver_joints):
            if dj in by_name:
                out[self.source[j]] += (by_name[dj] - self.offset[j]) / self.scale[j]
                count[self.source[j]] += 1
        missing = [n for n, c in zip(self.internal_joints, count) if c == 0]
        if missing:
            raise ValueError(f"hand joint states: no driver joint reported for {missing}")
        return out / count


def _drivers(e: dict, where: str) -> list[str]:
    d = e.get("driver", [e.get("name")])
    if isinstance(d, str):
        d = [d]
    if not isinstance(d, list) or not d or not all(isinstance(x, str) and x for x in d):
        raise ValueError(f"{where}.driver: expected a driver joint name or a non-empty list of names, got {d!r}")
    return d
