"""Object sets: the manipulated objects of each task, as data (YAML), so evaluation can use unshipped sets.

A set file looks like::

    task: pick_and_place          # optional: the task it is meant for
    name: my_set                  # optional: defaults to the file stem
    objects:
      - name: parcel
        shape: box                # box | sphere | capsule | cylinder | ellipsoid | mesh
        size: [0.028, 0.028, 0.022]   # MuJoCo geom size (half-extents / radius, half-length)
        mass: 0.12                # kg
        friction: 1.5             # sliding friction coefficient
        rgba: [0.8, 0.6, 0.3, 1]
        # mesh: path/to/file.stl  # for shape: mesh (relative to the YAML file); scale: [sx, sy, sz]
        # soft: true              # compliant contact (plush objects)
        # params: {stiffness: 250}  # task-specific extras (button spring, lid mass, ...)

For the fixture tasks the "object" is the part the hand manipulates: the lid of ``open_box``, the
tissue tab of ``pull_tissue``, the cap of ``press_button``. Shipped sets live in
``assets/objects/<task>_{standard,unseen}.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHAPES = ("box", "sphere", "capsule", "cylinder", "ellipsoid", "mesh")
_SIZE_LEN = {"box": 3, "sphere": 1, "capsule": 2, "cylinder": 2, "ellipsoid": 3, "mesh": 0}
ASSET_DIR = Path(__file__).parent / "assets" / "objects"


class ObjectSetError(ValueError):
    """An object set file or entry is malformed."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object: shape, size, and physical properties (SI units)."""

    name: str
    shape: str = "box"
    size: tuple[float, ...] = (0.028, 0.028, 0.028)
    mass: float = 0.1
    friction: float = 1.5
    rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.3, 1.0)
    mesh: str | None = None
    """Absolute path of a mesh file (shape == "mesh")."""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    soft: bool = False
    """Compliant contact (soft solref/solimp): the plush toy."""
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"object {self.name!r}"
        if self.shape not in SHAPES:
            raise ObjectSetError(f"{where}: shape {self.shape!r} unknown; expected one of {SHAPES}")
        n = _SIZE_LEN[self.shape]
        if self.shape == "mesh":
            if not self.mesh:
                raise ObjectSetError(f"{where}: shape 'mesh' needs a 'mesh' file path")
            if not Path(self.mesh).exists():
                raise ObjectSetError(f"{where}: mesh file {self.mesh} not found")
        elif len(self.size) != n or any(s <= 0 for s in self.size):
            raise ObjectSetError(
                f"{where}: size must be {n} positive numbers for a {self.shape}, got {self.size}"
            )
        if not self.mass > 0:
            raise ObjectSetError(f"{where}: mass must be > 0 kg, got {self.mass}")
        if not self.friction > 0:
            raise ObjectSetError(f"{where}: friction must be > 0, got {self.friction}")
        if len(self.rgba) != 4 or any(not 0 <= c <= 1 for c in self.rgba):
            raise ObjectSetError(f"{where}: rgba must be 4 numbers in [0, 1], got {self.rgba}")
        if len(self.scale) != 3 or any(s <= 0 for s in self.scale):
            raise ObjectSetError(f"{where}: scale must be 3 positive numbers, got {self.scale}")

    def half_extents(self) -> tuple[float, float, float]:
        """Axis-aligned half extents in the object frame (mesh: from the scaled file's bounds)."""
        s = self.size
        if self.shape == "box" or self.shape == "ellipsoid":
            return (s[0], s[1], s[2])
        if self.shape == "sphere":
            return (s[0], s[0], s[0])
        if self.shape == "capsule":
            return (s[0], s[0], s[1] + s[0])
        if self.shape == "cylinder":
            return (s[0], s[0], s[1])
        return _mesh_half_extents(self.mesh, self.scale)


def _mesh_half_extents(path: str, scale: tuple[float, float, float]) -> tuple[float, float, float]:
    import mujoco

    spec = mujoco.MjSpec()
    spec.add_mesh(name="m", file=str(path), scale=list(scale))
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="m")
    m = spec.compile()
    v = m.mesh_vert.reshape(-1, 3)
    return tuple(float(x) for x in (v.max(0) - v.min(0)) / 2)


