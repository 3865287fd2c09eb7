"""The offline baselines of Table 1 (``bora train offline --algo NAME``; rows of ``bora demo``).

* ``diffusion-bc`` (:class:`DiffusionBC`): VITRA-style multi-step diffusion action expert, imitation only.
* ``cp-bc`` (:class:`ConsistencyBC`): consistency action expert, imitation only.
* ``cp-decoupled-critic`` (:class:`DecoupledCriticPPO`): consistency expert + a critic with its OWN pixel
  encoder (no VLM token, no per-step action conditioning); PPO + BC with that critic's action-level
  advantages (BORA's actor side, ``bora.offline.PPOWithCritic``).
"""

from __future__ import annotations

import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.bora.losses import critic_objectives
from bora_trainer.algorithms.bora.offline import PPOWithCritic
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm, StepOutput


class _BCOnly(OfflineAlgorithm):
    def losses(self, batch, step):
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        m = batch.get("bc_mask", batch["mask"])  # failed recorded rollouts are never imitated
        bc = self.expert.bc_loss(z, self.expert_proprio(batch["state_n"]), batch["actions_n"], m)
        bc = bc * L.imitated_rows_scale(m)
        return StepOutput(self.cfg.lambda_bc * bc, None, True, {"loss/bc": float(bc.detach())})


class DiffusionBC(_BCOnly):
    """VITRA-style baseline: multi-step diffusion action expert on z_t, imitation only."""

    expert_kind = "diffusion"


class ConsistencyBC(_BCOnly):
    """Consistency-policy action expert on z_t, imitation only."""

    expert_kind = "consistency"


class DecoupledCriticPPO(PPOWithCritic):
    """Baseline: the same Eq. 1/3/4 critic objectives and PPO+BC actor, but the critic has its own pixel
    encoder (images + state, no VLM token) and no per-step action conditioning."""

    critic_kind = "decoupled"

    def critic_losses(self, batch, z):
        cfg, critic = self.cfg, self.critic
        mask = batch["mask"]
        prop = batch["state_n"] if critic.state_dim else None
        next_prop = batch["next_state_n"] if critic.state_dim else None
        with torch.no_grad():
            v_tgt = critic.v_target(batch["images"], prop)
            v_next0 = critic.v_target(batch["next_images"], next_prop)[:, 0]
            y = L.shifted_bootstrap_targets(batch["rewards"], batch["dones"], v_tgt, v_next0, cfg.gamma)
            y = L.mc_mixed_targets(y, batch.get("returns"), cfg.critic_mc_weight)
        q_all = critic.q_all(batch["images"], batch["actions_n"], prop)
        v = critic.v(batch["images"], prop)
        lq, lv, q = critic_objectives(q_all, v, y, mask, cfg.expectile_tau)
        metrics = {"loss/q": float(lq.detach()), "loss/v": float(lv.detach())}
        return lq + lv, q, v.detach(), metrics

    def update_targets(self) -> None:
        self.critic.soft_update_targets(self.cfg.target_tau)
