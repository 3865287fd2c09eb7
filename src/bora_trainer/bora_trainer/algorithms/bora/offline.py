"""BORA's offline learner (Sec. 3.1, Appendix A-B, Table 3): ``bora train offline --algo bora``.

Consistency action expert + action-conditioned chunk critic on the cognition token z_t, trained with the
shifted bootstrap (Eq. 1), masked Bellman (Eq. 3) and expectile V (Eq. 4); the actor is trained with
action-level GAE, validity-masked clipped PPO (Eq. 2) + BC, the advantage gate (Eq. 5) and the two-stage
schedule (Appendix B.2). The baselines of Table 1 are in ``algorithms/baselines/`` (the decoupled-critic
baseline reuses :class:`PPOWithCritic`); the hyper-parameters are ``bora.config.OfflineConfig``.

Decoupled optimisation (Appendix B): the critic sees ``z_t.detach()`` and no pathwise ``grad_a Q`` is
used, so critic losses never reach the actor; the VLM is trained only through the actor loss (BC, and
PPO in Stage 2). One backward pass over ``critic_loss + actor_loss`` gives both parameter sets their
own gradients; two AdamW optimisers step them. ``gate_scope`` (``losses.gated_ppo_bc_loss``) says what a
closed gate withholds. With ``"batch"`` (the paper's literal gate) a closed gate skips the actor optimiser
step (and the actor gradient is multiplied by 0, so every data-parallel rank still runs the same
collective ops); ``"ppo_chunk"`` masks the PPO term of the low-advantage chunks only; the critic is always
stepped.

PPO reference policy (the ``pi_theta_old`` of Eq. 2): demonstrations are not samples of the current
policy, so "old" is a frozen snapshot of the action expert (the Gaussian head included), refreshed every
``ppo_ref_refresh`` updates (and at the start of Stage 2). It is evaluated on the current cognition
token (detached), so the ratio measures how far the expert has moved since the snapshot for the same
z_t; keeping a second copy of the multi-billion-parameter VLM only for the ratio is not worth the
memory. ``ppo_ref_refresh = 1`` gives the on-policy single-step case (ratio = 1, clip inactive; the
surrogate's gradient is then the advantage-weighted log-likelihood gradient).

Ablation switches of the PPO term (``OfflineConfig``; defaults = Eq. 2 with the Gaussian head, measured in
bench/results/offline_ppo_ablation_*.md): ``ppo_likelihood`` (the Gaussian head or FPO's generative-loss proxy,
:meth:`PPOWithCritic.log_likelihoods`), ``ppo_advantage`` (signed / positive / one) and ``ppo_vlm_grad``.
"""

from __future__ import annotations

import copy

import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.bora.losses import chunk_critic_losses, ppo_diagnostics
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm, StepOutput


