"""What a residual checkpoint says about itself, checked before its weights are used (split from
policy_runner.py). No torch here: these read ``meta.json`` files, safetensors header entries and
``PATH@LAMBDA`` specs, and refuse a bad field with ``CheckpointRejected`` in one line naming it.

* Blend weights: a single file's ``alpha`` (safetensors metadata, the trainer's alpha_t), a frozen file's
  ``lambda``/``alpha`` or ``@LAMBDA``, a multi-round checkpoint's ``residuals[i].lambda``. Each must be a
  number in ``[0, 1]`` (ours: the range of the graph's ``residual_scale``, config/graph.yaml, which stands in
  for a checkpoint's alpha when it stores none). Before, any float was used, NaN or 40 included, and a
  non-number alpha raised out of ``load_residual`` (found in review).
* The normaliser version: a residual maps NORMALISED proprio and base chunks, so it must have been trained
  with the policy's normaliser. A checkpoint without a version is refused (found in review: it was accepted
  unchecked); the trainer writes it in every form (safetensors metadata and ``meta.json`` ``extra``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bora_policy.runtime.checkpoint_loader import CheckpointRejected

BLEND_RANGE = (0.0, 1.0)


def blend_weight(value, field: str, where: str) -> float:
    """``value`` (a number or its text) as a float in ``BLEND_RANGE``, else CheckpointRejected naming ``field``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    lo, hi = BLEND_RANGE
    if not lo <= x <= hi:  # NaN fails too
        raise CheckpointRejected(f"{where}: {field} = {value!r} is out of range: expected a number in [{lo:g}, {hi:g}]")
    return x


def check_normalizer_version(stored, expected: str, where: str) -> None:
    """The residual's stored normaliser version must be the policy's (``expected``); none stored is refused."""
    if not stored:
        raise CheckpointRejected(
            f"{where}: no normalizer_version stored: expected {expected}, the policy's normaliser (a residual "
            "maps normalised inputs; store it in the safetensors metadata or meta.json extra)"
        )
    if str(stored) != expected:
        raise CheckpointRejected(f"{where}: residual trained with normaliser {stored}, the policy's is {expected}")


def single_file_normalizer_version(path: Path, metadata: dict) -> str | None:
    """A single residual file's normaliser version: its safetensors metadata ``normalizer_version``, else the
    ``extra.normalizer_version`` of the meta.json of the checkpoint directory it sits in (the trainer's
    round-1 announcement is such a file); None when neither has one."""
    version = metadata.get("normalizer_version")
    side = Path(path).parent / "meta.json"
    if not version and side.is_file():
        try:
            version = json.loads(side.read_text()).get("extra", {}).get("normalizer_version")
        except (OSError, ValueError, AttributeError) as e:
            raise CheckpointRejected(f"{side}: unreadable checkpoint description ({e})") from e
    return version or None


def split_lambda(spec: str) -> tuple[str, float | None]:
    """``PATH@LAMBDA`` -> (PATH, LAMBDA); ``PATH`` -> (PATH, None). LAMBDA is range-checked by the caller."""
    path, sep, lam = str(spec).rpartition("@")
    if not sep or not path:
        return str(spec), None
    try:
        return path, float(lam)
    except ValueError:
        return str(spec), None


def stack_entries(extra, where: str) -> list[tuple[str, float]]:
    """``(name, lambda)`` of each round of a multi-round checkpoint's ``meta.json`` ``extra`` (``residuals``: a
    non-empty list of ``{name, lambda}``, ``name`` the stem of that round's ``.safetensors`` beside it, ``lambda``
    in ``BLEND_RANGE``), else CheckpointRejected naming the field (before, a missing name raised a bare KeyError
    out of the hot reload and the resume)."""
    entries = extra.get("residuals") if isinstance(extra, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CheckpointRejected(f"{where}: extra.residuals = {entries!r}: expected a non-empty list of "
                                 "{name, lambda}, one per round")
    out = []
    for i, r in enumerate(entries):
        name = r.get("name") if isinstance(r, dict) else None
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise CheckpointRejected(f"{where}: residuals[{i}].name = {name!r}: expected the file stem of that "
                                     "round's .safetensors in this directory")
        out.append((name, blend_weight(r.get("lambda"), f"residuals[{i}].lambda", where)))
    return out


def stack_checkpoint_dir(path: Path) -> Path | None:
    """The checkpoint directory of a multi-round residual checkpoint (or online run), else None."""
    if path.is_dir() and (path / "latest").is_file():
        path = path / "checkpoints" / (path / "latest").read_text().strip()
    meta = path / "meta.json"
    if not (path.is_dir() and meta.is_file()):
        return None
    try:
        extra = json.loads(meta.read_text()).get("extra", {})
    except (OSError, ValueError) as e:
        raise CheckpointRejected(f"{meta}: unreadable meta.json ({e})") from e
    if extra.get("kind") == "residual" and extra.get("residuals"):
        return path
    return None
