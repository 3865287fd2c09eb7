"""Chunk samples for offline training: episodes (docs/interfaces.md) -> (o_t, A_t, r, d, o_{t+k}, masks).

For a start step ``t`` of an episode of length ``T`` a sample holds
- ``images`` [n_cam, 3, H, W] uint8 and ``state`` [state_dim] of observation ``t``, the ``instruction``;
- ``actions`` [k, A]: the EXECUTED chunk ``a[t:t+k]`` (physical units); past the episode end the last
  action is repeated and ``pad_mask`` is 0 there;
- ``rewards`` [k] (0 in padding), ``dones`` [k] (False in padding);
- ``returns`` [k]: the Monte-Carlo return-to-go of each step, ``G_j = sum_{l >= j} gamma^(l - j) r_l`` to the
  episode's recorded end (``ChunkDatasetConfig.gamma``; 0 in padding). An episode cut by its time limit is
  summed to that limit without a bootstrap: the return of the time-limited task, whose outcome it
  carries (``OfflineConfig.critic_mc_weight``);
- ``next_images`` / ``next_state`` of observation ``t+k`` (the input of ``v(z_{t+1}, 0)`` in Eq. 1). When
  ``t+k >= T`` the last observation ``T-1`` stands in and ``next_valid`` is False: the bootstrap there is
  either cut by a terminal inside the chunk or lands on a padded (masked) step, except when the chunk
  ends exactly at a non-terminal episode end (truncation), where the last observation is the proxy;
- ``mask`` [k]: the validity mask of Eq. (3)-(4), steps up to and including the first terminal, times
  ``pad_mask``;
- ``bc_mask`` [k]: the steps that imitation (BC) may use: ``mask``, except in a FAILED autonomous rollout
  (episode info ``source: "policy"``, ``success: false``, as ``bora eval --record`` writes them), where
  it is 0: the critic and the PPO term learn from the policy's failures, BC never imitates them (ours).

Gaps (episode arrays ``valid`` / ``obs_valid``, :mod:`bora_policy.common.episodes`): no sample starts at a
step whose executed action or observation was not recorded; a step without a recorded action has
``mask`` 0; when observation ``t+k`` was not recorded, ``next_valid`` is False and the chunk's last step
is masked out (no bootstrap from a filler observation), as in :func:`bora_trainer.data.replay.chunk_transitions`;
``next_missing`` flags that case (observation ``t+k`` inside the episode, not recorded, no terminal in the chunk),
which ``next_valid`` alone does not tell from a chunk ending at the episode's end: a chunk-level TD target (ALOE)
leaves such a row out.

Images are kept as uint8 in memory (``cache="all"``) when the dataset fits in ``max_cache_gb``, otherwise
episodes are read on demand with a small per-process LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from bora_policy.common.episodes import EpisodeFormatError, episode_ids, read_episode, read_meta, step_validity
from bora_policy.common.rewards import returns_to_go


@dataclass
class ChunkDatasetConfig:
    """How episodes are cut into chunk samples. ``k`` = chunk size (Table 3: 32)."""

    k: int = 32
    stride: int = 1  # distance between consecutive start steps t within an episode
    gamma: float = 0.99  # discount of the samples' Monte-Carlo ``returns`` (OfflineConfig sets it from its gamma)
    cache: Literal["auto", "all", "none"] = "auto"
    max_cache_gb: float = 4.0  # "auto" caches all images when the estimate fits
    lru_episodes: int = 8  # episodes kept per process when not caching everything
    # expected shapes (None: accept the dataset's); a mismatch is an error naming the field
    image_size: list[int] | None = None  # [H, W]
    camera_names: list[str] | None = None
    action_dim: int | None = None
    state_dim: int | None = None


def is_failed_rollout(info: dict) -> bool:
    """An autonomous rollout of a policy (``source: "policy"``) that did not succeed: critic data, never BC."""
    return info.get("source") == "policy" and not bool(info.get("success", False))


class ChunkDataset(Dataset):
    """Torch dataset of chunk samples from a BORA episode directory (see module docstring)."""

    def __init__(
        self, root: str | Path, cfg: ChunkDatasetConfig | None = None, episodes: list[int] | None = None
    ):
        self.root = Path(root)
        self.cfg = cfg = cfg or ChunkDatasetConfig()
        if cfg.k < 1:
            raise ValueError(f"ChunkDatasetConfig.k must be >= 1, got {cfg.k}")
        if cfg.stride < 1:
            raise ValueError(f"ChunkDatasetConfig.stride must be >= 1, got {cfg.stride}")
        if not 0.0 <= cfg.gamma <= 1.0:
            raise ValueError(f"ChunkDatasetConfig.gamma must be in [0, 1], got {cfg.gamma}")
        self.meta = meta = read_meta(self.root)
        self._check_meta()
        ids = episode_ids(self.root) if episodes is None else list(episodes)
        if not ids:
            raise EpisodeFormatError(f"{self.root}: no complete episodes under {self.root / 'episodes'}")
        self.episode_ids = ids
        # low-dimensional arrays of every episode stay in memory (small); images are cached or lazy
        self._low: dict[int, dict[str, np.ndarray]] = {}
        self._info: dict[int, dict] = {}
        self._bc_weight: dict[int, float] = {}
        for eid in ids:
            arrays, info = read_episode(self.root, eid, load_images=False)
            self._check_episode(eid, arrays)
            self._low[eid] = {key: arrays[key] for key in ("state", "action", "reward", "done")}
            self._low[eid]["valid"], self._low[eid]["obs_valid"] = step_validity(arrays)
            self._low[eid]["return"] = returns_to_go(arrays["reward"], arrays["done"], cfg.gamma)
            self._info[eid] = info
            self._bc_weight[eid] = 0.0 if is_failed_rollout(info) else 1.0
        self.index: list[tuple[int, int]] = [
            (eid, t)
            for eid in ids
            for t in range(0, len(self._low[eid]["action"]), cfg.stride)
            if self._low[eid]["valid"][t] and self._low[eid]["obs_valid"][t]
        ]
        n_cam, (H, W) = len(meta.camera_names), meta.image_size
        total_steps = sum(len(v["action"]) for v in self._low.values())
        self.image_bytes = total_steps * n_cam * H * W * 3
        self.cache_all = cfg.cache == "all" or (
            cfg.cache == "auto" and self.image_bytes <= cfg.max_cache_gb * 2**30
        )
        self._images: dict[int, np.ndarray] = {}
        self._lru: OrderedDict[int, np.ndarray] = OrderedDict()
        if self.cache_all:
            for eid in ids:
                self._images[eid] = self._load_color(eid)

    # ---------------------------------------------------------------- checks
    def _check_meta(self) -> None:
        c, m = self.cfg, self.meta
        if c.image_size is not None and list(c.image_size) != list(m.image_size):
            raise EpisodeFormatError(
                f"image_size: config expects {list(c.image_size)}, dataset {self.root} has {m.image_size}"
            )
        if c.camera_names is not None and list(c.camera_names) != list(m.camera_names):
            raise EpisodeFormatError(
                f"camera_names: config expects {c.camera_names}, dataset {self.root} has {m.camera_names}"
            )
        if c.action_dim is not None and c.action_dim != m.action_dim:
            raise EpisodeFormatError(
                f"action_dim: config expects {c.action_dim}, dataset {self.root} has {m.action_dim}"
            )
        if c.state_dim is not None and c.state_dim != m.state_dim:
            raise EpisodeFormatError(
                f"state_dim: config expects {c.state_dim}, dataset {self.root} has {m.state_dim}"
            )

    def _check_episode(self, eid: int, arrays: dict[str, np.ndarray]) -> None:
        m = self.meta
        T = len(arrays["action"])
        want = {"state": (T, m.state_dim), "action": (T, m.action_dim), "reward": (T,), "done": (T,)}
        for key, shape in want.items():
            if key not in arrays:
                raise EpisodeFormatError(f"episode {eid}: missing array {key!r}")
            if tuple(arrays[key].shape) != shape:
                raise EpisodeFormatError(
                    f"episode {eid}: array {key!r} has shape {tuple(arrays[key].shape)}, expected {shape}"
                )
        if T == 0:
            raise EpisodeFormatError(f"episode {eid}: empty (0 steps)")

    def _load_color(self, eid: int) -> np.ndarray:
        arrays, _ = read_episode(self.root, eid, load_images=True)
        color = arrays["color"]
        n_cam, (H, W) = len(self.meta.camera_names), self.meta.image_size
        want = (len(self._low[eid]["action"]), n_cam, H, W, 3)
        if tuple(color.shape) != want:
            raise EpisodeFormatError(
                f"episode {eid}: array 'color' has shape {tuple(color.shape)}, expected {want}"
            )
        return color

    def _color(self, eid: int) -> np.ndarray:
        if self.cache_all:
            return self._images[eid]
        if eid in self._lru:
            self._lru.move_to_end(eid)
            return self._lru[eid]
        color = self._load_color(eid)
        self._lru[eid] = color
        while len(self._lru) > max(1, self.cfg.lru_episodes):
            self._lru.popitem(last=False)
        return color

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.index)

    def instruction(self, eid: int) -> str:
        info = self._info[eid]
        return str(info.get("instruction") or info.get("task") or "")

    def __getitem__(self, idx: int) -> dict:
        eid, t = self.index[idx]
        k = self.cfg.k
        low = self._low[eid]
        T = len(low["action"])
        steps = np.arange(t, t + k)
        pad = steps < T
        clamped = np.minimum(steps, T - 1)
        actions = low["action"][clamped]
        rewards = np.where(pad, low["reward"][clamped], 0.0).astype(np.float32)
        returns = np.where(pad, low["return"][clamped], 0.0).astype(np.float32)
        dones = np.where(pad, low["done"][clamped], False)
        t_next = min(t + k, T - 1)
        color = self._color(eid)
        dones_t = torch.from_numpy(dones.astype(np.bool_))
        pad_t = torch.from_numpy(pad.astype(np.float32))
        before = torch.cumsum(dones_t.float(), 0) - dones_t.float()
        mask = (before == 0).float() * pad_t * torch.from_numpy(low["valid"][clamped].astype(np.float32))
        next_valid = t + k < T and bool(low["obs_valid"][t + k])
        next_missing = t + k < T and not next_valid and not dones.any()
        if next_missing:
            mask[k - 1] = 0.0  # its bootstrap would need the unrecorded observation t + k
        return {
            "images": torch.from_numpy(np.ascontiguousarray(color[t].transpose(0, 3, 1, 2))),
            "state": torch.from_numpy(low["state"][t].astype(np.float32)),
            "instruction": self.instruction(eid),
            "actions": torch.from_numpy(actions.astype(np.float32)),
            "rewards": torch.from_numpy(rewards),
            "returns": torch.from_numpy(returns),
            "dones": dones_t,
            "pad_mask": pad_t,
            "mask": mask,
            "bc_mask": mask * self._bc_weight[eid],
            "next_images": torch.from_numpy(np.ascontiguousarray(color[t_next].transpose(0, 3, 1, 2))),
            "next_state": torch.from_numpy(low["state"][t_next].astype(np.float32)),
            "next_valid": torch.tensor(next_valid),
            "next_missing": torch.tensor(next_missing),
            "episode_id": torch.tensor(eid),
            "t": torch.tensor(t),
        }

    # ---------------------------------------------------------------- statistics
    def state_action_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All states [N, state_dim] and actions [N, A] (for the normaliser's statistics)."""
        states = np.concatenate([v["state"] for v in self._low.values()])
        actions = np.concatenate([v["action"] for v in self._low.values()])
        return states, actions


