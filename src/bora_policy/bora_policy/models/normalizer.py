"""Mean/std normaliser for proprioceptive state and actions (Algorithm 1, lines 6 and 15).

``x_norm = (x - mu) / (sigma + eps)`` and ``x = x_norm * (sigma + eps) + mu`` for the state and the
action vectors. The statistics are fitted from arrays, saved as JSON with every checkpoint, and
identified by ``version`` (sha256 over the statistics) so that every published chunk names the
normalisation it was produced with. Works on numpy arrays and torch tensors of any leading shape
(``[..., state_dim]`` / ``[..., action_dim]``, e.g. chunks ``[B, k, A]``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "bora-normalizer/1"


def _as_vec(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"Normalizer.{name}: expected a non-empty 1-D vector, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"Normalizer.{name}: contains NaN or inf")
    return a


@dataclass(eq=False)
class Normalizer:
    """Per-dimension statistics; ``std`` entries are the population std of the fitted data."""

    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    eps: float = 1e-6
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.state_mean = _as_vec(self.state_mean, "state_mean")
        self.state_std = _as_vec(self.state_std, "state_std")
        self.action_mean = _as_vec(self.action_mean, "action_mean")
        self.action_std = _as_vec(self.action_std, "action_std")
        if self.state_mean.shape != self.state_std.shape:
            raise ValueError(
                f"Normalizer: state_mean {self.state_mean.shape} != state_std {self.state_std.shape}"
            )
        if self.action_mean.shape != self.action_std.shape:
            raise ValueError(
                f"Normalizer: action_mean {self.action_mean.shape} != action_std {self.action_std.shape}"
            )
        if np.any(self.state_std < 0) or np.any(self.action_std < 0):
            raise ValueError("Normalizer: std entries must be >= 0")
        if not self.eps > 0:
            raise ValueError(f"Normalizer.eps must be > 0, got {self.eps}")

    # ------------------------------------------------------------------ construction
    @property
    def state_dim(self) -> int:
        return int(self.state_mean.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action_mean.shape[0])

    @classmethod
    def fit(cls, states: Any, actions: Any, eps: float = 1e-6, min_std: float = 1e-2) -> Normalizer:
        """Fit from ``states [N, state_dim]`` and ``actions [N, action_dim]`` (any leading dims).

        ``min_std`` floors the std of (nearly) constant dimensions so they are not blown up: a joint
        the demonstrations never move would otherwise turn a 0.05 rad human correction into a
        normalised value of hundreds. The default 1e-2 (rad) keeps such values within a few units.
        """
        s = np.asarray(states, dtype=np.float64)
        a = np.asarray(actions, dtype=np.float64)
        if s.ndim < 2 or a.ndim < 2:
            raise ValueError(f"Normalizer.fit: states {s.shape} and actions {a.shape} must be [N, dim]")
        s = s.reshape(-1, s.shape[-1])
        a = a.reshape(-1, a.shape[-1])
        if s.shape[0] == 0 or a.shape[0] == 0:
            raise ValueError("Normalizer.fit: empty arrays")
        return cls(s.mean(0), np.maximum(s.std(0), min_std), a.mean(0), np.maximum(a.std(0), min_std), eps)

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> Normalizer:
        """mu = 0, sigma = 1 (up to eps): for tests and untrained models."""
        return cls(np.zeros(state_dim), np.ones(state_dim), np.zeros(action_dim), np.ones(action_dim), 1e-6)

    # ------------------------------------------------------------------ (de)normalisation
    def _stats(self, which: str, like: Any) -> tuple[Any, Any]:
        mean, std = (
            (self.state_mean, self.state_std) if which == "state" else (self.action_mean, self.action_std)
        )
        if isinstance(like, torch.Tensor):
            key = (which, like.device, like.dtype)
            if key not in self._cache:
                self._cache[key] = (
                    torch.as_tensor(mean, dtype=like.dtype, device=like.device),
                    torch.as_tensor(std + self.eps, dtype=like.dtype, device=like.device),
                )
            return self._cache[key]
        return mean, std + self.eps

    def _check(self, x: Any, which: str) -> None:
        dim = self.state_dim if which == "state" else self.action_dim
        if x.shape[-1] != dim:
            raise ValueError(
                f"Normalizer: {which} has last dimension {x.shape[-1]}, expected {which}_dim={dim} "
                f"(shape {tuple(x.shape)})"
            )

    def _prep(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x if x.is_floating_point() else x.float()
        return np.asarray(x, dtype=np.float32)

    def normalize_state(self, x: Any) -> Any:
        x = self._prep(x)
        self._check(x, "state")
        m, s = self._stats("state", x)
        return ((x - m) / s).astype(np.float32) if isinstance(x, np.ndarray) else (x - m) / s

    def denormalize_state(self, x: Any) -> Any:
        x = self._prep(x)
        self._check(x, "state")
        m, s = self._stats("state", x)
        return (x * s + m).astype(np.float32) if isinstance(x, np.ndarray) else x * s + m

    def normalize_action(self, x: Any) -> Any:
        x = self._prep(x)
        self._check(x, "action")
        m, s = self._stats("action", x)
        return ((x - m) / s).astype(np.float32) if isinstance(x, np.ndarray) else (x - m) / s

    def denormalize_action(self, x: Any) -> Any:
        x = self._prep(x)
        self._check(x, "action")
        m, s = self._stats("action", x)
        return (x * s + m).astype(np.float32) if isinstance(x, np.ndarray) else x * s + m

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "eps": float(self.eps),
            "state_mean": self.state_mean.tolist(),
            "state_std": self.state_std.tolist(),
            "action_mean": self.action_mean.tolist(),
            "action_std": self.action_std.tolist(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        missing = [k for k in ("state_mean", "state_std", "action_mean", "action_std") if k not in d]
        if missing:
            raise ValueError(f"Normalizer.from_dict: missing fields {missing}")
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"Normalizer.from_dict: format {d.get('format')!r}, expected {FORMAT!r}")
        n = cls(d["state_mean"], d["state_std"], d["action_mean"], d["action_std"], float(d.get("eps", 1e-6)))
        if "version" in d and d["version"] != n.version:
            raise ValueError(
                f"Normalizer.from_dict: stored version {d['version']} does not match the "
                f"statistics ({n.version}); the file was edited or corrupted"
            )
        return n

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def version(self) -> str:
        """sha256 (hex, first 16 chars) of the float64 bytes of all statistics and eps."""
        h = hashlib.sha256()
        for a in (self.state_mean, self.state_std, self.action_mean, self.action_std):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
            h.update(b"|")
        h.update(np.float64(self.eps).tobytes())
        return h.hexdigest()[:16]
