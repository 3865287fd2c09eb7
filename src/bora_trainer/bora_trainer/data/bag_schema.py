"""Topics, message types and the rosbags typestore of BORA recordings (no rclpy).

* :func:`build_typestore` = rosbags' stock ROS 2 Kilted types + the ``bora_msgs`` definitions parsed
  from the package's ``.msg`` files (``get_types_from_msg``), so bags can be written and decoded
  on machines without a ROS 2 install and the definitions are stored in every bag.
* :func:`load_preset` reads ``config/record_topics.yaml`` (the topic preset shared by
  ``ros2 bag record -s mcap`` and ``bora record``): groups of ``{topic, type}`` entries, ``{cam}``
  expanded over ``cameras``.
* The topics the converter needs (:data:`REQUIRED_TOPICS`) and their types.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BORA_PKG = "bora_msgs"

T_OBSERVATION = "/bora/observation"
T_ACTION_CHUNK = "/bora/action_chunk"
T_EXECUTED = "/bora/executed_command"
T_INTERVENTION = "/bora/intervention"
T_EPISODE = "/bora/episode"

TOPIC_TYPES: dict[str, str] = {
    T_OBSERVATION: "bora_msgs/msg/Observation",
    T_ACTION_CHUNK: "bora_msgs/msg/ActionChunk",
    T_EXECUTED: "bora_msgs/msg/ExecutedCommand",
    T_INTERVENTION: "bora_msgs/msg/InterventionEvent",
    T_EPISODE: "bora_msgs/msg/EpisodeEvent",
}
# What `bora bag convert` needs: chunks (z_t, base chunk), executed steps, takeover and episode events.
# /bora/intervention must be *recorded* (a connection in the bag) even when it has no message: an
# empty connection means "no takeover", a missing one means "not recorded" and is an error.
REQUIRED_TOPICS = (T_ACTION_CHUNK, T_EXECUTED, T_INTERVENTION, T_EPISODE)
# Needed for episode files (state, images); not for transitions only.
EPISODE_TOPICS = (T_OBSERVATION,)

DEFAULT_PRESET = Path(__file__).resolve().parents[3].parent / "config" / "record_topics.yaml"


class BagSchemaError(ValueError):
    """A preset, message directory or type definition is missing or malformed."""


def find_msg_dir(explicit: str | Path | None = None) -> Path:
    """Directory of the ``bora_msgs`` ``.msg`` files: explicit, the source tree, or an install prefix."""
    cands: list[Path] = []
    if explicit:
        cands.append(Path(explicit))
    if os.environ.get("BORA_MSGS_DIR"):
        cands.append(Path(os.environ["BORA_MSGS_DIR"]))
    cands.append(Path(__file__).resolve().parents[3] / BORA_PKG / "msg")
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            cands.append(Path(prefix) / "share" / BORA_PKG / "msg")
    for c in cands:
        if c.is_dir() and any(c.glob("*.msg")):
            return c
    raise BagSchemaError(
        f"bora_msgs .msg files not found; looked in {[str(c) for c in cands]} "
        "(set BORA_MSGS_DIR or build the workspace)"
    )


def bora_types(msg_dir: str | Path | None = None) -> dict[str, Any]:
    """rosbags typesdict of every ``bora_msgs/msg/*`` definition."""
    from rosbags.typesys import get_types_from_msg

    types: dict[str, Any] = {}
    for f in sorted(find_msg_dir(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"{BORA_PKG}/msg/{f.stem}"))
    return types


@functools.lru_cache(maxsize=4)
def _cached_typestore(msg_dir: str | None):
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(bora_types(msg_dir))
    return ts


def build_typestore(msg_dir: str | Path | None = None):
    """Stock ROS 2 (Kilted) types + ``bora_msgs`` (cached per message directory)."""
    return _cached_typestore(str(msg_dir) if msg_dir else None)


def typestore_for_definitions(defs: dict[str, tuple[str, str]]):
    """A typestore for decoding one bag: stock types + the definitions stored in the bag.

    ``defs`` maps msgtype -> (format, text) as stored (format ``ros2msg``); bora types the bag
    does not define come from the package's ``.msg`` files. Version skew between the recording
    and this checkout is so decoded with the recording's own definitions.
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for msgtype, (fmt, text) in defs.items():
        if fmt not in ("ros2msg", "msg", "") or not text.strip():
            continue
        try:
            parsed = get_types_from_msg(text, msgtype)
        except Exception:  # noqa: BLE001 - a foreign definition we cannot parse: stock/project types apply
            continue
        for name, t in parsed.items():
            if name.startswith(f"{BORA_PKG}/") or name not in ts.fielddefs:
                types[name] = t
    for name, t in bora_types().items():
        types.setdefault(name, t)
    ts.register(types)
    return ts


@dataclass(frozen=True)
class TopicSpec:
    topic: str
    msgtype: str  # rosbags form "pkg/msg/Type"
    group: str


def load_preset(
    path: str | Path | None = None, groups: list[str] | None = None, cameras: list[str] | None = None
) -> list[TopicSpec]:
    """Topics of the recording preset (``config/record_topics.yaml``), ``{cam}`` expanded over ``cameras``
    (default: the preset's ``cameras`` if it names them, else the graph's, config/graph.yaml)."""
    path = Path(path) if path else DEFAULT_PRESET
    if not path.exists():
        raise BagSchemaError(f"topic preset {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    if "groups" not in data or not isinstance(data["groups"], dict):
        raise BagSchemaError(f"{path}: expected a 'groups' mapping of group name -> list of {{topic, type}}")
    if cameras is None and "cameras" not in data:
        from bora_policy.common.graph_params import load_graph_params

        cameras = list(load_graph_params().cameras)
    cams = list(cameras if cameras is not None else data["cameras"])
    sel = groups or list(data.get("default_groups", list(data["groups"])))
    unknown = [g for g in sel if g not in data["groups"]]
    if unknown:
        raise BagSchemaError(f"{path}: unknown group(s) {unknown}; available: {list(data['groups'])}")
    out: list[TopicSpec] = []
    seen: set[str] = set()
    for g in sel:
        for j, entry in enumerate(data["groups"][g] or []):
            if not isinstance(entry, dict) or "topic" not in entry or "type" not in entry:
                raise BagSchemaError(f"{path}: groups.{g}[{j}] must be a mapping with 'topic' and 'type'")
            msgtype = normalize_type(entry["type"])
            topics = (
                [entry["topic"].format(cam=c) for c in cams]
                if "{cam}" in entry["topic"]
                else [entry["topic"]]
            )
            for t in topics:
                if t not in seen:
                    seen.add(t)
                    out.append(TopicSpec(t, msgtype, g))
    return out


def normalize_type(name: str) -> str:
    """``pkg/Type`` or ``pkg/msg/Type`` -> ``pkg/msg/Type``."""
    parts = name.strip().split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and parts[1] == "msg":
        return name.strip()
    raise BagSchemaError(f"message type {name!r}: expected 'pkg/Type' or 'pkg/msg/Type'")

