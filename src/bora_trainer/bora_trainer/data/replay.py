"""Chunk replay buffers for online residual RLPD (Sec. 3.2, Algorithm 1 lines 23-25).

One row = one chunk transition at a replanning step t (all actions normalised with the run's
stored normaliser; ``k`` = chunk length, ``A`` = action dim, ``S`` = state dim, ``Z`` = z dim):

| field | shape | meaning |
| --- | --- | --- |
| ``z`` | [Z] | cognition token z_t of the frozen VLA (never recomputed in updates) |
| ``proprio`` | [S] | normalised proprio s_t^norm |
| ``vla`` | [k, A] | the frozen VLA's chunk A^VLA at t |
| ``base`` | [k, A] | the base chunk of the *current* round (A^VLA + folded earlier residuals) |
| ``action`` | [k, A] | the executed actions a_{t..t+k-1} (A_exec, or the demonstration) |
| ``reward`` / ``done`` / ``mask`` | [k] | per-step reward, terminal flag, validity mask m_{t,i} |
| ``is_intervention`` / ``beta`` | [k] | takeover flag and blend weight of each executed step |
| ``next_z`` / ``next_proprio`` / ``next_vla`` / ``next_base`` | | the same at t + k |
| ``next_valid`` | [] | a next observation exists (see "Termination vs truncation" below) |
| ``n_steps`` | [] | control steps of the chunk inside the episode (``k``, fewer for the last chunks) |
| ``returns`` / ``returns_gamma`` | [k] / [] | Monte-Carlo returns of the steps and their discount (0: none stored) |
| ``episode`` / ``step`` | [] | provenance |

Termination vs truncation (the offline chunk dataset's semantics, :mod:`bora_trainer.data.chunks`):
``done`` is True only at a real terminal step (success); steps past the episode end are padding with
``done = False``, ``reward = 0`` and ``mask = 0``. A chunk that runs to the end of an episode WITHOUT a
terminal (a time limit, or a recording that stopped) was truncated, not terminated: it bootstraps from
the value of the state after its last executed step. That state is the episode's ``final`` observation
when the rollout loop provides it, otherwise the last replanning observation of the episode stands in
(as offline, where the last recorded observation stands in for ``o_T``); ``next_valid`` is then True. The
one chunk that would stand in for itself (it starts at that observation and ends exactly at the episode end:
a recording through the ROS graph, whose z exist only at chunk starts) has no next observation: ``next_valid``
False and its last step masked out, as for a gap.
``next_valid`` is False only for rows that need no bootstrap (a terminal inside the chunk) or cannot
get one (a gap in the replanning steps inside an episode; the chunk's last step is then masked out).

Monte-Carlo returns (``ChunkReplayBuffer.returns``, :mod:`bora_trainer.data.replay_returns`):
``G_j = sum_{l >= j} gamma^(l - j) r_l`` of each row's steps to its episode's recorded end (stopping at a terminal;
a time limit is summed to, not bootstrapped past), the offline chunk dataset's ``returns``. Rows made from an
episode (:func:`chunk_transitions` with ``gamma``: D_offline, the simulated rollouts, converted ROS recordings) store
them, computed from the episode's full reward/done arrays, with their ``returns_gamma``. Found in review 2026-12-08:
they used to be rebuilt from the rows' own per-step rewards only, so a step no row covers (``offline_stride`` > k,
a recording's dropped ActionChunk) counted as reward 0. Rows without stored returns (buffers of older versions,
hand-made rows; ``returns_gamma`` 0) or stored with another gamma still get that rebuild per episode (``episode``,
``step``, ``n_steps``; exact where the rows tile their episode; a row with ``episode = -1`` is its own episode), so
buffers of any version work. :class:`MixedSampler` adds them to batches for ``OnlineConfig.critic_mc_weight``.

``base``/``next_base`` are derived data: a new round recomputes them from ``vla`` with
:meth:`ChunkReplayBuffer.rebase` (Algorithm 1 lines 8-12), so the VLA is never re-run.

Persistence: a buffer with a ``root`` directory appends ``shard_XXXXXX.npz`` files atomically
(temporary file, fsync, rename) on :meth:`flush`; ``meta.json`` fixes the shapes and the
normaliser version, and ``reward`` the :class:`~bora_policy.common.rewards.RewardConfig` fields the rows'
rewards were computed with (``None``: not recorded, buffers of older versions). :meth:`ChunkReplayBuffer.open`
reloads everything flushed, so a trainer crash loses at most the unflushed rows (the rollout loop flushes at the
end of each episode).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bora_policy.common.episodes import _atomic_write_bytes
from bora_trainer.data.replay_returns import chunk_returns, episode_returns, stored_returns

log = logging.getLogger("bora_trainer.replay")
FORMAT = "bora-replay/1"  # shards without ``returns``/``returns_gamma`` (older versions) load with them absent


@dataclass(frozen=True)
class ReplaySpec:
    """Shapes of a chunk replay buffer, the normaliser the actions are expressed in and the reward
    definition (``RewardConfig`` fields as a dict; ``None`` = not recorded) the rows' rewards come from."""

    z_dim: int
    state_dim: int
    action_dim: int
    chunk_size: int
    normalizer_version: str = ""
    reward: dict | None = None

    def field_shapes(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        k, A, S, Z = self.chunk_size, self.action_dim, self.state_dim, self.z_dim
        f32, b = np.float32, np.bool_
        return {
            "z": ((Z,), f32),
            "proprio": ((S,), f32),
            "vla": ((k, A), f32),
            "base": ((k, A), f32),
            "action": ((k, A), f32),
            "reward": ((k,), f32),
            "done": ((k,), b),
            "mask": ((k,), b),
            "is_intervention": ((k,), b),
            "beta": ((k,), f32),
            "next_z": ((Z,), f32),
            "next_proprio": ((S,), f32),
            "next_vla": ((k, A), f32),
            "next_base": ((k, A), f32),
            "next_valid": ((), b),
            "n_steps": ((), np.int64),
            "returns": ((k,), f32),
            "returns_gamma": ((), np.float64),
            "episode": ((), np.int64),
            "step": ((), np.int64),
        }


# fields a caller may omit in add(): filled with these defaults
_OPTIONAL = {
    "base": "vla",
    "next_base": "next_vla",
    "beta": 0.0,
    "is_intervention": False,
    "returns": 0.0,  # with returns_gamma 0: none stored, rebuilt from the rows (module docstring)
    "returns_gamma": 0.0,
    "episode": -1,
    "step": -1,
}


class ReplayError(ValueError):
    """A transition or a stored buffer does not match the buffer's spec."""


class ChunkReplayBuffer:
    """Growable array store of chunk transitions with optional atomic on-disk shards."""

    def __init__(self, spec: ReplaySpec, root: str | Path | None = None, _load: bool = False):
        self.spec = spec
        self.shapes = spec.field_shapes()
        self.root = Path(root) if root is not None else None
        self._cap = 0
        self._n = 0
        self._data: dict[str, np.ndarray] = {}
        self._flushed = 0
        self._next_shard = 0
        self._returns_cache: tuple[tuple[float, int], np.ndarray] | None = None  # (gamma, rows) -> returns
        self._warned_gamma = False
        self._grow(256)
        if self.root is not None and not _load:
            meta = self.root / "meta.json"
            if meta.exists():
                raise ReplayError(f"{self.root} already holds a replay buffer: use ChunkReplayBuffer.open()")
            self.root.mkdir(parents=True, exist_ok=True)
            payload = json.dumps({"format": FORMAT, **asdict(spec)}, indent=2).encode()
            _atomic_write_bytes(meta, lambda f: f.write(payload))

    # ---- storage -------------------------------------------------------------------------
    def _grow(self, cap: int) -> None:
        new = {}
        for name, (shape, dtype) in self.shapes.items():
            arr = np.zeros((cap, *shape), dtype=dtype)
            if name in self._data:
                arr[: self._n] = self._data[name][: self._n]
            new[name] = arr
        self._data, self._cap = new, cap

    def __len__(self) -> int:
        return self._n

    @property
    def num_interventions(self) -> int:
        """Rows with at least one step under human control."""
        return int(self._data["is_intervention"][: self._n].any(axis=1).sum())

    def add(self, rows: dict[str, Any]) -> None:
        """Append one transition (unbatched arrays) or a batch (leading dimension N)."""
        rows = dict(rows)
        if "n_steps" not in rows and "mask" in rows:
            # rows stored before the field existed: the steps up to the last valid one
            m = np.asarray(rows["mask"], bool)
            k = m.shape[-1]
            rows["n_steps"] = np.where(m.any(-1), k - np.argmax(m[..., ::-1], axis=-1), 0).astype(np.int64)
        if ("returns" in rows) != ("returns_gamma" in rows):
            raise ReplayError("fields 'returns' and 'returns_gamma' come together (the discount of the returns)")
        for name, default in _OPTIONAL.items():
            if name not in rows:
                rows[name] = rows[default] if isinstance(default, str) and default in rows else default
        missing = sorted(set(self.shapes) - set(rows))
        if missing:
            raise ReplayError(f"transition is missing field(s) {missing}")
        unknown = sorted(set(rows) - set(self.shapes))
        if unknown:
            raise ReplayError(f"transition has unknown field(s) {unknown}; valid: {sorted(self.shapes)}")
        z = np.asarray(rows["z"])
        batched = z.ndim == 2
        n = z.shape[0] if batched else 1
        conv = {}
        for name, (shape, dtype) in self.shapes.items():
            arr = np.asarray(rows[name], dtype=dtype)
            if arr.ndim == 0 or arr.shape == shape:  # one value for every row (or an unbatched row)
                arr = np.broadcast_to(arr, (n, *shape))
            if tuple(arr.shape) != (n, *shape):
                raise ReplayError(
                    f"field {name!r}: shape {tuple(np.asarray(rows[name]).shape)}, "
                    f"expected {shape} (or [N, *{shape}])"
                )
            if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
                raise ReplayError(f"field {name!r} contains NaN or inf")
            conv[name] = arr
        g = conv["returns_gamma"]
        if np.any((g != 0) & ~((g > 0) & (g <= 1))):
            raise ReplayError("field 'returns_gamma' must be in (0, 1] (or 0: no returns stored)")
        if self._n + n > self._cap:
            self._grow(max(2 * self._cap, self._n + n))
        for name, arr in conv.items():
            self._data[name][self._n : self._n + n] = arr
        self._n += n

    def arrays(self, idx: np.ndarray | slice | None = None) -> dict[str, np.ndarray]:
        """Numpy views (slice) or copies (index array) of the stored rows."""
        sel = slice(0, self._n) if idx is None else idx
        if isinstance(sel, np.ndarray) and sel.size and (sel.min() < 0 or sel.max() >= self._n):
            raise IndexError(f"replay index out of range [0, {self._n})")
        return {k: v[: self._n][sel] for k, v in self._data.items()}

    def returns(self, gamma: float) -> np.ndarray:
        """Monte-Carlo return-to-go of every stored row's steps [N, k] (module docstring; 0 past ``n_steps``): the
        rows' stored ``returns`` where they were computed with this ``gamma``, else rebuilt from the rows (a warning
        once when rows store another gamma's); recomputed when rows were added since the last call with ``gamma``."""
        cached = self._returns_cache
        if cached is None or cached[0] != (float(gamma), self._n):
            rows = self.arrays()
            other = (rows["returns_gamma"] > 0) & ~stored_returns(rows, gamma)
            if other.any() and not self._warned_gamma:
                self._warned_gamma = True
                log.warning("%d replay row(s) store Monte-Carlo returns of gamma %s, not %g: rebuilt from the rows "
                            "(exact only where rows tile their episode)", int(other.sum()),
                            sorted(set(rows["returns_gamma"][other].tolist())), gamma)
            self._returns_cache = ((float(gamma), self._n), episode_returns(rows, gamma))
        return self._returns_cache[1]

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self._n == 0:
            raise ReplayError("cannot sample from an empty replay buffer")
        return rng.integers(0, self._n, size=n)

    def rebase(
        self, fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], batch: int = 4096
    ) -> None:
        """Recompute ``base``/``next_base`` = fn(proprio, vla, z) for every row (a new round's base)."""
        for s in range(0, self._n, batch):
            e = min(self._n, s + batch)
            d = self._data
            d["base"][s:e] = fn(d["proprio"][s:e], d["vla"][s:e], d["z"][s:e])
            d["next_base"][s:e] = fn(d["next_proprio"][s:e], d["next_vla"][s:e], d["next_z"][s:e])

    # ---- persistence -------------------------------------------------------------------------
    def flush(self) -> Path | None:
        """Write the rows added since the last flush as one atomic shard; returns its path."""
        if self.root is None or self._flushed == self._n:
            return None
        rows = {k: v[self._flushed : self._n] for k, v in self._data.items()}
        path = self.root / f"shard_{self._next_shard:06d}.npz"
        buf = io.BytesIO()
        np.savez(buf, **rows)
        _atomic_write_bytes(path, lambda f: f.write(buf.getvalue()))
        self._flushed = self._n
        self._next_shard += 1
        return path

    @classmethod
    def open(cls, root: str | Path, expect: ReplaySpec | None = None) -> ChunkReplayBuffer:
        """Reload a persisted buffer (all complete shards); ``expect`` checks shapes and normaliser."""
        root = Path(root)
        meta_path = root / "meta.json"
        if not meta_path.exists():
            raise ReplayError(f"{meta_path} not found: is {root} a replay buffer directory?")
        meta = json.loads(meta_path.read_text())
        if meta.pop("format", None) != FORMAT:
            raise ReplayError(f"{meta_path}: format is not {FORMAT!r}")
        spec = ReplaySpec(**meta)
        if expect is not None and expect != spec:
            raise ReplayError(f"{root}: stored spec {spec} differs from the expected {expect}")
        buf = cls(spec, root, _load=True)
        shards = sorted(root.glob("shard_*.npz"))
        for sp in shards:
            with np.load(sp) as z:
                buf.add({k: z[k] for k in z.files})
        buf._flushed = buf._n
        buf._next_shard = int(shards[-1].stem.split("_")[1]) + 1 if shards else 0
        return buf


