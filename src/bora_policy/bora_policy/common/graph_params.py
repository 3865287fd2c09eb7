"""Graph-wide parameters (one file, ``config/graph.yaml``) and the declared form of every node parameter.

The four values that several nodes must agree on live in ONE file that every node, ``bora up`` and the
launch files read, under one name each (issue 15):

* ``control_hz``: the control rate (Hz) of the policy's and the arbiter's control loops and of the simulated
  robot's physics step, and the time base of every ``step`` field (``step = round((t - t_START) *
  control_hz)``, ``bora_policy.runtime.observation.episode_step``).
* ``chunk_size``: the action chunk length k the graph runs; the policy refuses a VLA with another k.
* ``cameras``: the camera names in the observation's order (topics ``<prefix>/<cam>/...``).
* ``residual_scale``: alpha of Algorithm 1 line 15 (A_final = A_base + alpha A_res) used when a residual
  checkpoint stores no alpha of its own.

The file has these four keys at the top level and an optional ``deploy:`` section with the values that
differ on the real robot (the safe ``residual_scale: 0.0`` of a first run on hardware). ``bora up`` and the
launch files resolve the profile (and ``bora up --control-hz``) into one flat file and hand its path to
every node as the read-only parameter ``graph_file``; a node whose own value of a graph parameter differs
from that file refuses to start (so no node can run on another time base: the desync of issue 15).

:class:`ParamSpec` is the declared form of ANY node parameter (name, default, description, range, choices,
read-only), used by ``bora_policy.common.node.declare_params`` to build the ``ParameterDescriptor`` that
``ros2 param describe`` shows. Stdlib + yaml only (no rclpy, no torch).
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

GRAPH_FILE_NAME = "graph.yaml"
PROFILES = ("sim", "deploy")
_CAMERA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class GraphParamsError(ValueError):
    """A graph file or a parameter value that is not what is expected (one line: the name and the expectation)."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter as declared: ``range`` is inclusive (ROS descriptors' ranges are), ``choices`` the
    allowed strings. ``read_only`` (our default): the nodes read their parameters once at start, so a change at
    run time would be accepted and silently not applied; read-only makes ROS refuse it instead."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = True

    def expected(self) -> str:
        """The expectation in words (for errors and ``additional_constraints``)."""
        if self.range is not None:
            return f"in [{self.range[0]:g}, {self.range[1]:g}]"
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        return ""

    def check(self, value: Any, where: str = "") -> Any:
        """``value`` if it is in range / one of the choices, else :class:`GraphParamsError` (one line)."""
        pre = f"{where}: " if where else ""
        if self.range is not None:
            lo, hi = self.range
            items = value if isinstance(value, (list, tuple)) else [value]
            for v in items:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
                if not ok:
                    raise GraphParamsError(
                        f"{pre}parameter {self.name} = {value!r} is out of range: expected {self.expected()}"
                    )
        if self.choices is not None and value not in self.choices:
            raise GraphParamsError(f"{pre}parameter {self.name} = {value!r}: expected {self.expected()}")
        return value


@dataclass(frozen=True)
class GraphParams:
    """The graph-wide values (no defaults here: they are written once, in ``config/graph.yaml``)."""

    control_hz: float
    chunk_size: int
    cameras: tuple[str, ...]
    residual_scale: float
    source: str = ""  # the file they were read from (for messages)

    def as_dict(self) -> dict[str, Any]:
        out = {n: getattr(self, n) for n in GRAPH_PARAM_NAMES}
        return {n: list(v) if isinstance(v, tuple) else v for n, v in out.items()}


GRAPH_PARAM_NAMES = tuple(f.name for f in fields(GraphParams) if f.name != "source")

# descriptions and ranges of the graph parameters (the defaults come from the graph file)
GRAPH_SPECS: dict[str, ParamSpec] = {
    s.name: s
    for s in (
        ParamSpec(
            "control_hz",
            None,
            "graph-wide (config/graph.yaml): control rate in Hz of the policy, the arbiter and the simulated "
            "robot, and the time base of every step field",
            range=(1.0, 1000.0),
        ),
        ParamSpec(
            "chunk_size",
            None,
            "graph-wide (config/graph.yaml): action chunk length k; the policy refuses a VLA with another k",
            range=(1, 1024),
        ),
        ParamSpec(
            "cameras",
            None,
            "graph-wide (config/graph.yaml): camera names in the observation's order (topics <prefix>/<cam>/...)",
        ),
        ParamSpec(
            "residual_scale",
            None,
            "graph-wide (config/graph.yaml): alpha of A_final = A_base + alpha A_res (Algorithm 1 line 15) when "
            "a residual checkpoint stores none",
            range=(0.0, 1.0),
        ),
    )
}


def _repo_config() -> Path | None:
    for base in Path(__file__).resolve().parents:
        if (base / "config" / GRAPH_FILE_NAME).is_file() and (base / "src").is_dir():
            return base / "config" / GRAPH_FILE_NAME
    return None


