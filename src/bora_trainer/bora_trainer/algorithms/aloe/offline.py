"""ALOE offline: ``bora train offline --algo aloe`` (the algorithm: ``aloe/learner.py``).

Applied to the **action expert** (the VLM is trained through the actor loss only): the ensemble critic
reads ``z_t.detach()``, the normalised proprio and the logged chunk; the chunked TD target bootstraps at
the observation after the chunk (``h = k``) with a chunk sampled from the current consistency expert.
Schedule per update ``step``:

* ``step < ppo_start`` (the offline warm-up of Appendix B.2, reused as ALOE's "warm-start with BC"):
  plain BC for the actor while the critic is trained;
* afterwards cycles of ``critic_steps`` critic-only updates (actor frozen: gate closed) followed by
  ``actor_steps`` actor-only updates with ``w = exp(clip(A/beta, -eps, eps))`` (critic frozen). With a
  fixed dataset the "collect" stage is the dataset itself. By default (0) the stages are derived from the
  run (``losses.stage_lengths``): the updates after ``ppo_start`` make ``iterations`` loops; a stage count
  given explicitly that leaves no actor stage in the run is refused.

Not supported: ALOE offline with the diffusion expert (it has no cheap fresh sample for V^pi with K
chunks; use ``cp-bc`` for that baseline). Hyper-parameters: ``OfflineConfig.algo_options``
(:class:`AloeConfig` fields; defaults otherwise).
"""

from __future__ import annotations

import copy

import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.aloe.config import AloeConfig
from bora_trainer.algorithms.aloe.learner import EnsembleChunkQ
from bora_trainer.algorithms.aloe.losses import (
    aggregate_heads,
    aloe_weights,
    chunk_td_target,
    critic_mse,
    per_sample_weighted_bc,
    phase_for_step,
    stage_lengths,
)
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm, StepOutput
from bora_trainer.config_io import load_config


class AloeOffline(OfflineAlgorithm):
    """ALOE on the consistency action expert (module docstring)."""

    expert_kind = "consistency"
    uses_critic = False  # the ensemble is built here, not by the trainer's ChunkCritic builder

    def __init__(self, cfg, vlm, expert, critic=None):
        super().__init__(cfg, vlm, expert, None)
        self.acfg = load_config(AloeConfig, dict(cfg.algo_options or {}))
        if self.acfg.horizon not in (0, cfg.k):
            raise ValueError(
                f"AloeConfig.horizon={self.acfg.horizon}: offline chunk samples bootstrap at t+k, "
                f"so the Q horizon must be the chunk length k={cfg.k} (or 0)"
            )
        a = self.acfg
        self.state_dim = expert.cfg.state_dim
        self.critic = EnsembleChunkQ(
            vlm.z_dim,
            expert.action_dim,
            cfg.k,
            self.state_dim,
            a.n_heads,
            a.width,
            a.num_layers,
            a.num_attn_heads,
            a.dropout,
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        budget = cfg.total_updates - cfg.ppo_start
        self.stages = stage_lengths(budget, a.iterations, a.critic_steps, a.actor_steps)
        if a.critic_steps and 0 < budget <= a.critic_steps:  # a fixed count too long for this run
            raise ValueError(
                f"AloeConfig.critic_steps={self.stages[0]}: the run's {budget} updates after ppo_start "
                f"({cfg.ppo_start} of {cfg.total_updates}) end inside the first critic stage, so the actor would "
                "never take an ALOE step; set critic_steps and actor_steps to 0 (derived from the run) or lower"
            )

    def critic_param_groups(self):
        return [{"params": list(self.critic.parameters()), "lr": self.acfg.critic_lr, "name": "aloe_critic"}]

    def phase(self, step: int) -> str:
        return phase_for_step(step, self.cfg.ppo_start, *self.stages)

    def _sample(self, z, prop):
        n = self.cfg.model.expert_sample_steps or None
        with torch.no_grad():
            return self.expert.sample(z, prop, num_steps=n)

    def losses(self, batch, step):
        a = self.acfg
        phase = self.phase(step)
        prop = self.expert_proprio(batch["state_n"])
        metrics: dict[str, float] = {"aloe/phase": {"warmup": 0.0, "critic": 1.0, "actor": 2.0}[phase]}
        if phase == "critic":
            with torch.no_grad():
                z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        else:
            z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        zd = z.detach().float()
        critic_loss = None
        if phase in ("warmup", "critic"):
            with torch.no_grad():
                z_next = self.encode(
                    batch["next_images"], batch["instruction"], batch["next_state_n"]
                ).float()
                prop_next = self.expert_proprio(batch["next_state_n"])
                q_next = aggregate_heads(
                    self.critic_target(z_next, self._sample(z_next, prop_next), prop_next), a.target_aggregate
                ).float()
                y = chunk_td_target(
                    batch["rewards"].float(),
                    batch["dones"],
                    q_next,
                    a.gamma,
                    batch.get("pad_mask"),
                    a.done_mask,
                )
            q = self.critic(zd, batch["actions_n"], prop)
            # a chunk whose next observation was not recorded (a gap inside the episode, data/chunks.py) has no
            # state to bootstrap from: left out of the critic's mean, not bootstrapped from a filler observation
            missing = batch.get("next_missing")
            critic_loss = critic_mse(q, y, None if missing is None else 1.0 - missing.float())
            metrics.update(
                {
                    "aloe/critic_loss": float(critic_loss.detach()) / q.shape[0],
                    "aloe/q_mean": float(q.detach().mean()),
                    "aloe/target_mean": float(y.mean()),
                }
            )
        if phase == "critic":
            return StepOutput(torch.zeros((), device=zd.device), critic_loss, False, metrics)
        if phase == "warmup":
            w = torch.ones(zd.shape[0], device=zd.device)
        else:
            with torch.no_grad():
                q_data = aggregate_heads(
                    self.critic(zd, batch["actions_n"], prop), a.advantage_aggregate
                ).float()
                v = (
                    torch.stack(
                        [
                            aggregate_heads(
                                self.critic(zd, self._sample(zd, prop), prop), a.advantage_aggregate
                            )
                            for _ in range(a.n_value_samples)
                        ]
                    )
                    .mean(0)
                    .float()
                )
                adv = q_data - v
                w = aloe_weights(adv, a.beta, a.weight_clip, a.weight_form)
            metrics.update(
                {
                    "aloe/adv_mean": float(adv.mean()),
                    "aloe/w_mean": float(w.mean()),
                    "aloe/w_max": float(w.max()),
                }
            )
        bc_mask = batch.get("bc_mask", batch["mask"])  # failed recorded rollouts: critic data, never imitated
        actor_loss = per_sample_weighted_bc(self.expert, z, prop, batch["actions_n"], bc_mask, w)
        metrics["loss/bc_weighted"] = float(actor_loss.detach())
        return StepOutput(actor_loss, critic_loss, True, metrics)

    def after_step(self, step: int) -> None:
        if self.phase(step) in ("warmup", "critic"):
            L.soft_update(self.critic_target, self.critic, self.acfg.tau)

    def modules_to_save(self):
        out = super().modules_to_save()
        out["critic_target"] = self.critic_target
        return out
