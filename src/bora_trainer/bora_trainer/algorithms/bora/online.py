"""BORA's online objective ``bora-residual`` (BORA-Full; Sec. 3.2, Algorithm 1, Table 3 Phase 2).

Runs inside the shared :class:`~bora_trainer.algorithms.online_learner.OnlineLearner` (residual actor,
inherited critic, targets, optimisers). Per update (Algorithm 1 lines 26-27):

* critic: Eq. (3) masked Bellman (every twin Q head) on Eq. (1) shifted-bootstrap targets (target V;
  blended with the steps' Monte-Carlo returns when ``critic_mc_weight`` > 0, ours)
  + Eq. (4) expectile V + ``lambda_Q * L_reg`` with the critic regulariser (the paper names
  lambda_Q = 0.25 but not its form; ours, ``critic_reg="anchor_offline"``):
  ``L_reg = masked mean over OFFLINE rows of (q_phi(z, a) - q_phi_offline(z, a))^2`` where
  ``q_phi_offline`` is the frozen inherited offline critic and ``a`` the dataset chunk: the online
  critic may move on the new online data but keeps the offline value landscape on the offline data.
  ``critic_reg="none"`` disables it. Then the Polyak update of the targets (tau = 0.005).
* actor (gradients reach the residual only; the critic is frozen during this loss):
  ``lambda_BC(t) L_BC + lambda_imp L_improve + lambda_anchor L_anchor + lambda_l2 L_l2`` with
  - ``L_BC``: squared error of the composite A_hat = A_base + alpha_t A_res to the executed chunk on
    the offline rows (all valid steps) and on the online steps under human control
    (``is_intervention``), an offline row weighted by ``demo_bc_weight``, an online row by
    ``intervention_bc_weight`` (ours; both 1 = the paper's
    plain mean over imitated rows: :meth:`BoraResidualObjective.bc_term`); lambda_BC decays 2.0 -> 1.0
    over 10k updates; ``bc_filter="q"`` (ours, Nair et al. 2018's Q-filter) keeps only the steps where the
    critic values the data's chunk at least as high as A_hat (:meth:`BoraResidualObjective.q_filter`);
    ``bc_center`` (ours) imitates the data's corrections to the base minus their batch mean
    (:meth:`BoraResidualObjective.bc_offset`); ``actor_input_noise`` (ours) adds batch-scaled Gaussian noise
    to the residual's proprio and z inputs in this step (:meth:`BoraResidualObjective.noisy`);
  - ``L_improve``: Eq. (6) hinge ``max(0, q(z, a_base) + delta - q(z, a_hat))`` (delta 0, lambda 0.35);
  - ``L_anchor`` (ours, the paper gives only the weight 0.03): masked mean over the chunk's steps of
    ``||a_hat - a_base||^2 / A`` (the mean over the A action dimensions, normalised units; so per dimension the
    weight is 0.03 / A of a squared-norm reading), the deployed deviation from the base chunk;
  - ``L_l2``: mean of ``A_res^2`` (the raw residual before alpha), weight 2e-4.
  ``lambda_q`` (default 0) optionally adds Eq. (8)'s objective term ``-E[q(z, a_hat)]``.
* ``critic_conservative`` (ours, default 0): adds to the critic loss, after CQL, the gap between each Q head
  at the current composite chunk and at the batch's chunk (:meth:`BoraResidualObjective.conservative_gap`).

Cost (batch B, chunk k): the step-MLP layers after the first run on B*k tokens and dominate. Per update the
critic is evaluated 9 times (target V; twin Q + V with backward; frozen offline twin Q on the B/2 offline
rows; twin Q at A_hat with backward to the actions and at A_base), the bootstrap ``v(z_{t+1}, 0)`` only at
position 0. ``OnlineConfig.precision="bf16"`` runs the update under bf16 autocast also on a CPU.
"""

from __future__ import annotations

import contextlib

import torch

from bora_trainer.algorithms.bora.losses import critic_anchor_loss, improvement_hinge
from bora_trainer.algorithms.losses import (
    expectile_value_loss,
    masked_bellman_loss,
    masked_mean,
    mc_mixed_targets,
    shifted_bootstrap_targets,
)
from bora_trainer.algorithms.online_learner import OnlineObjective, frozen


