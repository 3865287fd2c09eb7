"""Step-by-step execution of action chunks at the command rate, with no jumps at chunk boundaries.

A chunk ``[k, A]`` computed from the observation stamped ``t_obs`` describes targets for the times
``t_obs + i / chunk_hz`` (i = 0 .. k-1). At a command tick at time ``t`` the executor emits the
chunk linearly interpolated at ``u = (t - t_obs) * chunk_hz`` (clamped to ``[0, k-1]``; past the
end it holds the last row). This compensates inference latency: the rows whose time has passed
while the VLA was running are skipped, as in real-time chunking schemes.

When a new chunk arrives, the command cross-fades from the previous source to the new chunk over
``blend_steps`` ticks: ``cmd(t) = (1 - w) * old(t) + w * new(t)``, ``w = min(1, (t - t_prev) /
((blend_steps + 1) * dt))`` where ``t_prev`` is the last tick before the switch and ``dt`` the
command period, so the first tick after a switch uses ``w = 1 / (blend_steps + 1)``. A chunk that
arrives during a cross-fade blends from the cross-fade itself (sources nest), so the command stays
continuous. ``blend_steps = 0`` switches hard. An optional ``max_delta`` clips each joint's
change per tick (rad), a last guard against steps the arbiter would otherwise have to hold.

``max_velocity`` (rad/s per joint, the arbiter's limits; ours): the cross-fade lasts at least
``2 * |gap_j| / v_j`` for the gap ``gap = new(t) - old(t)`` at the switch, so closing the gap takes at
most half of each joint's speed budget and the chunk's own motion the other half; then every tick's
change is clipped to ``v_j / control_hz``, so no step at a boundary exceeds what the arbiter allows.
This is the output-space form of real-time chunking's soft-masked overlap (Black et al. 2025, "Real-Time
Execution of Action Chunking Flow Policies", Sec. 4: the new chunk is pulled toward the executing one over
the overlap); the guided inpainting inside the flow sampler is not done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bora_policy.common.graph_params import graph_default


def require_finite(x, what: str, raise_: bool = True) -> bool:
    """True when every value of ``x`` is finite; otherwise a ValueError naming ``what`` (or False with ``raise_``
    off). The policy node checks a measured state before holding it and a chunk before using it: one NaN held or
    adopted made every later command NaN, or stopped planning, for the rest of the episode (found in review)."""
    if np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
        return True
    if raise_:
        raise ValueError(f"{what} has NaN or inf")
    return False


@dataclass
class ChunkExecutorConfig:
    """Command timing of the policy node.

    control_hz: command (control timer) rate. chunk_hz: the rate the chunk rows were trained at
    (the dataset fps). blend_steps: ticks of cross-fade at a chunk boundary. max_delta: per-tick
    change limit per joint in rad (0 = off).
    """

    control_hz: float = field(default_factory=lambda: graph_default("control_hz"))  # config/graph.yaml
    chunk_hz: float = 10.0
    blend_steps: int = 2
    max_delta: float = 0.0
    # per-joint speed limit (rad/s), the last value repeated for the remaining joints; () = off
    max_velocity: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.max_velocity = tuple(float(v) for v in self.max_velocity)
        if any(not v > 0 for v in self.max_velocity):
            raise ValueError(
                f"ChunkExecutorConfig.max_velocity must be > 0 rad/s per joint (empty = off), got {self.max_velocity}"
            )
        if not self.control_hz > 0 or not self.chunk_hz > 0:
            raise ValueError(
                f"ChunkExecutorConfig: control_hz and chunk_hz must be > 0, got "
                f"{self.control_hz}, {self.chunk_hz}"
            )
        if self.blend_steps < 0:
            raise ValueError(f"ChunkExecutorConfig.blend_steps must be >= 0, got {self.blend_steps}")
        if self.max_delta < 0:
            raise ValueError(f"ChunkExecutorConfig.max_delta must be >= 0 (0 = off), got {self.max_delta}")


class _Source:
    def value(self, t: float) -> np.ndarray:
        raise NotImplementedError

    def index(self, t: float) -> int:
        return 0

    def done(self, t: float) -> bool:
        return True


class _Constant(_Source):
    def __init__(self, q: np.ndarray):
        self.q = np.asarray(q, dtype=np.float64).copy()

    def value(self, t: float) -> np.ndarray:
        return self.q


class _Chunk(_Source):
    def __init__(self, chunk: np.ndarray, t_obs: float, chunk_hz: float, chunk_id: int):
        self.chunk, self.t_obs, self.hz, self.id = chunk, float(t_obs), float(chunk_hz), chunk_id

    def _u(self, t: float) -> float:
        return float(np.clip((t - self.t_obs) * self.hz, 0.0, self.chunk.shape[0] - 1))

    def value(self, t: float) -> np.ndarray:
        u = self._u(t)
        i0 = int(np.floor(u))
        i1 = min(i0 + 1, self.chunk.shape[0] - 1)
        f = u - i0
        return (1.0 - f) * self.chunk[i0] + f * self.chunk[i1]

    def index(self, t: float) -> int:
        return int(round(self._u(t)))

    def done(self, t: float) -> bool:
        return (t - self.t_obs) * self.hz >= self.chunk.shape[0] - 1


class _Blend(_Source):
    def __init__(self, old: _Source, new: _Source, t0: float, duration: float):
        self.old, self.new, self.t0, self.duration = old, new, t0, duration

    def weight(self, t: float) -> float:
        return 1.0 if self.duration <= 0 else float(np.clip((t - self.t0) / self.duration, 0.0, 1.0))

    def value(self, t: float) -> np.ndarray:
        w = self.weight(t)
        if w >= 1.0:
            return self.new.value(t)
        return (1.0 - w) * self.old.value(t) + w * self.new.value(t)

    def index(self, t: float) -> int:
        return self.new.index(t)

    def done(self, t: float) -> bool:
        return self.new.done(t)


@dataclass
class Command:
    """One command tick: position targets, the index in the executing chunk and its id (-1: hold)."""

    position: np.ndarray
    chunk_index: int
    chunk_id: int
    blend_weight: float


class ChunkExecutor:
    """Turns a stream of chunks into per-tick commands (see module docstring)."""

    def __init__(self, cfg: ChunkExecutorConfig | None = None):
        self.cfg = cfg or ChunkExecutorConfig()
        self.dt = 1.0 / self.cfg.control_hz
        self._src: _Source | None = None
        self._chunk_id = -1
        self._t_last: float | None = None
        self._last: np.ndarray | None = None
        self.action_dim: int | None = None

    # ------------------------------------------------------------------ inputs
    def reset(self) -> None:
        """Forget every source (a new episode: nothing is blended from the previous one's commands);
        ``has_command`` is False until the next ``hold`` or ``set_chunk``."""
        self._src, self._t_last, self._last = None, None, None
        self._src_is_hold = False

    def hold(self, position, t: float | None = None) -> None:
        """Hold ``position`` (e.g. the measured joint state before the first chunk), blended in."""
        q = self._check(np.asarray(position, dtype=np.float64).reshape(-1), "hold position")
        require_finite(q, "ChunkExecutor.hold: the position")
        self._switch(_Constant(q), t, chunk_id=-1)

    def set_chunk(self, chunk, t_obs: float, t_now: float | None = None) -> int:
        """Start executing ``chunk [k, A]`` computed from the observation at ``t_obs``; returns its id."""
        c = np.asarray(chunk, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] < 1:
            raise ValueError(f"ChunkExecutor.set_chunk: chunk must be [k, action_dim], got {c.shape}")
        self._check(c[0], "chunk row")
        if not np.all(np.isfinite(c)):
            raise ValueError("ChunkExecutor.set_chunk: chunk contains NaN or inf")
        cid = self._chunk_id + 1 if self._chunk_id >= 0 else 0
        self._switch(_Chunk(c.copy(), t_obs, self.cfg.chunk_hz, cid), t_now, chunk_id=cid)
        return cid

    def _check(self, row: np.ndarray, what: str) -> np.ndarray:
        if self.action_dim is None:
            self.action_dim = int(row.shape[0])
        elif row.shape[0] != self.action_dim:
            raise ValueError(
                f"ChunkExecutor: {what} has {row.shape[0]} dims, expected action_dim={self.action_dim}"
            )
        return row

    def velocity_limit(self) -> np.ndarray | None:
        """Per-joint speed limit (rad/s) over ``action_dim`` joints, or None when off."""
        v = self.cfg.max_velocity
        if not v or self.action_dim is None:
            return None
        return np.asarray([v[min(i, len(v) - 1)] for i in range(self.action_dim)], dtype=np.float64)

    def _switch(self, new: _Source, t_now: float | None, chunk_id: int) -> None:
        vmax = self.velocity_limit()
        if self._src is None or (self.cfg.blend_steps == 0 and vmax is None):
            self._src = new
        else:
            t0 = self._t_last if self._t_last is not None else (t_now if t_now is not None else 0.0)
            duration = (self.cfg.blend_steps + 1) * self.dt if self.cfg.blend_steps else 0.0
            if vmax is not None:  # long enough to close the gap at half the speed budget (docstring)
                gap = np.abs(new.value(t0) - self._src.value(t0))
                duration = max(duration, float(np.max(2.0 * gap / vmax)))
            self._src = _Blend(self._src, new, t0, duration)
        self._chunk_id = max(self._chunk_id, chunk_id) if chunk_id >= 0 else self._chunk_id
        self._src_is_hold = chunk_id < 0

    # ------------------------------------------------------------------ output
    @property
    def has_command(self) -> bool:
        return self._src is not None

    def chunk_done(self, t: float) -> bool:
        """True when the executing chunk has reached its last row (or nothing is executing)."""
        return self._src is None or self._src.done(t)

    def step(self, t: float) -> Command | None:
        """The command for the tick at time ``t`` (None before any chunk or hold was given)."""
        if self._src is None:
            return None
        src = self._src
        q = src.value(t).copy()
        w = src.weight(t) if isinstance(src, _Blend) else 1.0
        if isinstance(src, _Blend) and w >= 1.0:
            self._src = src.new  # cross-fade finished: drop the old source
        if self.cfg.max_delta > 0 and self._last is not None:
            q = self._last + np.clip(q - self._last, -self.cfg.max_delta, self.cfg.max_delta)
        vmax = self.velocity_limit()
        if vmax is not None and self._last is not None:
            lim = vmax * self.dt
            q = self._last + np.clip(q - self._last, -lim, lim)
        self._last, self._t_last = q, float(t)
        hold = getattr(self, "_src_is_hold", False)
        return Command(q, -1 if hold else src.index(t), -1 if hold else self._chunk_id, w)