def find_graph_file() -> Path:
    """``config/graph.yaml`` of the repository, else ``share/bora_policy/config/graph.yaml`` on AMENT_PREFIX_PATH."""
    repo = _repo_config()
    if repo is not None:
        return repo
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        cand = Path(prefix) / "share" / "bora_policy" / "config" / GRAPH_FILE_NAME
        if prefix and cand.is_file():
            return cand
    raise GraphParamsError(
        f"graph file: cannot find config/{GRAPH_FILE_NAME} (in the repository or share/bora_policy/config); "
        "pass graph_file"
    )


def _coerce(name: str, raw: Any, where: str) -> Any:
    if name == "cameras":
        if not isinstance(raw, (list, tuple)) or not raw:
            raise GraphParamsError(f"{where}: cameras = {raw!r}: expected a non-empty list of camera names")
        names = tuple(str(c) for c in raw)
        bad = [c for c in names if not _CAMERA_NAME.match(c)]
        if bad or len(set(names)) != len(names):
            raise GraphParamsError(
                f"{where}: cameras = {list(names)}: expected distinct names of lower-case letters, digits, '_'"
            )
        return names
    spec = GRAPH_SPECS[name]
    if name == "chunk_size":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise GraphParamsError(f"{where}: chunk_size = {raw!r}: expected an integer {spec.expected()}")
        value: Any = int(raw)
    else:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise GraphParamsError(f"{where}: {name} = {raw!r}: expected a number {spec.expected()}")
        value = float(raw)
    spec.check(value, where)
    return value


def graph_params_from_dict(data: dict, where: str = "graph file", profile: str | None = None,
                           overrides: dict | None = None) -> GraphParams:
    """Checked :class:`GraphParams` from a mapping: the top-level values, then the ``profile`` section's
    (e.g. ``deploy``), then ``overrides``; every key known, every value in range."""
    if not isinstance(data, dict):
        raise GraphParamsError(f"{where}: expected a mapping of {list(GRAPH_PARAM_NAMES)}")
    if profile is not None and profile not in PROFILES:
        raise GraphParamsError(f"{where}: profile {profile!r}: expected one of {list(PROFILES)}")
    unknown = sorted(set(data) - set(GRAPH_PARAM_NAMES) - set(PROFILES))
    if unknown:
        raise GraphParamsError(
            f"{where}: unknown keys {unknown}; expected {list(GRAPH_PARAM_NAMES)} (+ {list(PROFILES)})"
        )
    merged = {k: v for k, v in data.items() if k in GRAPH_PARAM_NAMES}
    if profile is not None:
        section = data.get(profile) or {}
        bad = sorted(set(section) - set(GRAPH_PARAM_NAMES)) if isinstance(section, dict) else ["<not a mapping>"]
        if bad:
            raise GraphParamsError(
                f"{where}: section {profile}: unknown keys {bad}; expected {list(GRAPH_PARAM_NAMES)}"
            )
        merged.update(section)
    bad = sorted(set(overrides or {}) - set(GRAPH_PARAM_NAMES))
    if bad:
        raise GraphParamsError(f"graph parameter overrides: unknown {bad}; expected {list(GRAPH_PARAM_NAMES)}")
    merged.update(overrides or {})
    missing = [n for n in GRAPH_PARAM_NAMES if n not in merged]
    if missing:
        raise GraphParamsError(f"{where}: missing {missing} (every graph parameter is set in the graph file)")
    return GraphParams(**{n: _coerce(n, merged[n], where) for n in GRAPH_PARAM_NAMES}, source=where)


def load_graph_params(path: str | Path | None = None, profile: str | None = None,
                      overrides: dict | None = None) -> GraphParams:
    """The graph parameters of ``path`` (default :func:`find_graph_file`), ``profile`` applied, then ``overrides``."""
    p = Path(path).expanduser() if path else find_graph_file()
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as e:
        raise GraphParamsError(f"graph file {p}: cannot read ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise GraphParamsError(f"graph file {p}: not YAML ({str(e).splitlines()[0]})") from e
    return graph_params_from_dict(data, str(p), profile, overrides)


@functools.lru_cache(maxsize=1)
def _shipped() -> GraphParams:
    return load_graph_params()


def graph_default(name: str) -> Any:
    """The shipped graph file's value of ``name`` (config/graph.yaml, top level): the one default of the library
    code's own ``control_hz`` / ``residual_scale`` / ``chunk_size`` / ``cameras`` arguments (the simulated env,
    collection, the chunk executor, the policy runner, the demo and eval configs), read once per process."""
    if name not in GRAPH_PARAM_NAMES:
        raise GraphParamsError(f"graph parameter {name!r}: expected one of {list(GRAPH_PARAM_NAMES)}")
    return getattr(_shipped(), name)


def write_graph_file(params: GraphParams, path: str | Path) -> Path:
    """A flat graph file (no profile sections) holding ``params``: what ``bora up`` hands to every node."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    head = f"# resolved from {params.source}\n" if params.source else ""
    p.write_text(head + yaml.safe_dump(params.as_dict(), sort_keys=False))
    return p
