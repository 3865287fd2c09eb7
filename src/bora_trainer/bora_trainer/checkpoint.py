"""Run directories and checkpoints (docs/interfaces.md "Checkpoints").

```
RUN/
  config.yaml          # the resolved training config
  normalizer.json      # state/action statistics (Normalizer.to_json / any JSON-able dict)
  checkpoints/step_0000100/
      <name>.safetensors   # one file per module state dict (weights only)
      trainer_state.pt     # optimiser/scheduler/RNG state (resume), torch.save, weights_only-loadable
      meta.json            # {"step", "code_version", "files": {name: sha256}, "extra": {...}}
  latest               # text: name of the newest COMPLETE checkpoint directory
  tb/                  # TensorBoard event files
```
A checkpoint is written to a hidden temporary directory, every file fsync'ed, then renamed into place,
and only then ``latest`` is replaced (temporary file + rename). A crash at any point leaves either the
previous checkpoint or the new one, never a half-written directory that ``latest`` points to.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CKPT_DIR = "checkpoints"
LATEST = "latest"
TRAINER_STATE = "trainer_state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or fails its checksum."""


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty`` of the source tree, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return version("bora_trainer")
    except Exception:  # noqa: BLE001 - not installed as a distribution (source tree on sys.path)
        return "unknown"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plain_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, no shared storage (safetensors refuses aliased tensors, e.g. tied weights)."""
    out, seen = {}, set()
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"state entry {k!r} is a {type(v).__name__}, not a tensor")
        if hasattr(v, "full_tensor"):  # DTensor (FSDP2): gather the full tensor
            v = v.full_tensor()
        t = v.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if key in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.storage_offset()))
        out[k] = t
    return out


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    modules: dict[str, dict[str, torch.Tensor]],
    trainer_state: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    keep_last: int | None = 3,
    metadata: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Atomically write ``RUN/checkpoints/step_XXXXXXX`` and point ``RUN/latest`` to it.

    ``modules`` maps a file stem to a state dict (``{"vlm": vlm.state_dict(), ...}``); ``trainer_state``
    holds optimiser states etc. (anything ``torch.load(weights_only=True)`` accepts). ``keep_last``
    removes older complete checkpoints (None keeps all). ``metadata`` maps a module name to extra
    safetensors header entries (strings), e.g. ``{"residual": {"alpha": "0.35"}}`` (the deployed blend
    weight the policy node reads on a hot reload); ``step`` is always stored."""
    run_dir = Path(run_dir)
    ckpt_root = run_dir / CKPT_DIR
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        files: dict[str, str] = {}
        for name, state in modules.items():
            if not name.replace("_", "").replace("-", "").isalnum():
                raise CheckpointError(f"module name {name!r} must be alphanumeric (file stem)")
            path = tmp / f"{name}.safetensors"
            header = {**{str(k): str(v) for k, v in ((metadata or {}).get(name) or {}).items()}, "step": str(step)}
            save_file(_plain_state(state), str(path), metadata=header)
            files[path.name] = sha256_file(path)
        if trainer_state is not None:
            path = tmp / TRAINER_STATE
            torch.save(trainer_state, path)
            files[path.name] = sha256_file(path)
        for name in files:
            _fsync_path(tmp / name)
        meta = {"step": int(step), "code_version": code_version(), "files": files, "extra": extra or {}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        _fsync_path(tmp / "meta.json")
        _fsync_path(tmp)
        if final.exists():  # same step written again (resume at a checkpoint boundary): replace
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_path(ckpt_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / LATEST, final.name + "\n")
    if keep_last is not None and keep_last > 0:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories (with meta.json), oldest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / "meta.json").exists())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The directory ``RUN/latest`` names (or None when there is no checkpoint yet)."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    if not pointer.exists():
        return None
    path = run_dir / CKPT_DIR / pointer.read_text().strip()
    if not (path / "meta.json").exists():
        raise CheckpointError(f"{pointer} names {path.name}, which is not a complete checkpoint")
    return path


def load_checkpoint(path: str | Path, verify: bool = True, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint directory (or a run directory: its ``latest``). Returns
    ``{"step", "meta", "modules": {name: state_dict}, "trainer_state": dict | None, "path"}``.
    With ``verify`` every file's sha256 is checked against ``meta.json``."""
    path = Path(path)
    if (path / LATEST).exists() or (path / CKPT_DIR).is_dir():
        ck = latest_checkpoint(path)
        if ck is None:
            raise CheckpointError(f"{path}: run directory has no checkpoint")
        path = ck
    meta_path = path / "meta.json"
    if not meta_path.exists():
        raise CheckpointError(f"{path}: no meta.json (not a complete checkpoint)")
    meta = json.loads(meta_path.read_text())
    modules, trainer_state = {}, None
    for fname, digest in meta["files"].items():
        fpath = path / fname
        if not fpath.exists():
            raise CheckpointError(f"{path}: file {fname} listed in meta.json is missing")
        if verify and sha256_file(fpath) != digest:
            raise CheckpointError(f"{fpath}: sha256 mismatch (file corrupted or modified)")
        if fname.endswith(".safetensors"):
            modules[fname[: -len(".safetensors")]] = load_file(str(fpath), device=str(map_location))
        elif fname == TRAINER_STATE:
            trainer_state = torch.load(fpath, map_location=map_location, weights_only=True)
    return {
        "step": int(meta["step"]),
        "meta": meta,
        "modules": modules,
        "trainer_state": trainer_state,
        "path": path,
    }


def write_run_files(
    run_dir: str | Path, config: dict[str, Any] | None = None, normalizer: dict[str, Any] | str | None = None
) -> None:
    """Write ``RUN/config.yaml`` and ``RUN/normalizer.json`` atomically."""
    import yaml

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    if normalizer is not None:
        text = normalizer if isinstance(normalizer, str) else json.dumps(normalizer, indent=2)
        atomic_write_text(run_dir / "normalizer.json", text)


class RunLogger:
    """TensorBoard scalars under ``RUN/tb`` (rank 0 only; other ranks get a no-op logger)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
