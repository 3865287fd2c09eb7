"""The frozen offline VLA of the online phase and D_offline (both environments).

:class:`FrozenVLA` gives z_t and A_VLA (the VLM + action expert of the offline run, never updated);
:func:`offline_buffer` computes them once for the offline dataset's chunk starts (D_offline of RLPD);
only the base chunk is recomputed when a round folds a residual. :func:`write_online_run_files` makes the
output directory an online run directory that ``bora eval --run`` reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from bora_policy.common.rewards import RewardConfig, compute_dones, compute_rewards
from bora_policy.runtime.processor import ActionProcessor, ObservationProcessor
from bora_trainer.algorithms.online_learner import check_normalizer_versions
from bora_trainer.config_io import load_config, to_dict
from bora_trainer.data.replay import ChunkReplayBuffer, ReplaySpec, chunk_transitions
from bora_trainer.online.config import OnlineRunConfig


class FrozenVLA:
    """The offline run's VLM + action expert, frozen: observation -> (z_t, A_VLA normalised, s_norm).

    ``critic`` is the critic the online stage inherits (:func:`bora_trainer.online.checkpoints.inherited_critic`:
    ``RUN/critic``, the refitted one after ``critic_refit_updates``, else the deployed checkpoint's), the one env
    sim's learner starts from and anchors its regulariser to, as env ros's does."""

    def __init__(self, run_dir: str | Path, device: torch.device, deterministic: bool = True):
        from bora_policy.models.critic import ChunkCritic
        from bora_policy.models.normalizer import Normalizer
        from bora_trainer.algorithms.bora.config import OfflineConfig
        from bora_trainer.offline.build import build_learner
        from bora_trainer.select import load_deployed

        run_dir = Path(run_dir)
        self.run_dir = run_dir
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"--offline-run {run_dir}: no config.yaml (not an offline run directory)")
        self.cfg = load_config(OfflineConfig, run_dir / "config.yaml")
        self.normalizer = Normalizer.load(run_dir / "normalizer.json")
        self.processor = ObservationProcessor(self.normalizer, device=device)  # runtime/processor.py
        ck = load_deployed(run_dir)  # RUN/policy's checkpoint (bora select), its weight average if any
        stored = ck["meta"].get("extra", {}).get("normalizer_version")
        check_normalizer_versions(run=self.normalizer.version, offline_checkpoint=stored)
        self.learner = build_learner(self.cfg, self.normalizer.state_dim, self.normalizer.action_dim, device)
        for name, mod in self.learner.modules_to_save().items():
            if name in ck["modules"]:
                mod.load_state_dict(ck["modules"][name])
        if self.learner.critic is None:
            raise ValueError(
                f"offline run {run_dir} (algo {self.cfg.algo!r}) has no critic to inherit: "
                "train it with --algo bora"
            )
        if isinstance(self.learner.critic, ChunkCritic):  # the critic the online stage inherits, as env ros's
            from bora_trainer.online.checkpoints import inherited_critic

            self.learner.critic.load_state_dict(inherited_critic(run_dir, ck)[0])  # RUN/critic (a refit), else ck's
        self.learner.eval().requires_grad_(False)
        self.device, self.deterministic = device, deterministic
        self.k = self.cfg.k
        self.step = ck["step"]

    @property
    def critic(self) -> torch.nn.Module:
        return self.learner.critic

    @property
    def z_dim(self) -> int:
        return int(self.learner.vlm.z_dim)

    @torch.no_grad()
    def act(self, color: np.ndarray, instructions: list[str], state: np.ndarray):
        """color [B, n_cam, H, W, 3] uint8, state [B, S] physical -> (z, A_VLA [B,k,A] normalised, s_norm)."""
        images = self.processor.images_float(color)  # [B, n_cam, 3, H, W] in [0, 1]
        state_n = self.processor.normalize_state_tensor(state)  # Algorithm 1 line 6
        z = self.learner.encode(images, list(instructions), state_n)
        prop = self.learner.expert_proprio(state_n)
        steps = self.cfg.model.expert_sample_steps or None
        if self.deterministic:
            chunk = self.learner.expert.mean_chunk(z, prop, steps)
        else:
            chunk = self.learner.expert.sample(z, prop, steps)
        return z.float(), chunk.float(), state_n.float()


def offline_buffer(
    vla: FrozenVLA,
    data: str | Path,
    spec: ReplaySpec,
    stride: int,
    reward: RewardConfig,
    max_episodes: int = 0,
    batch: int = 32,
    progress: bool = True,
    action_clip: float = 0.0,
    path: str | Path | None = None,
    episodes: str = "all",
    gamma: float | None = None,
) -> ChunkReplayBuffer:
    """Chunk transitions of the offline dataset with z_t and A_VLA from the frozen VLA (computed once);
    persisted as a ChunkReplayBuffer directory when ``path`` is given (the trainer node's D_offline). The rewards
    are computed with ``reward``, which the buffer's spec records (the online loop checks it). ``episodes``: which
    of the dataset's episodes enter (``OnlineRunConfig.offline_episodes``: offline/data.py ``EPISODE_FILTERS``),
    then at most ``max_episodes`` of them (0 = all). ``gamma``: the rows store the Monte-Carlo returns of their full
    episode (data/replay.py; an ``offline_stride`` > k leaves steps no row covers)."""
    from bora_policy.common.episodes import episode_ids, read_episode
    from bora_trainer.offline.data import select_episodes

    ids = episode_ids(data)
    if not ids:
        raise FileNotFoundError(f"--offline-data {data}: no episodes")
    ids = select_episodes(data, episodes, "OnlineRunConfig.offline_episodes") or ids
    if max_episodes:
        ids = ids[:max_episodes]
    buf = ChunkReplayBuffer(dataclasses.replace(spec, reward=dataclasses.asdict(reward)), path)  # recorded
    n = vla.normalizer
    it = ids
    if progress:
        from tqdm import tqdm

        it = tqdm(ids, desc="offline z/A_VLA", unit="ep")
    for eid in it:
        arrays, info = read_episode(data, eid)
        T = len(arrays["action"])
        starts = np.arange(0, T, stride)
        zs, vl, pr = [], [], []
        for s in range(0, len(starts), batch):
            st = starts[s : s + batch]
            z, a, p = vla.act(
                arrays["color"][st], [info.get("instruction", "")] * len(st), arrays["state"][st]
            )
            zs.append(z.cpu().numpy()), vl.append(a.cpu().numpy()), pr.append(p.cpu().numpy())
        outcome = info.get("outcome") or ("success" if info.get("success") else None)
        rew = compute_rewards(T, outcome, info.get("interventions"), reward)
        done = compute_dones(T, outcome)
        final = None
        if not done.any():  # truncated: the last observation stands in for o_T, as in the offline phase
            z, a, p = vla.act(arrays["color"][T - 1 :], [info.get("instruction", "")], arrays["state"][T - 1 :])
            final = {"z": z[0].cpu().numpy(), "proprio": p[0].cpu().numpy(), "vla": a[0].cpu().numpy()}
        buf.add(
            chunk_transitions(
                ActionProcessor(n).normalize(arrays["action"], action_clip),
                rew,
                done,
                starts,
                np.concatenate(zs),
                np.concatenate(pr),
                np.concatenate(vl),
                spec.chunk_size,
                is_intervention=arrays.get("is_intervention"),
                beta=arrays.get("beta"),
                episode=eid,
                final=final,
                valid=arrays.get("valid"),  # gaps of converted recordings are masked out
                gamma=gamma,
            )
        )
    if path is not None:
        buf.flush()
    return buf


def offline_buffer_for(
    cfg: OnlineRunConfig,
    vla: FrozenVLA,
    offline_data: str | Path,
    spec: ReplaySpec,
    progress: bool = True,
    path: str | Path | None = None,
) -> ChunkReplayBuffer:
    """D_offline of an online run: :func:`offline_buffer` with the run config's stride, rewards and clip."""
    return offline_buffer(
        vla,
        offline_data,
        spec,
        cfg.offline_stride or cfg.exec_horizon or vla.k,
        cfg.reward,
        cfg.max_offline_episodes,
        progress=progress,
        action_clip=cfg.action_clip,
        path=path,
        episodes=cfg.offline_episodes,
        gamma=cfg.online.gamma,
    )


def write_online_run_files(out, cfg: OnlineRunConfig, offline_run, offline_data, normalizer, **extra) -> None:
    """``OUT/config.yaml`` (``online_run`` = the run config, the offline run and data, ``extra``) and
    ``OUT/normalizer.json`` of an online run (what ``bora eval`` reads)."""
    from bora_trainer.checkpoint import write_run_files

    write_run_files(
        out,
        config={
            "online_run": to_dict(cfg),
            "offline_run": str(offline_run),
            "offline_data": str(offline_data),
            **extra,
        },
        normalizer=normalizer.to_dict(),
    )
