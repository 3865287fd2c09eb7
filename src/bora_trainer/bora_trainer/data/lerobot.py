"""``bora dataset export|import``: LeRobotDataset v3 (read by LeRobot and openpi), BORA fields included.

Written layout (codebase_version ``v3.0``; one chunk/file while under ``chunks_size`` episodes):
```
OUT/meta/info.json                          codebase_version, fps, features, totals, data_path, ...
OUT/meta/tasks.parquet                      index: task (str), column task_index (int64)
OUT/meta/stats.json                         per feature: min, max, mean, std, count (images per channel)
OUT/meta/episodes/chunk-000/file-000.parquet  episode_index, tasks, length, data/chunk_index,
                                            data/file_index, dataset_from_index, dataset_to_index,
                                            meta/episodes/chunk_index, meta/episodes/file_index,
                                            stats/<feature>/<stat>, bora/info (episode JSON)
OUT/meta/bora.json                          source kind + BORA dataset meta (cameras, joints, replay spec)
OUT/data/chunk-000/file-000.parquet         one row per frame
```
Frame features of a demonstration / rollout dataset (``bora-episodes/1``):
``observation.images.<cam>`` (dtype ``image``: PNG bytes in a ``{bytes, path}`` struct, lossless;
no video is written), ``observation.depth.<cam>`` float32 [H, W] (metres), ``observation.state``
float32 [S] (names = joints), ``action`` float32 [A] (executed), ``next.reward`` float32,
``next.done`` bool, ``bora.is_intervention`` bool, ``bora.beta`` float32, and when present
``bora.policy_action`` / ``bora.base_action`` [A], ``bora.z`` [Z], ``bora.chunk_start`` bool,
``bora.value``; plus LeRobot's ``timestamp``, ``frame_index``, ``episode_index``, ``index``,
``task_index``. The episode JSON (outcome, interventions, ...) is kept in ``bora/info``.

An online buffer (``bora-replay/1``) exports one frame per chunk transition (episodes = the
``episode`` field): ``observation.state`` = normalised proprio, ``action`` [k, A] (executed,
normalised), ``bora.<field>`` for every other replay field. Import restores either kind exactly.

This module maps BORA data onto the files; the v3 file layer itself (layout, arrow columns, PNG cells,
stats, writer, reader) is :mod:`bora_trainer.data.lerobot_v3`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bora_policy.common.episodes import (
    DatasetMeta,
    episode_ids,
    read_episode,
    read_meta,
    step_validity,
    write_episode,
)
from bora_trainer.data.lerobot_v3 import (
    LeRobotFormatError,
    base_features,
    feature,
    read_lerobot,
    write_dataset,
)

EP_FIELDS = {  # bora-episodes array -> (LeRobot feature, dtype)
    "state": ("observation.state", "float32"),
    "action": ("action", "float32"),
    "reward": ("next.reward", "float32"),
    "done": ("next.done", "bool"),
    "is_intervention": ("bora.is_intervention", "bool"),
    "beta": ("bora.beta", "float32"),
    "policy_action": ("bora.policy_action", "float32"),
    "base_action": ("bora.base_action", "float32"),
    "z": ("bora.z", "float32"),
    "chunk_start": ("bora.chunk_start", "bool"),
    "value": ("bora.value", "float32"),
    "valid": ("bora.valid", "bool"),  # false = a gap: the step's action was not recorded (masked out)
    "obs_valid": ("bora.obs_valid", "bool"),  # false = the step's observation was not recorded
}


def export_episodes(src: str | Path, out: str | Path) -> Path:
    """A ``bora-episodes/1`` directory (demonstrations or converted rollouts) -> LeRobotDataset v3."""
    src, out = Path(src), Path(out)
    meta = read_meta(src)
    ids = episode_ids(src)
    if not ids:
        raise LeRobotFormatError(f"{src}: no complete episodes")
    H, W = meta.image_size
    joints = meta.arm_joint_names + meta.hand_joint_names
    features: dict[str, dict] = {}
    for cam in meta.camera_names:
        features[f"observation.images.{cam}"] = feature("image", [H, W, 3], ["height", "width", "channels"])
        features[f"observation.depth.{cam}"] = feature("float32", [H, W], ["height", "width"])
    eps, present = [], None
    for eid in ids:
        arrays, info = read_episode(src, eid)
        arrays["valid"], arrays["obs_valid"] = step_validity(arrays)  # always exported (all true: no gap)
        keys = tuple(k for k in EP_FIELDS if k in arrays)
        if present is None:
            present = keys
        elif keys != present:
            raise LeRobotFormatError(
                f"{src}: episode {eid} has arrays {keys}, episode {ids[0]} has {present}; "
                "one LeRobot dataset needs one feature set"
            )
        cols = {}
        for k in keys:
            name, dt = EP_FIELDS[k]
            cols[name] = arrays[k].astype(dt)
        images = {}
        for i, cam in enumerate(meta.camera_names):
            images[f"observation.images.{cam}"] = arrays["color"][:, i]
            cols[f"observation.depth.{cam}"] = arrays["depth"][:, i].astype(np.float32)
        eps.append({"columns": cols, "images": images, "task": info.get("task") or "", "info": info})
    first = eps[0]["columns"]
    for k in present:
        name, dt = EP_FIELDS[k]
        shape = list(first[name].shape[1:]) or [1]
        names = (
            joints
            if name in ("observation.state", "action", "bora.policy_action", "bora.base_action")
            else None
        )
        features[name] = feature(dt, shape, names)
    features.update(base_features())
    bora = {"source": "bora-episodes/1", "meta": meta.to_dict(), "episode_ids": ids}
    write_dataset(out, float(meta.fps), features, eps, bora)
    return out


REPLAY_STATE = "proprio"


def export_replay(buffer_dir: str | Path, out: str | Path, fps: float = 30.0) -> Path:
    """An on-disk online buffer (``bora-replay/1``) -> LeRobotDataset v3, one frame per chunk transition."""
    from bora_trainer.data.replay import ChunkReplayBuffer

    out = Path(out)
    buf = ChunkReplayBuffer.open(buffer_dir)
    a = buf.arrays()
    if len(buf) == 0:
        raise LeRobotFormatError(f"{buffer_dir}: empty replay buffer")
    features: dict[str, dict] = {}
    for k, (shape, dtype) in buf.shapes.items():
        name = {"proprio": "observation.state", "action": "action"}.get(k, f"bora.{k}")
        features[name] = feature(np.dtype(dtype).name, list(shape) or [1])
    features.update(base_features())
    eps = []
    order = np.argsort(a["episode"], kind="stable")
    for e in np.unique(a["episode"]):
        sel = order[a["episode"][order] == e]
        cols = {}
        for k in buf.shapes:
            name = {"proprio": "observation.state", "action": "action"}.get(k, f"bora.{k}")
            cols[name] = a[k][sel]
        eps.append({"columns": cols, "images": {}, "task": "", "info": {"rows": sel.tolist()}})
    bora = {"source": "bora-replay/1", "spec": {**buf.spec.__dict__}, "num_rows": len(buf)}
    write_dataset(out, fps, features, eps, bora)
    return out


def import_dataset(root: str | Path, out: str | Path) -> Path:
    """LeRobotDataset v3 -> ``bora-episodes/1`` directory, or a replay buffer when exported from one."""
    root, out = Path(root), Path(out)
    d = read_lerobot(root)
    bora = (
        json.loads((root / "meta" / "bora.json").read_text())
        if (root / "meta" / "bora.json").exists()
        else {}
    )
    fr, info = d["frames"], d["info"]
    if bora.get("source") == "bora-replay/1":
        from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec

        buf = ChunkReplayBuffer(ReplaySpec(**bora["spec"]), out)
        rows: dict[str, np.ndarray] = {}
        for k in buf.shapes:
            name = {"proprio": "observation.state", "action": "action"}.get(k, f"bora.{k}")
            if name in fr or k not in ("returns", "returns_gamma"):  # an older export has no stored returns
                rows[k] = fr[name]
        order = np.concatenate([np.asarray(json.loads(e["bora/info"])["rows"]) for e in d["episodes"]])
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        buf.add({k: v[inv] for k, v in rows.items()})
        buf.flush()
        return out
    # episodes (BORA-exported or any LeRobot v3 dataset with observation.state and action)
    bm = bora.get("meta")
    cams = sorted(k.split(".", 2)[2] for k in info["features"] if k.startswith("observation.images."))
    if bm:
        meta = DatasetMeta.from_dict(bm)
    else:
        st = info["features"].get("observation.state")
        if st is None or "action" not in info["features"]:
            raise LeRobotFormatError(f"{root}: needs 'observation.state' and 'action' features")
        names = st.get("names") or [f"joint_{i}" for i in range(st["shape"][0])]
        names = names if isinstance(names, list) else [f"joint_{i}" for i in range(st["shape"][0])]
        H, W = info["features"][f"observation.images.{cams[0]}"]["shape"][:2] if cams else (0, 0)
        meta = DatasetMeta(
            fps=float(info["fps"]),
            camera_names=cams,
            image_size=[H, W],
            arm_joint_names=names,
            hand_joint_names=[],
        )
    H, W = meta.image_size
    ids = bora.get("episode_ids") or list(range(len(d["episodes"])))
    inv_fields = {v[0]: k for k, v in EP_FIELDS.items()}
    for e, eid in zip(d["episodes"], ids):
        s, t = int(e["dataset_from_index"]), int(e["dataset_to_index"])
        T = t - s
        arrays = {}
        for name, key in inv_fields.items():
            if name in fr:
                arrays[key] = fr[name][s:t]
        n_cam = len(meta.camera_names)
        arrays["color"] = (
            np.stack([fr[f"observation.images.{c}"][s:t] for c in meta.camera_names], 1)
            if n_cam
            else np.zeros((T, 0, H, W, 3), np.uint8)
        )
        arrays["depth"] = (
            np.stack(
                [
                    fr[f"observation.depth.{c}"][s:t]
                    if f"observation.depth.{c}" in fr
                    else np.zeros((T, H, W), np.float32)
                    for c in meta.camera_names
                ],
                1,
            )
            if n_cam
            else np.zeros((T, 0, H, W), np.float32)
        )
        for key in ("valid", "obs_valid"):  # absent = every step recorded (bora-episodes/1)
            if key in arrays and np.asarray(arrays[key]).all():
                del arrays[key]
        for key, default in (
            ("reward", np.zeros(T, np.float32)),
            ("done", np.zeros(T, bool)),
            ("is_intervention", np.zeros(T, bool)),
            ("beta", np.zeros(T, np.float32)),
        ):
            arrays.setdefault(key, default)
        ep_info = (
            json.loads(e["bora/info"])
            if e.get("bora/info")
            else {"task": (e.get("tasks") or [""])[0], "source": "lerobot"}
        )
        write_episode(out, int(eid), arrays, ep_info, meta)
    return out


# ------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bora dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="verb", required=True, metavar="<verb>")
    e = sub.add_parser("export", help="bora episodes directory or online buffer -> LeRobotDataset v3")
    e.add_argument("src", help="a bora-episodes/1 directory (meta.json) or a replay buffer directory")
    e.add_argument("--out", required=True)
    e.add_argument("--fps", type=float, default=30.0, help="frame rate recorded for a replay buffer export")
    i = sub.add_parser("import", help="LeRobotDataset v3 -> bora episodes directory (or replay buffer)")
    i.add_argument("src")
    i.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        if args.verb == "export":
            meta = (
                json.loads((Path(args.src) / "meta.json").read_text())
                if (Path(args.src) / "meta.json").exists()
                else {}
            )
            if meta.get("format", "").startswith("bora-replay"):
                export_replay(args.src, args.out, args.fps)
            else:
                export_episodes(args.src, args.out)
        else:
            import_dataset(args.src, args.out)
    except (LeRobotFormatError, FileExistsError, ValueError) as ex:
        print(f"bora dataset {args.verb}: error: {ex}", file=sys.stderr)
        return 2
    print(f"{args.verb}: {args.src} -> {args.out}")
    return 0
