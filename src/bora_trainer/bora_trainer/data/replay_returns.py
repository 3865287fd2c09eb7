"""Monte-Carlo returns of chunk replay rows (``ChunkReplayBuffer.returns``, ``OnlineConfig.critic_mc_weight``).

``G_j = sum_{l >= j} gamma^(l - j) r_l`` of each row's steps to its episode's recorded end, stopping at the first
terminal (a time limit is summed to, not bootstrapped past): :func:`bora_policy.common.rewards.returns_to_go`, the
offline chunk dataset's ``returns`` (:mod:`bora_trainer.data.chunks`). 0 past a row's ``n_steps``.

Two sources (found in review 2026-12-08): the rows' per-step rewards cover their episode only where the rows tile it.
A step that no row covers (``offline_stride`` > k; a ROS recording whose ActionChunk for a chunk start was dropped,
unusable or off the grid) used to count as reward 0, so every earlier step's return was wrong. Rows made from an
episode therefore store ``returns`` computed from the episode's FULL reward/done arrays (:func:`chunk_returns`) with
the ``returns_gamma`` they were computed with; rows without them (buffers of older versions, hand-made rows) and rows
stored with another gamma get the rebuild from the rows (exact only where the rows tile their episode).
"""

from __future__ import annotations

import numpy as np

from bora_policy.common.rewards import returns_to_go


def chunk_returns(
    rewards: np.ndarray, dones: np.ndarray, starts: np.ndarray, chunk_size: int, gamma: float
) -> np.ndarray:
    """Returns [n, k] (float32) of the chunks that start at ``starts`` [n] in one episode, from its full per-step
    ``rewards``/``dones`` [T]; 0 past the episode end."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"returns gamma must be in (0, 1], got {gamma}")
    g = returns_to_go(rewards, dones, gamma)
    T = len(g)
    starts = np.asarray(starts, np.int64)
    if starts.size and (starts.min() < 0 or starts.max() >= T):
        raise ValueError(f"chunk starts must be steps in [0, {T}) of the episode's reward array, got {starts}")
    idx = starts[:, None] + np.arange(int(chunk_size))[None]
    return np.where(idx < T, g[np.minimum(idx, max(T - 1, 0))], 0.0).astype(np.float32)


def stored_returns(rows: dict[str, np.ndarray], gamma: float) -> np.ndarray:
    """[n] bool: the rows whose stored ``returns`` were computed with ``gamma`` (none if the fields are absent)."""
    n = len(np.asarray(rows["reward"]))
    if "returns" not in rows or "returns_gamma" not in rows:
        return np.zeros(n, bool)
    return np.asarray(rows["returns_gamma"], np.float64) == float(gamma)


def episode_returns(rows: dict[str, np.ndarray], gamma: float) -> np.ndarray:
    """Monte-Carlo return-to-go of each row's steps [n, k] from chunk rows (``episode``, ``step``, ``n_steps``,
    ``reward``, ``done`` [n, k], optional ``returns`` [n, k] / ``returns_gamma`` [n]).

    A row whose stored ``returns`` were computed with ``gamma`` keeps them (exact: from the full episode). The others
    are rebuilt per episode: the rows' per-step rewards and terminals are laid out on the episode's steps (rows that
    overlap carry the same step's values; a step no row covers counts as 0), then ``returns_to_go``. Steps past a
    row's ``n_steps`` get 0. A row with ``episode < 0`` (no provenance) is its own episode."""
    rew, don = np.asarray(rows["reward"]), np.asarray(rows["done"], bool)
    n, k = rew.shape
    steps = np.asarray(rows["step"], np.int64)
    ns = np.asarray(rows.get("n_steps", np.full(n, k)), np.int64)
    eps = np.asarray(rows.get("episode", np.full(n, -1)), np.int64)
    have = stored_returns(rows, gamma)
    out = np.zeros((n, k), np.float32)
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(eps):
        if not have[i]:
            groups.setdefault(int(e) if e >= 0 else -1 - i, []).append(i)  # a row without provenance: alone
    if groups:  # the episodes of the rows to rebuild, with all their rows (stored ones included)
        for i, e in enumerate(eps):
            if have[i] and e >= 0 and int(e) in groups:
                groups[int(e)].append(i)
    for idx in groups.values():
        s0 = min(int(steps[i]) for i in idx)
        T = max(int(steps[i] + ns[i]) for i in idx) - s0
        r, d = np.zeros(T), np.zeros(T, bool)
        for i in idx:
            s, m = int(steps[i]) - s0, int(ns[i])
            r[s : s + m], d[s : s + m] = rew[i, :m], don[i, :m]
        g = returns_to_go(r, d, gamma)
        for i in idx:
            s, m = int(steps[i]) - s0, int(ns[i])
            out[i, :m] = g[s : s + m]
    if have.any():
        keep = have[:, None] & (np.arange(k)[None] < ns[:, None])
        out = np.where(keep, np.asarray(rows["returns"], np.float32), np.where(have[:, None], 0.0, out))
    return out.astype(np.float32)