class BoraResidualObjective(OnlineObjective):
    """BORA-Full online objective (module docstring). Graph-safe (``OnlineConfig.cuda_graph``)."""

    graph_safe = True

    def critic_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        L, c = self.learner, self.learner.cfg
        mask = b["mask"].float()
        with torch.no_grad(), L.autocast():
            v_cur_t = L.v_target(b["z"]).float()
            v_next_t = L.v_target(b["next_z"], steps=[0]).float()[:, 0] * b["next_valid"].float()
        y = shifted_bootstrap_targets(b["reward"].float(), b["done"].float(), v_cur_t, v_next_t, c.gamma)
        y = mc_mixed_targets(y, b.get("returns"), c.critic_mc_weight)
        with L.autocast():
            # every Q head regresses to y (twin heads: q_all); V's expectile uses the minimum
            q_all = self.q_heads(b["z"], b["action"])
            v = L.critic.v(b["z"]).float()
        q = q_all.amin(0)
        loss_q = sum(masked_bellman_loss(qh, y, mask) for qh in q_all)
        loss_v = expectile_value_loss(q, v, mask, c.expectile)
        loss = loss_q + loss_v
        info = {
            "critic/loss_q": L.metric(loss_q),
            "critic/loss_v": L.metric(loss_v),
            "critic/q_mean": L.metric(q.mean()),
        }
        if c.critic_reg == "anchor_offline" and c.critic_reg_lambda > 0:
            off = ~b["is_online"].bool()  # the regulariser only looks at offline rows
            if L.graphing:  # the same mean with the offline rows as weights (a boolean index waits for the GPU)
                with torch.no_grad(), L.autocast():
                    q_off = L.critic_offline.q(b["z"], b["action"]).float()
                reg = critic_anchor_loss(q, q_off, mask, off)
            else:
                with torch.no_grad(), L.autocast():
                    q_off = L.critic_offline.q(b["z"][off], b["action"][off]).float()
                reg = critic_anchor_loss(q[off], q_off, mask[off], torch.ones_like(off[off]))
            loss = loss + c.critic_reg_lambda * reg
            info["critic/reg"] = L.metric(reg)
        if c.critic_conservative > 0:
            gap = self.conservative_gap(b, q_all, mask)
            loss = loss + c.critic_conservative * gap
            info["critic/conservative_gap"] = L.metric(gap)
        info["critic/loss"] = L.metric(loss)
        return loss, info

    def q_heads(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Every Q head of the online critic at ``actions``: ``[num_q, B, k]`` (one head for a critic without
        ``q_all``), in fp32."""
        c = self.learner.critic
        return (c.q_all(z, actions) if hasattr(c, "q_all") else c.q(z, actions)[None]).float()

    def conservative_gap(self, b: dict[str, torch.Tensor], q_all: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The conservative term (``OnlineConfig.critic_conservative``; ours, after CQL's gap between the
        policy's and the data's actions): summed over the Q heads, the masked mean of Q at the current
        composite chunk (no gradient to the actor) minus the masked mean at the batch's chunk."""
        L = self.learner
        with torch.no_grad():
            _, _, a_pi = self.composite(b)
        with L.autocast():
            q_pi = self.q_heads(b["z"], a_pi)
        return sum(masked_mean(qp, mask) - masked_mean(qd, mask) for qp, qd in zip(q_pi, q_all))

    def composite(self, b: dict[str, torch.Tensor], input_noise: float = 0.0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A_base, A_res, A_hat = A_base + alpha_t A_res)``; the base is data (detached). ``input_noise``
        > 0: the residual reads :meth:`noisy` proprio and z (``OnlineConfig.actor_input_noise``)."""
        L = self.learner
        base = b["base"].float().detach()
        prop, z = b["proprio"], b["z"]
        if input_noise > 0:
            prop, z = self.noisy(prop, input_noise), self.noisy(z, input_noise)
        with L.autocast():
            res = L.actor(prop, base, z).float()
        return base, res, base + L.alpha_now() * res

    @staticmethod
    def noisy(x: torch.Tensor, sigma: float, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x + sigma * std * eps``: ``std`` the per-dimension standard deviation of ``x`` [B, D] over the batch
        (no gradient), ``eps`` standard normal (``noise`` when given, for tests)."""
        with torch.no_grad():
            std = x.float().std(0, keepdim=True) if x.shape[0] > 1 else torch.zeros_like(x[:1].float())
            eps = torch.randn_like(x.float()) if noise is None else noise.float()
            return (x.float() + sigma * std * eps).to(x.dtype)

    def bc_term(self, b: dict[str, torch.Tensor], a_hat: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """``L_BC``: a weighted mean over the imitated rows of each row's mean squared error on its imitated
        steps (all valid steps of an offline row; the human-controlled steps of an online row; of those only
        the steps where ``keep`` [B, k] is 1, when given: :meth:`q_filter`). An offline row weighs
        ``demo_bc_weight``, an online row with human steps ``intervention_bc_weight`` (both 1: the paper's
        plain mean over imitated rows); rows without an imitated step do not count."""
        online = b["is_online"].bool()
        imitated = b["mask"].float() * ((~online)[:, None] | b["is_intervention"].bool()).float()
        if keep is not None:
            imitated = imitated * keep
        n = imitated.sum(1)
        has = (n > 0).float()
        step_w = imitated / n.clamp_min(1.0)[:, None]  # each row's mean over its imitated steps
        w_online = torch.full_like(has, self.learner.cfg.intervention_bc_weight)
        w = has * torch.where(online, w_online, torch.full_like(has, self.learner.cfg.demo_bc_weight))
        target = b["action"].float()
        if self.learner.cfg.bc_center:
            target = target - self.bc_offset(b, w[:, None] * step_w)
        per_row = (((a_hat - target) ** 2).mean(-1) * step_w).sum(1)
        return (w * per_row).sum() / w.sum().clamp_min(1e-8)  # 0 (with a gradient) when nothing is imitated

    @staticmethod
    def bc_offset(b: dict[str, torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
        """``bc_center``'s offset ``c`` [A]: the mean of the data's correction to the base, ``a - A_base``, per
        action dimension, over the batch's steps weighted by ``weight`` [B, k] (the weights ``L_BC`` gives
        each imitated step), without a gradient. ``L_BC`` then imitates ``a - c``: the corrections' variation
        from state to state, not their average."""
        with torch.no_grad():
            corr = b["action"].float() - b["base"].float()  # [B, k, A]
            return (weight[..., None] * corr).sum((0, 1)) / weight.sum().clamp_min(1e-8)

    def q_filter(self, b: dict[str, torch.Tensor], q_hat: torch.Tensor) -> torch.Tensor:
        """Nair et al. 2018's Q-filter per step (``bc_filter="q"``): ``1`` where the online critic values the
        data's chunk at least as high as the composite, ``Q(z, a)_t >= Q(z, A_hat)_t`` (both the minimum over
        the Q heads, no gradient), else ``0``: [B, k] floats."""
        L = self.learner
        with torch.no_grad(), L.autocast():
            q_data = L.critic.q(b["z"], b["action"]).float()
        return (q_data >= q_hat.detach()).float()

    def hinge(self, b: dict[str, torch.Tensor], base: torch.Tensor, a_hat: torch.Tensor):
        """Eq. (6) on the online critic with its parameters frozen: ``(L_improve, q_base, q_hat)``."""
        L, c = self.learner, self.learner.cfg
        fp32 = c.hinge_precision == "fp32"
        z = b["z"].float() if fp32 else b["z"]
        with frozen(L.critic), (contextlib.nullcontext() if fp32 else L.autocast()):
            q_hat = L.critic.q(z, a_hat).float()
            with torch.no_grad():
                q_base = L.critic.q(z, base).float()
        return improvement_hinge(q_base, q_hat, b["mask"].float(), c.improve_delta), q_base, q_hat

    def actor_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        L, c = self.learner, self.learner.cfg
        mask = b["mask"].float()
        base, res, a_hat = self.composite(b, c.actor_input_noise)
        hinge, q_base, q_hat = self.hinge(b, base, a_hat)
        keep = self.q_filter(b, q_hat) if c.bc_filter == "q" else None
        loss_bc = self.bc_term(b, a_hat, keep)
        anchor = masked_mean(((a_hat - base) ** 2).mean(-1), mask)
        l2 = (res**2).mean()
        lam_bc = L.bc_lambda_now()
        loss = lam_bc * loss_bc + c.improve_lambda * hinge + c.anchor_lambda * anchor + c.residual_l2 * l2
        if c.lambda_q > 0:
            loss = loss - c.lambda_q * masked_mean(q_hat, mask)
        info = {
            "actor/loss": L.metric(loss),
            "actor/bc": L.metric(loss_bc),
            "actor/hinge": L.metric(hinge),
            "actor/anchor": L.metric(anchor),
            "actor/res_l2": L.metric(l2),
            "actor/lambda_bc": lam_bc,
            "actor/q_gain": L.metric(masked_mean(q_hat - q_base, mask)),
            "actor/res_abs": L.metric(res.abs().mean()),
        }
        if keep is not None:
            info["actor/bc_kept"] = L.metric(masked_mean(keep, mask))
        return loss, info

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        L = self.learner
        # critic (Algorithm 1 line 26)
        loss_c, info = self.critic_loss(batch)
        L.critic_opt.zero_grad(set_to_none=True)
        loss_c.backward()
        info["critic/grad_norm"] = L.clip_and_step(L.critic_opt, L.critic.parameters())
        L.update_targets()
        # actor (line 27): gradients only into the residual
        loss_a, info_a = self.actor_loss(batch)
        L.actor_opt.zero_grad(set_to_none=True)
        loss_a.backward()
        info_a["actor/grad_norm"] = L.clip_and_step(L.actor_opt, L.actor.parameters())
        info.update(info_a)
        return info
