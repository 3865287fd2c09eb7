"""Episode files: the on-disk format of demonstrations and rollouts (docs/interfaces.md).

A dataset is a directory with ``meta.json`` and ``episodes/episode_XXXXXX.{npz,json}``.
Writes are atomic (temporary file, fsync, rename), so a killed writer never leaves a
half-written episode that a reader would take for a complete one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "bora-episodes/1"

# key -> (dtype, trailing shape builder from meta). None in a shape means "any".
REQUIRED_ARRAYS = ("color", "depth", "state", "action", "is_intervention", "beta", "reward", "done")
# valid [T]: the step's executed command was recorded (false = a gap: its action is a filler copy and
# every reader masks it out); obs_valid [T]: the step's observation was recorded. Absent = all true.
OPTIONAL_ARRAYS = ("policy_action", "z", "base_action", "chunk_start", "value", "valid", "obs_valid")
_DTYPES = {
    "color": np.uint8,
    "depth": np.float32,
    "state": np.float32,
    "action": np.float32,
    "policy_action": np.float32,
    "is_intervention": np.bool_,
    "beta": np.float32,
    "reward": np.float32,
    "done": np.bool_,
    "z": np.float32,
    "base_action": np.float32,
    "chunk_start": np.bool_,
    "value": np.float32,
    "valid": np.bool_,
    "obs_valid": np.bool_,
}


class EpisodeFormatError(ValueError):
    """An episode or dataset does not match the documented format."""


@dataclass
class DatasetMeta:
    """Dataset-level description shared by every episode of a directory."""

    fps: float
    camera_names: list[str]
    image_size: list[int]  # [H, W]
    arm_joint_names: list[str]
    hand_joint_names: list[str]
    tasks: list[str] = field(default_factory=list)
    format: str = FORMAT
    # the RewardConfig fields (bora_policy.common.rewards) the episodes' ``reward`` arrays were computed with:
    # the offline critic learns in these units, so the online phase that inherits it must use the same
    # definition (``bora train online`` reads it from here). None: not recorded (datasets written before)
    reward: dict[str, float] | None = None

    @property
    def action_dim(self) -> int:
        return len(self.arm_joint_names) + len(self.hand_joint_names)

    @property
    def state_dim(self) -> int:
        return self.action_dim

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["action_dim"] = self.action_dim
        d["state_dim"] = self.state_dim
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetMeta:
        if d.get("format") != FORMAT:
            raise EpisodeFormatError(f"meta.json: format is {d.get('format')!r}, expected {FORMAT!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("fps", "camera_names", "image_size", "arm_joint_names", "hand_joint_names")
                   if n not in d]
        if missing:
            raise EpisodeFormatError(f"meta.json: missing field(s) {missing}")
        return cls(**{k: v for k, v in d.items() if k in names})


def _atomic_write_bytes(path: Path, write_fn) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_meta(root: str | Path, meta: DatasetMeta) -> None:
    """Write ``meta.json``; an existing one must agree on cameras, image size and joints."""
    root = Path(root)
    path = root / "meta.json"
    if path.exists():
        old = read_meta(root)
        for key in ("camera_names", "image_size", "arm_joint_names", "hand_joint_names"):
            if getattr(old, key) != getattr(meta, key):
                raise EpisodeFormatError(
                    f"{path}: {key} is {getattr(old, key)!r} but the new episodes have {getattr(meta, key)!r}"
                )
        if old.reward is not None and meta.reward is not None and old.reward != meta.reward:
            raise EpisodeFormatError(
                f"{path}: reward is {old.reward!r} but the new episodes' rewards were computed with {meta.reward!r} "
                "(one dataset, one reward definition: write them to another directory)"
            )
        meta.tasks = sorted(set(old.tasks) | set(meta.tasks))
        meta.reward = old.reward  # None stays None: the earlier episodes' definition is unknown
    data = json.dumps(meta.to_dict(), indent=2).encode()
    _atomic_write_bytes(path, lambda f: f.write(data))


def read_meta(root: str | Path) -> DatasetMeta:
    path = Path(root) / "meta.json"
    if not path.exists():
        raise EpisodeFormatError(f"{path} not found: is {root} a BORA episode dataset?")
    return DatasetMeta.from_dict(json.loads(path.read_text()))


def validate_episode(arrays: dict[str, np.ndarray], meta: DatasetMeta) -> int:
    """Check keys, dtypes and shapes against ``meta``; return the episode length T."""
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise EpisodeFormatError(f"episode is missing array(s) {missing}")
    unknown = [k for k in arrays if k not in REQUIRED_ARRAYS + OPTIONAL_ARRAYS]
    if unknown:
        raise EpisodeFormatError(f"episode has unknown array(s) {unknown}")
    T = len(arrays["action"])
    n_cam, (H, W) = len(meta.camera_names), meta.image_size
    expected = {
        "color": (T, n_cam, H, W, 3),
        "depth": (T, n_cam, H, W),
        "state": (T, meta.state_dim),
        "action": (T, meta.action_dim),
        "policy_action": (T, meta.action_dim),
        "base_action": (T, meta.action_dim),
        "is_intervention": (T,),
        "beta": (T,),
        "reward": (T,),
        "done": (T,),
        "chunk_start": (T,),
        "valid": (T,),
        "obs_valid": (T,),
    }
    for key, arr in arrays.items():
        if key in expected and tuple(arr.shape) != expected[key]:
            raise EpisodeFormatError(f"episode array {key!r}: shape {tuple(arr.shape)}, expected {expected[key]}")
        if key in ("z", "value") and arr.shape[0] != T:
            raise EpisodeFormatError(f"episode array {key!r}: first dimension {arr.shape[0]}, expected T={T}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise EpisodeFormatError(f"episode array {key!r} contains NaN or inf")
    return T


def write_episode(
    root: str | Path, episode_id: int, arrays: dict[str, np.ndarray], info: dict[str, Any], meta: DatasetMeta
) -> Path:
    """Validate and atomically write one episode; returns the ``.npz`` path.

    The ``.json`` side file is written last, so its presence marks a complete episode.
    """
    root = Path(root)
    arrays = {k: np.asarray(v, dtype=_DTYPES.get(k)) for k, v in arrays.items()}
    T = validate_episode(arrays, meta)
    write_meta(root, meta)
    stem = root / "episodes" / f"episode_{episode_id:06d}"
    npz = stem.with_suffix(".npz")
    _atomic_write_bytes(npz, lambda f: np.savez_compressed(f, **arrays))
    info = dict(info, episode_id=int(episode_id), num_steps=int(T))
    data = json.dumps(info, indent=2, default=_json_default).encode()
    _atomic_write_bytes(stem.with_suffix(".json"), lambda f: f.write(data))
    return npz


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def episode_ids(root: str | Path) -> list[int]:
    """Ids of complete episodes (both files present), sorted."""
    ep_dir = Path(root) / "episodes"
    if not ep_dir.is_dir():
        return []
    ids = []
    for js in ep_dir.glob("episode_*.json"):
        if js.with_suffix(".npz").exists():
            ids.append(int(js.stem.split("_")[1]))
    return sorted(ids)


def next_episode_id(root: str | Path) -> int:
    ids = episode_ids(root)
    return ids[-1] + 1 if ids else 0


def read_info(root: str | Path, episode_id: int) -> dict:
    """One episode's JSON side file (outcome, source, interventions, ...) without its arrays."""
    return json.loads((Path(root) / "episodes" / f"episode_{episode_id:06d}.json").read_text())


def read_episode(root: str | Path, episode_id: int, load_images: bool = True) -> tuple[dict, dict]:
    """Return ``(arrays, info)`` of one episode; ``load_images=False`` skips colour and depth."""
    stem = Path(root) / "episodes" / f"episode_{episode_id:06d}"
    info = read_info(root, episode_id)
    with np.load(stem.with_suffix(".npz")) as z:
        arrays = {k: z[k] for k in z.files if load_images or k not in ("color", "depth")}
    return arrays, info


def iter_episodes(root: str | Path, load_images: bool = True) -> Iterator[tuple[dict, dict]]:
    for eid in episode_ids(root):
        yield read_episode(root, eid, load_images=load_images)


def step_validity(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(valid, obs_valid)`` of an episode: recorded steps / recorded observations (all true if absent)."""
    T = len(arrays["action"])
    valid = np.asarray(arrays.get("valid", np.ones(T, bool)), bool)
    obs_valid = np.asarray(arrays.get("obs_valid", np.ones(T, bool)), bool)
    return valid, obs_valid
