"""Recordings (rosbag2) and episode datasets into a :class:`~.log.VizLogger` (no rclpy).

A recording is read with the project's salvaging reader (``bora_trainer.data.bag_io.read_bag``)
and decoded with the definitions stored in it; an episode dataset through
``bora_policy.common.episodes``. Errors are :class:`~.log.VizInputError` with one line naming the
path, topic or field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bora_trainer.viz.log import T_IMAGE, T_OBS, VIEWED_TYPES, VizInputError, VizLogger, camera_from_topic


@dataclass
class SourceSummary:
    shown: dict[str, int] = field(default_factory=dict)  # topic (or "episode N") -> messages/steps logged
    not_shown: dict[str, str] = field(default_factory=dict)  # topic -> type without a view
    warnings: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)


def _expected_types() -> dict[str, str]:
    from bora_trainer.data import bag_schema as S

    try:
        return {t.topic: t.msgtype for t in S.load_preset()}
    except S.BagSchemaError:
        return dict(S.TOPIC_TYPES)


def log_bag(viz: VizLogger, path: str | Path, topics: list[str] | None = None,
            raw_cameras: bool = False) -> SourceSummary:
    """Log every viewable message of a recording, in log-time order."""
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_io import BagReadError, read_bag

    path = Path(path)
    if not path.exists():
        raise VizInputError(f"recording {path}: no such bag directory or file")
    try:
        data = read_bag(path)
    except BagReadError as e:
        raise VizInputError(f"recording {e}") from None
    out = SourceSummary(warnings=list(data.warnings))
    recorded = data.topics
    expected = _expected_types()
    for topic, msgtype in recorded.items():
        want = expected.get(topic)
        if want is not None and msgtype != want:
            raise VizInputError(f"recording {path}: topic {topic} has type {msgtype}, expected {want}")
    if topics:
        for t in topics:
            if t not in recorded:
                raise VizInputError(f"recording {path}: topic {t} not recorded (recorded: {sorted(recorded)})")
            if recorded[t] not in VIEWED_TYPES:
                raise VizInputError(f"recording {path}: topic {t} has type {recorded[t]}, which has no view "
                                    f"(viewable types: {', '.join(VIEWED_TYPES)})")
    has_obs = any(t == T_OBS for t in recorded.values())
    selected = {}
    for cid, c in data.connections.items():
        if topics and c.topic not in topics:
            continue
        if c.msgtype not in VIEWED_TYPES or (c.msgtype == T_IMAGE and camera_from_topic(c.topic) is None):
            out.not_shown[c.topic] = c.msgtype
            continue
        if c.msgtype == T_IMAGE and has_obs and not raw_cameras and not topics:
            out.not_shown[c.topic] = f"{c.msgtype} (the cameras come from /bora/observation; --raw-cameras)"
            continue
        selected[cid] = c
    ts = S.typestore_for_definitions({c.msgtype: (c.fmt, c.msgdef) for c in data.connections.values()})
    bad = 0
    for cid, t_ns, raw in sorted((m for m in data.messages if m[0] in selected), key=lambda m: m[1]):
        c = selected[cid]
        try:
            msg = ts.deserialize_cdr(raw, c.msgtype)
            viz.log_message(c.msgtype, msg, t_ns, c.topic)
        except Exception as e:  # noqa: BLE001 - one bad message must not sink the view; counted below
            bad += 1
            if bad <= 3:
                out.warnings.append(f"{c.topic} message at {t_ns}: not shown ({type(e).__name__}: {e})")
            continue
        out.shown[c.topic] = out.shown.get(c.topic, 0) + 1
        if c.msgtype == T_OBS and not out.cameras:
            out.cameras = list(msg.camera_names)
    if bad > 3:
        out.warnings.append(f"{bad} messages not shown in all")
    if not out.shown:
        raise VizInputError(f"recording {path}: no message with a view (recorded: "
                            f"{', '.join(f'{t} ({m})' for t, m in sorted(recorded.items())) or 'nothing'})")
    if not out.cameras:
        out.cameras = sorted({cam[0] for t in out.shown if (cam := camera_from_topic(t))})
    return out


def log_dataset(viz: VizLogger, root: str | Path, episodes: list[int] | None = None) -> SourceSummary:
    """Log episodes of a BORA episode dataset (all, or the given ids)."""
    from bora_policy.common.episodes import EpisodeFormatError, episode_ids, read_episode, read_meta

    root = Path(root)
    if not root.is_dir():
        raise VizInputError(f"dataset {root}: no such directory")
    try:
        meta = read_meta(root)
    except (EpisodeFormatError, ValueError) as e:
        raise VizInputError(f"dataset {root}: {e}") from None
    ids = episode_ids(root)
    if not ids:
        raise VizInputError(f"dataset {root}: no complete episode (episodes/episode_*.npz + .json)")
    want = ids if not episodes else episodes
    missing = [e for e in want if e not in ids]
    if missing:
        raise VizInputError(f"dataset {root}: episode(s) {missing} not found (have {ids[0]}..{ids[-1]})")
    out = SourceSummary(cameras=list(meta.camera_names))
    for eid in want:
        try:
            arrays, info = read_episode(root, eid)
        except Exception as e:  # noqa: BLE001 - a damaged file: name it
            raise VizInputError(f"dataset {root}: episode {eid} unreadable ({type(e).__name__}: {e})") from None
        for key in ("action", "state", "beta", "is_intervention"):
            if key not in arrays:
                raise VizInputError(f"dataset {root}: episode {eid} has no {key!r} array")
        out.shown[f"episode {eid}"] = viz.episode_arrays(arrays, info, meta.camera_names, meta.fps)
    return out