def to_torch(arrays: dict[str, np.ndarray], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}


class MixedSampler:
    """RLPD batches: exactly ``batch_size/2`` offline rows and ``batch_size/2`` online rows.

    The returned batch carries ``is_online`` [B] bool (first half false, second half true), and with
    ``returns_gamma`` each row's Monte-Carlo ``returns`` [B, k] (:meth:`ChunkReplayBuffer.returns`).
    """

    def __init__(
        self,
        offline: ChunkReplayBuffer,
        online: ChunkReplayBuffer,
        batch_size: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
        returns_gamma: float | None = None,
    ):
        if batch_size < 2 or batch_size % 2:
            raise ValueError(
                f"MixedSampler.batch_size must be an even number >= 2 (1:1 split), got {batch_size}"
            )
        if offline.spec.normalizer_version != online.spec.normalizer_version:
            raise ReplayError(
                "offline and online buffers use different normalisers: "
                f"{offline.spec.normalizer_version!r} vs {online.spec.normalizer_version!r}"
            )
        if None not in (offline.spec.reward, online.spec.reward) and offline.spec.reward != online.spec.reward:
            raise ReplayError(
                "offline and online buffers hold rewards of different definitions: "
                f"{offline.spec.reward} vs {online.spec.reward}"
            )
        self.offline, self.online, self.batch_size = offline, online, batch_size
        self.rng = np.random.default_rng(seed)
        self.device = device
        if returns_gamma is not None and not 0.0 < returns_gamma <= 1.0:
            raise ValueError(f"MixedSampler.returns_gamma must be in (0, 1], got {returns_gamma}")
        self.returns_gamma = returns_gamma

    def sample_arrays(self) -> dict[str, np.ndarray]:
        h = self.batch_size // 2
        ia, ib = self.offline.sample_indices(h, self.rng), self.online.sample_indices(h, self.rng)
        a, b = self.offline.arrays(ia), self.online.arrays(ib)
        for d in (a, b):  # the stored fields: only through ChunkReplayBuffer.returns (stored or rebuilt)
            del d["returns"], d["returns_gamma"]
        if self.returns_gamma is not None:
            a["returns"] = self.offline.returns(self.returns_gamma)[ia]
            b["returns"] = self.online.returns(self.returns_gamma)[ib]
        out = {k: np.concatenate([a[k], b[k]]) for k in a}
        out["is_online"] = np.concatenate([np.zeros(h, bool), np.ones(h, bool)])
        return out

    def sample(self) -> dict[str, torch.Tensor]:
        return to_torch(self.sample_arrays(), self.device)


