"""Checked hot-reload of residual-actor checkpoints with an atomic swap.

``verify_checkpoint`` reads a safetensors file and rejects it (``CheckpointRejected``, the message
names the problem) unless: the file exists and is non-empty, its sha256 equals the expected one
(when given, else the one in a ``meta.json`` beside it, as ``bora_trainer.checkpoint`` writes),
it parses, its keys equal the reference state dict's, every shape matches, and every value is
finite. Loading builds a NEW module (the running one is never touched), so a failure leaves the
current weights in place.

``HotSwapSlot`` holds the module in use. A verified module is *staged*; ``commit()`` (called by the
control loop between ticks) makes it current by one reference assignment under a lock, and
readers (the inference worker) take a ``snapshot()`` once per inference, so one inference never
mixes two checkpoints.

``check_checkpoint_path`` is the policy node's gate for paths that arrive over ROS (LoadCheckpoint,
/bora/checkpoint): only regular files and directories inside the allowed root directories (ours: the
run directories, see ``default_checkpoint_roots``); an empty path, a special file (``/dev/zero``), a
symlink that leads out of the roots, or anything else outside them is refused with a one-line reason
before a byte is read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

T = TypeVar("T")


class CheckpointRejected(ValueError):
    """A checkpoint failed verification; the message says which check and why."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_SPECIAL = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _file_kind(p: Path) -> str:
    try:
        mode = p.stat().st_mode
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return next((name for test, name in _SPECIAL if test(mode)), "not a regular file")


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def default_checkpoint_roots(vla_path: str = "", residual_path: str = "", critic_path: str = "") -> list[Path]:
    """The allowed checkpoint roots when none are configured (ours): the run directory of the VLA (the
    parent of a VLAPolicy directory that lies inside a run, i.e. beside a ``normalizer.json`` or
    ``config.yaml``; else the VLA directory itself) and the directories holding the configured residual
    and critic (a run directory's own ``checkpoints/`` when they lie in one)."""
    roots: list[Path] = []
    if vla_path:
        v = Path(vla_path).expanduser().resolve()
        run = v.parent if any((v.parent / n).is_file() for n in ("normalizer.json", "config.yaml")) else v
        roots.append(run)
    for p in (residual_path, critic_path):
        if p:
            q = Path(p.split("@", 1)[0]).expanduser().resolve()
            roots.append(q if q.is_dir() else q.parent)
    out: list[Path] = []
    for r in roots:
        if not any(_inside(r, o) for o in out):
            out = [o for o in out if not _inside(o, r)] + [r]
    return out


def check_checkpoint_path(path: str | Path, roots: list[Path] | list[str]) -> Path:
    """The resolved checkpoint path if it may be opened, else ``CheckpointRejected`` with the reason.

    Allowed: an existing regular file, or a directory, whose real path (symlinks resolved) lies inside
    one of ``roots``; for a directory, every entry in it (and in ``checkpoints/<latest>`` of a run
    directory) that is a file or a symlink must resolve inside the roots to a regular file or directory.
    """
    raw = str(path)
    if not raw.strip():
        raise CheckpointRejected("checkpoint path is empty (expected a .safetensors file or a checkpoint directory)")
    if "\x00" in raw:
        raise CheckpointRejected("checkpoint path contains a NUL byte")
    real_roots = [Path(r).expanduser().resolve() for r in roots if str(r).strip()]
    if not real_roots:
        raise CheckpointRejected("no checkpoint roots are configured (parameter checkpoint_roots): refusing every path")
    p = Path(os.path.abspath(Path(raw).expanduser()))
    names = ", ".join(str(r) for r in real_roots)
    if not os.path.lexists(p):
        raise CheckpointRejected(f"checkpoint {p} does not exist")
    real = p.resolve()
    if not any(_inside(real, r) for r in real_roots):
        if any(_inside(p, r) for r in real_roots):
            raise CheckpointRejected(f"checkpoint {p} is a symlink to {real}, outside the checkpoint roots ({names})")
        raise CheckpointRejected(f"checkpoint {p} is outside the checkpoint roots ({names})")
    if not real.exists():
        raise CheckpointRejected(f"checkpoint {p} is a dangling symlink (to {real})")
    if not (real.is_file() or real.is_dir()):
        raise CheckpointRejected(f"checkpoint {p} is {_file_kind(real)}, not a checkpoint file or directory")
    if real.is_dir():
        entries = list(real.iterdir())
        latest = real / "latest"
        if latest.is_file():
            try:
                sub = real / "checkpoints" / latest.read_text().strip()
            except OSError as e:
                raise CheckpointRejected(f"checkpoint {p}: unreadable {latest} ({e.strerror})") from e
            entries += list(sub.iterdir()) if sub.is_dir() else []
    else:
        entries = [real.parent / "meta.json"]  # read beside a single file
    for e in entries:
        if not os.path.lexists(e):
            continue
        target = e.resolve()
        if not any(_inside(target, r) for r in real_roots):
            raise CheckpointRejected(
                f"checkpoint {p}: {e.name} is a symlink to {target}, outside the checkpoint roots ({names})"
            )
        if target.exists() and not (target.is_file() or target.is_dir()):
            raise CheckpointRejected(f"checkpoint {p}: {e.name} is {_file_kind(target)}")
    return real