class MultiChunkDataset(ConcatDataset):
    """Chunk samples of several episode directories (``OfflineConfig.rollout_data``: the demonstrations
    plus recorded autonomous rollouts), read as one dataset. Every directory must have the same cameras,
    image size and state/action dimensions (an error names the field and both directories); ``meta`` is
    the first directory's. A sample's ``episode_id`` is local to its directory, ``source_index`` says which."""

    def __init__(self, roots: list[str | Path], cfg: ChunkDatasetConfig | None = None,
                 episodes: list[int] | None = None):
        if not roots:
            raise ValueError("MultiChunkDataset: expected at least one episode directory")
        parts = [ChunkDataset(roots[0], cfg, episodes=episodes)]
        for root in roots[1:]:
            parts.append(ChunkDataset(root, cfg))
        first = parts[0]
        for part in parts[1:]:
            for name in ("camera_names", "image_size", "state_dim", "action_dim"):
                a, b = getattr(first.meta, name), getattr(part.meta, name)
                if list(np.atleast_1d(a)) != list(np.atleast_1d(b)):
                    raise EpisodeFormatError(
                        f"{name}: {part.root} has {b}, expected {a} (as {first.root}); rollouts must be "
                        "recorded with the demonstrations' cameras, image size and robot"
                    )
            a, b = first.meta.reward, part.meta.reward
            if a is not None and b is not None and a != b:
                raise EpisodeFormatError(
                    f"reward: {part.root} has {b}, expected {a} (as {first.root}); the critic would learn two "
                    "reward definitions at once"
                )
        super().__init__(parts)
        self.parts = parts
        self.meta = first.meta
        self.root = first.root

    def __getitem__(self, idx: int) -> dict:
        import bisect

        part = bisect.bisect_right(self.cumulative_sizes, idx)
        sample = super().__getitem__(idx)
        sample["source_index"] = torch.tensor(part)
        return sample

    def state_action_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        arrays = [p.state_action_arrays() for p in self.parts]
        return np.concatenate([a[0] for a in arrays]), np.concatenate([a[1] for a in arrays])