@dataclass(frozen=True)
class ObjectSet:
    name: str
    objects: tuple[ObjectSpec, ...]
    task: str | None = None
    source: str = ""


def _spec_from_dict(d: dict[str, Any], base: Path | None, where: str) -> ObjectSpec:
    if not isinstance(d, dict):
        raise ObjectSetError(f"{where}: expected a mapping, got {type(d).__name__}")
    known = {"name", "shape", "size", "mass", "friction", "rgba", "mesh", "scale", "soft", "params"}
    unknown = set(d) - known
    if unknown:
        raise ObjectSetError(f"{where}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    if "name" not in d:
        raise ObjectSetError(f"{where}: missing field 'name'")
    kw: dict[str, Any] = {"name": str(d["name"])}
    for key in ("shape",):
        if key in d:
            kw[key] = str(d[key])
    for key in ("mass", "friction"):
        if key in d:
            kw[key] = float(d[key])
    for key in ("size", "rgba", "scale"):
        if key in d:
            v = d[key]
            if not isinstance(v, (list, tuple)):
                raise ObjectSetError(f"{where}: field {key!r} must be a list of numbers, got {v!r}")
            kw[key] = tuple(float(x) for x in v)
    if "soft" in d:
        kw["soft"] = bool(d["soft"])
    if "params" in d:
        if not isinstance(d["params"], dict):
            raise ObjectSetError(f"{where}: field 'params' must be a mapping")
        kw["params"] = {str(k): float(v) for k, v in d["params"].items()}
    if "mesh" in d:
        p = Path(d["mesh"])
        if not p.is_absolute() and base is not None:
            p = base / p
        kw["mesh"] = str(p)
        kw.setdefault("shape", "mesh")
        if "size" not in d:
            kw["size"] = ()
    return ObjectSpec(**kw)


def load_object_set(path_or_dict: str | Path | dict[str, Any], name: str | None = None) -> ObjectSet:
    """Load an object set from a YAML file (or an already parsed mapping)."""
    if isinstance(path_or_dict, dict):
        data, base, source = path_or_dict, None, "<dict>"
    else:
        path = Path(path_or_dict)
        if not path.exists():
            raise ObjectSetError(f"object set file {path} not found")
        data = yaml.safe_load(path.read_text())
        base, source = path.parent, str(path)
        name = name or str(data.get("name", path.stem)) if isinstance(data, dict) else name
    if not isinstance(data, dict) or "objects" not in data:
        raise ObjectSetError(f"{source}: expected a mapping with an 'objects' list")
    objs = data["objects"]
    if not isinstance(objs, list) or not objs:
        raise ObjectSetError(f"{source}: 'objects' must be a non-empty list")
    specs = tuple(_spec_from_dict(o, base, f"{source}: objects[{i}]") for i, o in enumerate(objs))
    return ObjectSet(
        name=name or str(data.get("name", "custom")), objects=specs, task=data.get("task"), source=source
    )


def shipped_set_path(task: str, which: str) -> Path:
    return ASSET_DIR / f"{task}_{which}.yaml"


def resolve_object_set(task: str, object_set: str | Path | ObjectSet) -> ObjectSet:
    """``"standard"`` / ``"unseen"`` -> the shipped set of ``task``; a path -> that YAML file."""
    if isinstance(object_set, ObjectSet):
        return object_set
    s = str(object_set)
    if s in ("standard", "unseen"):
        return load_object_set(shipped_set_path(task, s), name=s)
    if s.endswith((".yaml", ".yml")) or Path(s).exists():
        oset = load_object_set(s)
        if oset.task is not None and oset.task != task:
            raise ObjectSetError(f"object set {s} is for task {oset.task!r}, not {task!r}")
        return oset
    raise ObjectSetError(f"object_set {s!r}: expected 'standard', 'unseen' or a YAML file path")