def resolve_checkpoint_file(path: str | Path, stem: str = "residual") -> tuple[Path, str]:
    """A ``.safetensors`` file, or a checkpoint directory holding ``<stem>.safetensors``.

    Returns ``(file, expected_sha256)``, the latter from the directory's ``meta.json`` ("" if none).
    """
    p = Path(path)
    if p.is_dir():
        meta = p / "meta.json"
        f = p / f"{stem}.safetensors"
        if not f.exists():
            raise CheckpointRejected(f"checkpoint directory {p} has no {stem}.safetensors")
        digest = ""
        if meta.exists():
            try:
                digest = json.loads(meta.read_text()).get("files", {}).get(f.name, "")
            except (OSError, ValueError) as e:
                raise CheckpointRejected(f"{meta}: unreadable meta.json ({e})") from e
        return f, digest
    meta = p.parent / "meta.json"
    digest = ""
    if meta.exists():
        try:
            digest = json.loads(meta.read_text()).get("files", {}).get(p.name, "")
        except (OSError, ValueError):
            digest = ""
    return p, digest


@dataclass
class VerifiedCheckpoint:
    path: Path
    sha256: str
    state: dict[str, torch.Tensor]
    metadata: dict[str, str]

    @property
    def version(self) -> str:
        return self.sha256[:16]


def verify_checkpoint(
    path: str | Path,
    expected_sha256: str = "",
    reference: dict[str, torch.Tensor] | None = None,
    stem: str = "residual",
) -> VerifiedCheckpoint:
    """All checks of the module docstring; ``reference`` (a state dict) fixes keys and shapes."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    f, meta_sha = resolve_checkpoint_file(path, stem)
    if not f.exists():
        raise CheckpointRejected(f"checkpoint {f} does not exist")
    if not f.is_file():
        raise CheckpointRejected(f"checkpoint {f} is {_file_kind(f)}, not a regular file")
    if f.stat().st_size == 0:
        raise CheckpointRejected(f"checkpoint {f} is empty")
    digest = sha256_file(f)
    want = (expected_sha256 or meta_sha).strip().lower()
    if want and digest != want:
        raise CheckpointRejected(
            f"checkpoint {f}: sha256 {digest[:16]}... does not match the expected "
            f"{want[:16]}... (corrupted or still being written)"
        )
    try:
        state: dict[str, torch.Tensor] = {}
        with safe_open(str(f), framework="pt", device="cpu") as sf:
            metadata = dict(sf.metadata() or {})
            for k in sf.keys():
                state[k] = sf.get_tensor(k)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointRejected(f"checkpoint {f}: not a readable safetensors file ({e})") from e
    if reference is not None:
        missing = sorted(set(reference) - set(state))
        extra = sorted(set(state) - set(reference))
        if missing or extra:
            raise CheckpointRejected(
                f"checkpoint {f}: keys differ from the running model "
                f"(missing {missing[:5]}, unexpected {extra[:5]})"
            )
        for k, ref in reference.items():
            if tuple(state[k].shape) != tuple(ref.shape):
                raise CheckpointRejected(
                    f"checkpoint {f}: tensor {k!r} has shape {tuple(state[k].shape)}, "
                    f"expected {tuple(ref.shape)}"
                )
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointRejected(f"checkpoint {f}: tensor {k!r} contains NaN or inf")
    return VerifiedCheckpoint(f, digest, state, metadata)


def load_module_checked(
    template: torch.nn.Module, path: str | Path, expected_sha256: str = "", stem: str = "residual"
) -> tuple[torch.nn.Module, VerifiedCheckpoint]:
    """A deep copy of ``template`` with the verified weights loaded (strict), in eval mode."""
    ck = verify_checkpoint(path, expected_sha256, reference=template.state_dict(), stem=stem)
    module = copy.deepcopy(template)
    module.load_state_dict(ck.state, strict=True)
    module.eval()
    module.requires_grad_(False)
    return module, ck


class HotSwapSlot(Generic[T]):
    """The value in use + a staged replacement; ``commit()`` swaps them atomically."""

    def __init__(self, value: T | None = None, version: str = ""):
        self._lock = threading.Lock()
        self._cur: tuple[T | None, str] = (value, version)
        self._staged: tuple[T, str] | None = None
        self.swaps = 0

    def snapshot(self) -> tuple[T | None, str]:
        with self._lock:
            return self._cur

    def stage(self, value: T, version: str) -> None:
        with self._lock:
            self._staged = (value, version)

    @property
    def pending(self) -> bool:
        return self._staged is not None

    def commit(self) -> bool:
        """Make the staged value current (no-op without one); True when a swap happened."""
        if self._staged is None:
            return False
        with self._lock:
            if self._staged is None:
                return False
            self._cur, self._staged = self._staged, None
            self.swaps += 1
            return True


def infer_residual_dims(state: dict[str, Any]) -> dict[str, Any]:
    """Hidden widths and layer-norm use of a ``ResidualChunkActor`` from its state dict's shapes."""
    lin = sorted(
        (
            (int(k.split(".")[1]), v)
            for k, v in state.items()
            if k.startswith("trunk.") and k.endswith(".weight") and v.ndim == 2
        ),
        key=lambda x: x[0],
    )
    if not lin or "head.weight" not in state:
        raise CheckpointRejected(
            "residual checkpoint: no trunk.*.weight / head.weight tensors "
            "(not a ResidualChunkActor state dict)"
        )
    layer_norm = any(
        k.startswith("trunk.") and k.endswith(".weight") and v.ndim == 1 for k, v in state.items()
    )
    return {
        "hidden_dims": [int(v.shape[0]) for _, v in lin],
        "layer_norm": layer_norm,
        "in_dim": int(lin[0][1].shape[1]),
        "out_dim": int(state["head.weight"].shape[0]),
    }