def write_synthetic_dataset(
    root: str | Path,
    n_episodes: int = 4,
    T: int = 20,
    image_size=(16, 16),
    n_cam: int = 1,
    n_hand: int = 2,
    seed: int = 0,
    fail_every: int = 3,
) -> Path:
    """Write a tiny, deterministic episode dataset (tests and CPU smoke runs).

    The state moves towards a per-episode goal; the executed action is the next state (a position
    target), the image shows the goal as a bright pixel block, the reward is -0.01 per step and +1 on
    the terminal success step. Every ``fail_every``-th episode times out (no terminal, no bonus).
    """
    from bora_policy.common.episodes import DatasetMeta, write_episode

    rng = np.random.default_rng(seed)
    H, W = image_size
    dim = 7 + n_hand
    meta = DatasetMeta(
        fps=10.0,
        camera_names=[f"cam{i}" for i in range(n_cam)],
        image_size=[H, W],
        arm_joint_names=[f"arm{i}" for i in range(7)],
        hand_joint_names=[f"hand{i}" for i in range(n_hand)],
        tasks=["reach"],
    )
    for e in range(n_episodes):
        goal = rng.uniform(-1.0, 1.0, size=dim).astype(np.float32)
        state = np.zeros((T, dim), np.float32)
        s = rng.normal(0.0, 0.1, size=dim).astype(np.float32)
        for t in range(T):
            state[t] = s
            s = s + 0.25 * (goal - s)
        action = np.concatenate([state[1:], s[None]]).astype(np.float32)
        color = np.zeros((T, n_cam, H, W, 3), np.uint8)
        gy, gx = int((goal[0] + 1) / 2 * (H - 4)), int((goal[1] + 1) / 2 * (W - 4))
        color[:, :, gy : gy + 4, gx : gx + 4, :] = 255
        for t in range(T):  # a moving marker for the current state
            sy, sx = (
                int(np.clip((state[t, 0] + 1) / 2, 0, 1) * (H - 1)),
                int(np.clip((state[t, 1] + 1) / 2, 0, 1) * (W - 1)),
            )
            color[t, :, sy, sx, 0] = 128
        success = (e % fail_every) != fail_every - 1
        reward = np.full(T, -0.01, np.float32)
        done = np.zeros(T, bool)
        if success:
            reward[-1] += 1.0
            done[-1] = True
        arrays = {
            "color": color,
            "depth": np.ones((T, n_cam, H, W), np.float32),
            "state": state,
            "action": action,
            "is_intervention": np.zeros(T, bool),
            "beta": np.zeros(T, np.float32),
            "reward": reward,
            "done": done,
        }
        info = {
            "task": "reach",
            "instruction": "reach the white square",
            "object_set": "synthetic",
            "seed": seed,
            "success": bool(success),
            "outcome": "success" if success else "timeout",
            "interventions": [],
            "source": "expert",
            "quality": {},
        }
        write_episode(root, e, arrays, info, meta)
    return Path(root)
