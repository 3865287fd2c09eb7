"""LeRobotDataset v3 files (codebase_version ``v3.0``), without any BORA knowledge: the layout
constants, arrow columns (nested fixed-size lists), PNG image cells, LeRobot's per-feature stats
(per-channel for images; count-weighted merge), :func:`write_dataset` (one chunk/file) and
:func:`read_lerobot`. ``data/lerobot.py`` maps BORA episodes and replay buffers onto these files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
CHUNKS_SIZE = 1000


class LeRobotFormatError(ValueError):
    """A directory is not a LeRobotDataset v3 this module can read."""


# ------------------------------------------------------------------------------------ arrow helpers
def _column(arr: np.ndarray) -> pa.Array:
    """[N] -> primitive column, [N, ...] -> nested fixed-size lists (HF datasets Sequence / ArrayND)."""
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 1:
        return pa.array(arr)
    col = pa.array(arr.reshape(-1))
    for d in reversed(arr.shape[1:]):
        col = pa.FixedSizeListArray.from_arrays(col, d)
    return col


def _numpy(col: pa.ChunkedArray | pa.Array, shape: list[int], dtype: str) -> np.ndarray:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(col)
    flat = col
    while pa.types.is_fixed_size_list(flat.type) or pa.types.is_list(flat.type):
        flat = flat.flatten()
    out = flat.to_numpy(zero_copy_only=False).astype(dtype)
    return out.reshape(n, *shape) if shape != [1] else out.reshape(n)


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(img).save(b, format="PNG")
    return b.getvalue()


def _unpng(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def feature(dtype: str, shape: list[int], names: Any = None) -> dict:
    return {"dtype": dtype, "shape": list(shape), "names": names}


def _stats(arr: np.ndarray, image: bool = False) -> dict[str, Any]:
    if image:  # LeRobot: per channel, values in [0, 1], shape [3, 1, 1]
        x = arr.reshape(-1, 3).astype(np.float64) / 255.0
        f = lambda v: v.reshape(3, 1, 1).tolist()  # noqa: E731
        return {
            "min": f(x.min(0)),
            "max": f(x.max(0)),
            "mean": f(x.mean(0)),
            "std": f(x.std(0)),
            "count": [len(arr)],
        }
    x = arr.reshape(len(arr), -1).astype(np.float64) if arr.ndim > 1 else arr.astype(np.float64)[:, None]
    shp = arr.shape[1:] or (1,)
    return {
        "min": x.min(0).reshape(shp).tolist(),
        "max": x.max(0).reshape(shp).tolist(),
        "mean": x.mean(0).reshape(shp).tolist(),
        "std": x.std(0).reshape(shp).tolist(),
        "count": [len(arr)],
    }


def _merge_stats(parts: list[dict]) -> dict:
    """Aggregate per-episode stats (count-weighted mean / pooled variance), as LeRobot does."""
    c = np.array([p["count"][0] for p in parts], np.float64)
    means = [np.asarray(p["mean"]) for p in parts]
    stds = [np.asarray(p["std"]) for p in parts]
    tot = c.sum()
    mean = sum(ci * m for ci, m in zip(c, means)) / tot
    var = sum(ci * (s**2 + (m - mean) ** 2) for ci, m, s in zip(c, means, stds)) / tot
    return {
        "min": np.min([np.asarray(p["min"]) for p in parts], 0).tolist(),
        "max": np.max([np.asarray(p["max"]) for p in parts], 0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(var).tolist(),
        "count": [int(tot)],
    }


# ------------------------------------------------------------------------------------ writer
def write_dataset(
    out: Path,
    fps: float,
    features: dict,
    episodes: list[dict],
    bora_meta: dict,
    robot_type: str = "franka_dexhand",
) -> None:
    """``episodes``: [{"columns": {feature: np.ndarray [T, ...]}, "images": {feature: [T, H, W, 3]},
    "task": str, "info": dict}]. Writes the v3 layout of the module docstring."""
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    if len(episodes) > CHUNKS_SIZE:
        raise ValueError(f"more than {CHUNKS_SIZE} episodes: multi-file export is not implemented")
    tasks = sorted({e["task"] for e in episodes})
    task_index = {t: i for i, t in enumerate(tasks)}
    cols: dict[str, list] = {k: [] for k in features}
    ep_rows: list[dict] = []
    stats_parts: dict[str, list] = {k: [] for k in features}
    index = 0
    for ei, e in enumerate(episodes):
        T = len(next(iter(e["columns"].values())))
        base = {
            "timestamp": (np.arange(T) / fps).astype(np.float32),
            "frame_index": np.arange(T, dtype=np.int64),
            "episode_index": np.full(T, ei, np.int64),
            "index": np.arange(index, index + T, dtype=np.int64),
            "task_index": np.full(T, task_index[e["task"]], np.int64),
        }
        row = {
            "episode_index": ei,
            "tasks": [e["task"]],
            "length": T,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": index,
            "dataset_to_index": index + T,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "bora/info": json.dumps(e["info"], sort_keys=True),
        }
        for k, ft in features.items():
            if ft["dtype"] == "image":
                imgs = e["images"][k]
                cols[k].append([{"bytes": _png(im), "path": None} for im in imgs])
                st = _stats(imgs, image=True)
            else:
                arr = base[k] if k in base else e["columns"][k]
                cols[k].append(arr)
                st = _stats(arr)
            stats_parts[k].append(st)
            for s, v in st.items():
                row[f"stats/{k}/{s}"] = np.asarray(v, np.float64).ravel().tolist()
        ep_rows.append(row)
        index += T
    arrays, names = [], []
    for k, ft in features.items():
        if ft["dtype"] == "image":
            arrays.append(
                pa.array(
                    [x for part in cols[k] for x in part],
                    type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
                )
            )
        else:
            arrays.append(_column(np.concatenate(cols[k])))
        names.append(k)
    (out / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_arrays(arrays, names=names), out / DATA_PATH.format(chunk_index=0, file_index=0)
    )
    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(ep_rows), out / EPISODES_PATH.format(chunk_index=0, file_index=0))
    import pandas as pd

    tdf = pd.DataFrame(
        {"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task")
    )
    tdf.to_parquet(out / "meta" / "tasks.parquet")
    stats = {k: _merge_stats(v) for k, v in stats_parts.items() if v}
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=1))
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": index,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": None,
        "features": features,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    (out / "meta" / "bora.json").write_text(json.dumps(bora_meta, indent=2))


def base_features() -> dict:
    return {
        "timestamp": feature("float32", [1]),
        "frame_index": feature("int64", [1]),
        "episode_index": feature("int64", [1]),
        "index": feature("int64", [1]),
        "task_index": feature("int64", [1]),
    }


# ------------------------------------------------------------------------------------ reader
def read_lerobot(root: str | Path) -> dict[str, Any]:
    """``{"info", "tasks", "episodes" (rows), "frames": {feature: np.ndarray}}`` of a v3 dataset."""
    root = Path(root)
    ip = root / "meta" / "info.json"
    if not ip.exists():
        raise LeRobotFormatError(f"{ip} not found: not a LeRobotDataset")
    info = json.loads(ip.read_text())
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise LeRobotFormatError(
            f"{ip}: codebase_version {info.get('codebase_version')!r}, expected {CODEBASE_VERSION}"
        )
    import pandas as pd

    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    ep_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    episodes = [r for f in ep_files for r in pq.read_table(f).to_pylist()]
    data_files = sorted((root / "data").rglob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in data_files])
    frames: dict[str, np.ndarray] = {}
    for k, ft in info["features"].items():
        if ft["dtype"] == "video":
            raise LeRobotFormatError(f"feature {k}: video features are not supported by this importer")
        if k not in table.column_names:
            raise LeRobotFormatError(f"feature {k} listed in info.json is missing from the data files")
        col = table.column(k)
        if ft["dtype"] == "image":
            frames[k] = (
                np.stack([_unpng(x["bytes"]) for x in col.to_pylist()])
                if len(col)
                else np.zeros((0, 0, 0, 3))
            )
        else:
            frames[k] = _numpy(col, ft["shape"], "bool" if ft["dtype"] == "bool" else ft["dtype"])
    return {"info": info, "tasks": tasks, "episodes": episodes, "frames": frames}