def chunk_transitions(
    actions: np.ndarray,
    rewards: np.ndarray,
    dones: np.ndarray,
    starts: np.ndarray,
    z: np.ndarray,
    proprio: np.ndarray,
    vla: np.ndarray,
    chunk_size: int,
    base: np.ndarray | None = None,
    is_intervention: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    episode: int = -1,
    final: dict[str, np.ndarray] | None = None,
    valid: np.ndarray | None = None,
    gamma: float | None = None,
) -> dict[str, np.ndarray]:
    """Chunk transitions of one episode from its per-step arrays (Eq. 1 data layout).

    ``actions`` [T, A] (normalised, executed), ``rewards``/``dones`` [T]; ``starts`` [n] the
    replanning steps, with ``z`` [n, Z], ``proprio`` [n, S], ``vla`` (and ``base``) [n, k, A] at each.
    The next observation of the chunk at t is the replanning step t + k when there is one.
    The validity mask keeps steps inside the episode up to and including the first terminal
    (Eq. 3); padding past the episode end has ``done = False`` (as offline).

    Truncation (module docstring): a chunk that reaches the episode end without a terminal bootstraps
    from ``final`` (``z`` [Z], ``proprio`` [S], ``vla`` [k, A], optional ``base`` [k, A]: the observation
    after the last executed step, or the best stand-in the caller has), else from the last replanning
    observation; ``next_valid`` is True there. A chunk inside the episode whose step t + k is no
    replanning step has no next observation: ``next_valid`` False and its last step is masked out.
    ``valid`` [T] (episode files, :func:`bora_policy.common.episodes.step_validity`): steps whose executed
    action was not recorded (a gap) are masked out too.
    ``gamma``: the rows also carry ``returns`` [n, k] (:func:`chunk_returns` of the FULL ``rewards``/``dones``, so
    steps no row covers count; 0 past the episode end) and ``returns_gamma`` (module docstring).
    """
    from bora_trainer.algorithms.losses import validity_mask

    k = chunk_size
    T = len(actions)
    starts = np.asarray(starts, dtype=np.int64)
    n = len(starts)
    for name, arr in (("z", z), ("proprio", proprio), ("vla", vla)):
        if len(arr) != n:
            raise ReplayError(f"chunk_transitions: {name} has {len(arr)} rows for {n} starts")
    if np.any(np.diff(starts) <= 0) or (n and (starts[0] < 0 or starts[-1] >= T)):
        raise ReplayError(f"chunk_transitions: starts must be increasing steps in [0, {T})")
    base = vla if base is None else base
    is_int = np.zeros(T, bool) if is_intervention is None else np.asarray(is_intervention, bool)
    beta = np.zeros(T, np.float32) if beta is None else np.asarray(beta, np.float32)
    A = actions.shape[1]
    idx = starts[:, None] + np.arange(k)[None]  # [n, k]
    inside = idx < T
    cl = np.minimum(idx, T - 1)
    act = np.where(inside[..., None], actions[cl], 0.0).astype(np.float32)
    rew = np.where(inside, rewards[cl], 0.0).astype(np.float32)
    don = np.where(inside, np.asarray(dones, bool)[cl], False)
    mask = validity_mask(torch.from_numpy(don), torch.from_numpy(inside)).numpy().astype(bool)
    terminated = (don & mask).any(axis=1)
    pos = {int(s): j for j, s in enumerate(starts)}
    nxt = np.array([pos.get(int(s) + k, -1) for s in starts], dtype=np.int64)
    # truncated: the chunk reaches the episode end and no terminal cut it -> bootstrap from the final state
    truncated = (starts + k >= T) & ~terminated & (nxt < 0)
    next_valid = (nxt >= 0) | truncated
    # a gap inside the episode: no observation to bootstrap the last step from, drop it
    needs_next = ~terminated & ~next_valid
    mask[needs_next, k - 1] = False
    if valid is not None:
        mask &= np.asarray(valid, bool)[cl]
    if final is None:
        last = int(np.argmax(starts)) if n else 0
        fin = {"z": z[last], "proprio": proprio[last], "vla": vla[last], "base": base[last]}
        # the chunk that starts at that observation and ends exactly at the episode end would bootstrap its
        # last step from its own start (v(z_t, 0) for the state k steps later): no observation after it, so its
        # last step is dropped as a gap's is (a partial last chunk needs none: its last real step bootstraps
        # from v(z_t, i + 1) of Eq. 1)
        own = truncated & (starts == starts[last]) & (starts + k == T) if n else np.zeros(0, bool)
        next_valid &= ~own
        truncated &= ~own
        mask[own, k - 1] = False
    else:
        missing = sorted({"z", "proprio", "vla"} - set(final))
        if missing:
            raise ReplayError(f"chunk_transitions: final is missing field(s) {missing}")
        fin = {"base": final["vla"], **final}

    def next_of(a: np.ndarray, key: str) -> np.ndarray:
        j = np.where(nxt >= 0, nxt, 0)
        out = np.where((nxt >= 0).reshape(-1, *([1] * (a.ndim - 1))), a[j], 0).astype(np.float32)
        f = np.asarray(fin[key], np.float32)
        if f.shape != a.shape[1:]:
            raise ReplayError(f"chunk_transitions: final[{key!r}] has shape {f.shape}, expected {a.shape[1:]}")
        out[truncated] = f
        return out

    rows = {
        "z": z.astype(np.float32),
        "proprio": proprio.astype(np.float32),
        "vla": vla.astype(np.float32),
        "base": base.astype(np.float32),
        "action": act.reshape(n, k, A),
        "reward": rew,
        "done": don,
        "mask": mask,
        "is_intervention": np.where(inside, is_int[cl], False),
        "beta": np.where(inside, beta[cl], 0.0).astype(np.float32),
        "next_z": next_of(z, "z"),
        "next_proprio": next_of(proprio, "proprio"),
        "next_vla": next_of(vla, "vla"),
        "next_base": next_of(base, "base"),
        "next_valid": next_valid,
        "n_steps": inside.sum(axis=1).astype(np.int64),
        "episode": np.full(n, episode, np.int64),
        "step": starts,
    }
    if gamma is not None:
        rows["returns"] = chunk_returns(rewards, dones, starts, k, gamma)
        rows["returns_gamma"] = np.full(n, gamma, np.float64)
    return rows


def episode_takeovers(rows: dict[str, np.ndarray], num_steps: int) -> np.ndarray:
    """Per-step ``is_intervention`` [num_steps] of one episode rebuilt from its chunk rows (``step``,
    ``is_intervention`` [n, k], ``n_steps``): the rows' chunks cover the episode, padding is never a
    takeover. Used to tell an online objective about an episode already in the buffer (resume, a new round)."""
    out = np.zeros(int(num_steps), bool)
    k = rows["is_intervention"].shape[1]
    for s, flags, n in zip(rows["step"], rows["is_intervention"], rows.get("n_steps", np.full(len(rows["step"]), k))):
        e = min(int(s) + int(n), len(out))
        if e > s:
            out[int(s) : e] |= np.asarray(flags[: e - int(s)], bool)
    return out
