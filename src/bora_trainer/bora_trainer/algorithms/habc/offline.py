"""HABC offline: ``bora train offline --algo habc`` (the algorithm: ``habc/learner.py``).

Applied to the **action expert** + VLM through the actor loss: every chunk sample ``(episode, t)`` of the
dataset is a window; its kind / outcome label / D_succ membership come from :func:`labels.label_episode`
on the episode's ``is_intervention`` and outcome, and its efficiency transition is ``t -> t + k`` (the
sample's next observation; :func:`labels.window_transitions`). The trainer must hand the dataset over once
(``learner.attach_dataset(dataset)``) so the labels can be built; per update the heads are trained (Eq. 3)
and the consistency expert's BC loss is weighted per sample (Eq. 1, 6, 7). Useful on datasets that mix
demonstrations (``source: expert``, weight 1) with policy rollouts and takeovers; on demonstrations only
it reduces to BC (all weights 1). Hyper-parameters: ``OfflineConfig.algo_options`` (:class:`HabcConfig`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from bora_trainer.algorithms.aloe.losses import per_sample_weighted_bc
from bora_trainer.algorithms.habc.config import HabcConfig
from bora_trainer.algorithms.habc.labels import episode_success, label_episode, window_transitions
from bora_trainer.algorithms.habc.learner import HabcBatch, HabcLearner
from bora_trainer.algorithms.losses import soft_update
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm, StepOutput
from bora_trainer.config_io import load_config

_IDS_PER_SOURCE = 10**8
log = logging.getLogger(__name__)


def _global_id(source_index, eid):
    """One id space over several episode directories (directory 0 keeps its own ids)."""
    return source_index * _IDS_PER_SOURCE + eid


class EpisodeLabelTable:
    """Per-step HABC labels of every episode of a dataset, looked up by ``(episode_id, t)``."""

    def __init__(self, hcfg: HabcConfig, chunk_len: int):
        self.hcfg, self.k = hcfg, chunk_len
        self.eps: dict[int, dict[str, np.ndarray]] = {}

    def add(self, eid: int, is_intervention: np.ndarray, info: dict) -> None:
        success = episode_success(info)
        lab = label_episode(
            is_intervention,
            success,
            self.k,
            self.hcfg.min_human_share,
            is_demo=info.get("source") in self.hcfg.demo_sources,
            demos_in_critic=self.hcfg.demos_in_critic,
        )
        T = len(is_intervention)
        n, term, has = window_transitions(np.arange(T), np.full(T, T), self.k, np.full(T, bool(success)))
        self.eps[int(eid)] = {
            "kind": lab.kind,
            "label": lab.label,
            "in_succ": lab.in_succ,
            "n_steps": n,
            "terminal": term,
            "has_target": has,
        }

    def lookup(self, eids: torch.Tensor, ts: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = {k: [] for k in ("kind", "label", "in_succ", "n_steps", "terminal", "has_target")}
        for e, t in zip(eids.tolist(), ts.tolist(), strict=True):
            if e not in self.eps:
                raise KeyError(f"HABC: episode {e} has no labels (attach_dataset was given another dataset?)")
            ep = self.eps[e]
            for k in rows:
                rows[k].append(ep[k][t])
        dev = eids.device
        return {
            "kind": torch.tensor(np.array(rows["kind"]), dtype=torch.long, device=dev),
            "label": torch.tensor(np.array(rows["label"]), dtype=torch.long, device=dev),
            "in_succ": torch.tensor(np.array(rows["in_succ"]), dtype=torch.bool, device=dev),
            "n_steps": torch.tensor(np.array(rows["n_steps"]), dtype=torch.float32, device=dev),
            "terminal": torch.tensor(np.array(rows["terminal"]), dtype=torch.bool, device=dev),
            "has_target": torch.tensor(np.array(rows["has_target"]), dtype=torch.bool, device=dev),
        }


class HabcOffline(OfflineAlgorithm):
    """HABC on the consistency action expert (module docstring)."""

    expert_kind = "consistency"
    uses_critic = False

    def __init__(self, cfg, vlm, expert, critic=None):
        super().__init__(cfg, vlm, expert, None)
        self.hcfg = h = load_config(HabcConfig, {"chunk_len": cfg.k, **dict(cfg.algo_options or {})})
        if h.chunk_len != cfg.k:
            raise ValueError(f"HabcConfig.chunk_len={h.chunk_len} must equal the chunk size k={cfg.k}")
        self.habc = HabcLearner(h, vlm.z_dim, expert.cfg.state_dim)
        if h.n_warmup >= cfg.total_updates:
            log.warning(
                "HabcConfig.n_warmup=%d >= total_updates=%d: the gate (Algorithm 1 steps 4-5) is never used in this "
                "run; every update is the g_t = 1 warm-up (set algo_options n_warmup to use it)",
                h.n_warmup, cfg.total_updates,
            )
        self.critic = self.habc.heads
        if self.habc.target is not None:
            self.habc_target = self.habc.target
        self.labels: EpisodeLabelTable | None = None

    def attach_dataset(self, dataset) -> None:
        """Build the window labels of every episode of a :class:`~bora_trainer.data.chunks.ChunkDataset` (or of
        every directory of a ``MultiChunkDataset``: demonstrations + recorded rollouts, HABC's intended mix)."""
        from bora_policy.common.episodes import read_episode

        table = EpisodeLabelTable(self.hcfg, self.cfg.k)
        for src, part in enumerate(getattr(dataset, "parts", [dataset])):
            for eid in part.episode_ids:
                arrays, info = read_episode(part.root, eid, load_images=False)
                table.add(_global_id(src, eid), arrays["is_intervention"], info)
        self.labels = table

    def actor_param_groups(self):
        groups = super().actor_param_groups()
        if self.hcfg.freeze_action_expert:
            groups = [g for g in groups if g["name"] != "expert"]
        return groups

    def critic_param_groups(self):
        return [{"params": list(self.habc.heads.parameters()), "lr": self.hcfg.lr, "name": "habc_heads"}]

    def losses(self, batch, step):
        if self.labels is None:
            raise RuntimeError("HabcOffline: call attach_dataset(dataset) before training (the trainer hook)")
        eids = batch["episode_id"]
        if "source_index" in batch:  # several episode directories (OfflineConfig.rollout_data)
            eids = _global_id(batch["source_index"], eids)
        lab = self.labels.lookup(eids, batch["t"])
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        if bool((lab["in_succ"] & lab["has_target"]).any()):
            with torch.no_grad():
                z_next = self.encode(batch["next_images"], batch["instruction"], batch["next_state_n"])
        else:  # no row bootstraps the efficiency head (Eq. 3) from o_{t+k}: its VLM pass would go unused
            z_next = z.detach()  # (demonstrations only: D_succ holds no demos unless demos_in_critic)
        prop = self.expert_proprio(batch["state_n"])
        hb = HabcBatch(
            z=z.detach().float(),
            next_z=z_next.float(),
            proprio=batch["state_n"],
            next_proprio=batch["next_state_n"],
            **lab,
        )
        critic_loss, metrics = self.habc.critic_loss(hb)
        w, wstats = self.habc.weights(hb, step)
        metrics.update(wstats)
        actor_loss = per_sample_weighted_bc(self.expert, z, prop, batch["actions_n"], batch["mask"], w)
        metrics["loss/bc_weighted"] = float(actor_loss.detach())
        return StepOutput(actor_loss, critic_loss, True, metrics)

    def after_step(self, step: int) -> None:
        if self.habc.target is not None:
            soft_update(self.habc.target, self.habc.heads, self.hcfg.target_tau)