class PPOWithCritic(OfflineAlgorithm):
    """Shared actor side: BC warm-up, then lambda_ppo * PPO (Eq. 2) + lambda_bc * BC with action-level GAE
    advantages from ``critic_values`` and the gate (Eq. 5). Subclasses define the critic side."""

    uses_critic = True

    def __init__(self, cfg, vlm, expert, critic):
        super().__init__(cfg, vlm, expert, critic)
        self.expert_ref = copy.deepcopy(expert)
        for p in self.expert_ref.parameters():
            p.requires_grad_(False)
        self.expert_ref.eval()
        self._ref_step = -1

    def refresh_reference(self) -> None:
        """pi_theta_old <- pi_theta (module docstring)."""
        with torch.no_grad():
            for pr, p in zip(self.expert_ref.parameters(), self.expert.parameters(), strict=True):
                pr.copy_(p.detach())
            for br, b in zip(self.expert_ref.buffers(), self.expert.buffers(), strict=True):
                br.copy_(b)

    def critic_losses(self, batch, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Return ``(critic_loss, q [B,k] detached, v [B,k] detached, metrics)``."""
        raise NotImplementedError

    def losses(self, batch, step):
        cfg = self.cfg
        mask = batch["mask"]
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        critic_loss, q, v, metrics = self.critic_losses(batch, z)
        prop = self.expert_proprio(batch["state_n"])
        bc_mask = batch.get("bc_mask", mask)  # 0 on failed recorded rollouts: never imitated
        bc = self.expert.bc_loss(z, prop, batch["actions_n"], bc_mask) * L.imitated_rows_scale(bc_mask)
        metrics["loss/bc"] = float(bc.detach())
        stage = L.stage_for_step(step, cfg.total_updates, cfg.ppo_start_step, cfg.ppo_start_fraction)
        metrics["train/stage"] = float(stage)
        actor_open = True
        if stage == 1:
            actor_loss = cfg.lambda_bc * bc
        else:
            adv = L.action_level_gae(q, v, batch["dones"], cfg.gamma, cfg.gae_lambda, mask)
            adv_n = L.normalize_advantages(adv, mask, cfg.adv_clip, reduce=self.reduce)
            if cfg.ppo_advantage == "positive":  # OfflineConfig.ppo_advantage (CRR's binary filter)
                adv_n = adv_n.clamp_min(0.0)
            elif cfg.ppo_advantage == "one":  # diagnostic: no critic information in the term
                adv_n = mask.to(adv_n.dtype)
            logp, logp_old = self.log_likelihoods(
                z if cfg.ppo_vlm_grad else z.detach(), prop, batch["actions_n"], step
            )
            actor_loss, actor_open, ppo, gate_stats = L.gated_ppo_bc_loss(
                logp,
                logp_old,
                adv_n,
                adv if cfg.gate_source == "raw" else adv_n,
                mask,
                bc,
                cfg.gate_scope if cfg.gate_enabled else "off",
                cfg.gate_margin,
                cfg.lambda_ppo,
                cfg.lambda_bc,
                cfg.ppo_eps,
                cfg.ppo_dual_clip,
                reduce=self.reduce,
            )
            metrics.update(gate_stats)
            metrics["loss/ppo"] = float(ppo.detach())
            metrics.update(ppo_diagnostics(logp.detach(), logp_old, adv, adv_n, mask, cfg.ppo_eps))
        metrics["gate/open"] = float(actor_open)
        return StepOutput(actor_loss, critic_loss, actor_open, metrics)

    def log_likelihoods(self, z, prop, actions, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log pi_theta, log pi_theta_old)`` of the demonstrated steps ``[B, k]`` (``cfg.ppo_likelihood``):
        the Gaussian head's, or minus the per-step generative loss under one shared noise draw (FPO's proxy).

        The proxy's noise comes from its own generator seeded by ``(cfg.seed, step, rank)``, not from the global
        stream: drawing from that stream would shift every later random number of BC and the data order, so
        the variant would differ from CP Base by a different training run as well as by its term (measured:
        bench/results/offline_ppo_ablation_pick_and_place.md, the lambda_ppo 0 control). With its own stream,
        lambda_ppo 0 follows CP Base's actor up to float rounding (test_gate_scope.py), and a resumed run draws
        the same noise."""
        if self.cfg.ppo_likelihood == "gaussian":
            logp = self.expert.log_prob(z, prop, actions)
            with torch.no_grad():
                logp_old = self.expert_ref.log_prob(z.detach(), prop, actions)
            return logp, logp_old
        if hasattr(self.expert, "ct_step"):  # one consistency-curriculum grid for both (BC just counted a step)
            self.expert_ref.ct_step.copy_(self.expert.ct_step)
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        seed = (int(self.cfg.seed) % 2**20 * 2**24 + int(step) % 2**24) * 2**10 + rank % 2**10  # < 2**54
        g = torch.Generator(device=z.device)
        logp = -self.expert.bc_loss_per_step(z, prop, actions, generator=g.manual_seed(seed))
        with torch.no_grad():
            logp_old = -self.expert_ref.bc_loss_per_step(z.detach(), prop, actions, generator=g.manual_seed(seed))
        return logp, logp_old

    def after_step(self, step: int) -> None:
        cfg = self.cfg
        if step + 1 == cfg.ppo_start or (step + 1) % cfg.ppo_ref_refresh == 0:
            self.refresh_reference()
        self.update_targets()

    def update_targets(self) -> None:
        raise NotImplementedError

    def modules_to_save(self):
        out = super().modules_to_save()
        out["expert_ref"] = self.expert_ref
        return out


class Bora(PPOWithCritic):
    """Action-conditioned chunk critic on z_t (Eq. 1, 3, 4) + PPO/BC actor with GAE and the gate."""

    def critic_losses(self, batch, z):
        with torch.no_grad():
            z_next = self.encode(batch["next_images"], batch["instruction"], batch["next_state_n"])
        return chunk_critic_losses(self.cfg, self.critic, z.detach(), z_next, batch)

    def update_targets(self) -> None:
        self.critic.soft_update_targets(self.cfg.target_tau)
