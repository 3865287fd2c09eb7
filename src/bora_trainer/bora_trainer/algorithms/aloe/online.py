"""ALOE online: ``bora train online --algo aloe`` (the algorithm: ``aloe/learner.py``).

Applied to the **residual actor** (the VLA is frozen online): the current policy is the composite
``A_base + alpha_t pi_res(s, A_base, z)`` on the stored base chunk, so the bootstrap chunk is
``next_base + alpha_t pi_res(next)``. It is deterministic given the stored base chunk, so
``V^pi(s) = Q_pess(s, A_base + alpha_t pi_res)`` (K samples would be identical). The actor step is
advantage-weighted regression of the composite onto the executed chunk (human steps included). The same
critic/actor alternation as offline runs on the learner's update counter; each round's collection (with
takeovers) is the online loop's rollouts. Stages given as 0 (the default) are derived from one round's
update cap ``online.max_updates`` (``losses.stage_lengths``: ``iterations`` loops per round's cap; Table 3's
15k -> 1500 + 1500, the demo's 400 -> 40 + 40).

Not supported: ALOE on the action expert during the online phase (the VLA is frozen there by design).
Hyper-parameters: ``OnlineConfig.objective_options`` (:class:`AloeConfig` fields; defaults otherwise).
"""

from __future__ import annotations

import copy
import logging

import torch

from bora_trainer.algorithms.aloe.config import AloeConfig
from bora_trainer.algorithms.aloe.learner import EnsembleChunkQ
from bora_trainer.algorithms.aloe.losses import (
    aggregate_heads,
    aloe_weights,
    critic_mse,
    online_td_target,
    per_sample_mean,
    phase_for_step,
    stage_lengths,
)
from bora_trainer.algorithms.losses import soft_update
from bora_trainer.algorithms.online_learner import OnlineObjective, frozen
from bora_trainer.config_io import load_config

log = logging.getLogger(__name__)


class AloeResidualObjective(OnlineObjective):
    """ALOE on the residual chunk actor (module docstring). Options: :class:`AloeConfig` fields."""

    def __init__(self, learner, options=None):
        super().__init__(learner, options)
        self.acfg = a = load_config(AloeConfig, self.options)
        d = learner.dims
        h = a.horizon or d["chunk_size"]
        if h != d["chunk_size"]:
            raise ValueError(
                f"AloeConfig.horizon={a.horizon}: replay rows bootstrap at t+k, so the Q horizon must "
                f"be the chunk length k={d['chunk_size']} (or 0)"
            )
        self.q = EnsembleChunkQ(
            d["z_dim"],
            d["action_dim"],
            h,
            d["state_dim"],
            a.n_heads,
            a.width,
            a.num_layers,
            a.num_attn_heads,
            a.dropout,
        ).to(learner.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.AdamW(self.q.parameters(), lr=a.critic_lr, weight_decay=a.weight_decay)
        self.stages = stage_lengths(learner.cfg.max_updates, a.iterations, a.critic_steps, a.actor_steps)
        if self.stages[0] >= learner.cfg.max_updates:
            log.warning(
                "AloeConfig.critic_steps=%d >= online.max_updates=%d: the first round's updates are all critic "
                "updates (the residual actor is not trained in it)", self.stages[0], learner.cfg.max_updates,
            )

    def policy(self, z, proprio, base):
        """The current composite chunk ``A_base + alpha_t pi_res(s, A_base, z)`` and the raw residual."""
        L_ = self.learner
        res = L_.actor(proprio, base, z).float()
        return base + L_.alpha() * res, res

    def critic_update(self, b) -> dict[str, float]:
        a, L_ = self.acfg, self.learner
        with torch.no_grad():
            a_next, _ = self.policy(b["next_z"], b["next_proprio"], b["next_base"].float())
            q_next = aggregate_heads(
                self.q_target(b["next_z"], a_next, b["next_proprio"]), a.target_aggregate
            ).float()
            y, row_w = online_td_target(b, q_next, a.gamma, a.done_mask)
        q = self.q(b["z"], b["action"], b["proprio"])
        loss = critic_mse(q, y, row_w)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = L_.clip_and_step(self.opt, self.q.parameters())
        soft_update(self.q_target, self.q, a.tau)
        return {
            "critic/loss": float(loss.detach()) / q.shape[0],
            "critic/q_mean": float(q.detach().mean()),
            "critic/target_mean": float(y.mean()),
            "critic/grad_norm": gn,
        }

    def actor_update(self, b) -> dict[str, float]:
        a, L_ = self.acfg, self.learner
        base = b["base"].float()
        with torch.no_grad(), frozen(self.q):
            q_data = aggregate_heads(self.q(b["z"], b["action"], b["proprio"]), a.advantage_aggregate).float()
            a_pi, _ = self.policy(b["z"], b["proprio"], base)
            v = aggregate_heads(self.q(b["z"], a_pi, b["proprio"]), a.advantage_aggregate).float()
            adv = q_data - v
            w = aloe_weights(adv, a.beta, a.weight_clip, a.weight_form)
            # Q(composite) - Q(base) under ALOE's own critic: the evidence report's online column, as for bora
            q_gain = v - aggregate_heads(self.q(b["z"], base, b["proprio"]), a.advantage_aggregate).float()
        a_hat, res = self.policy(b["z"], b["proprio"], base)
        per = per_sample_mean(((a_hat - b["action"].float()) ** 2).mean(-1), b["mask"].float())
        loss = (w * per).mean() + L_.cfg.residual_l2 * (res**2).mean()
        L_.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = L_.clip_and_step(L_.actor_opt, L_.actor.parameters())
        return {
            "actor/loss": float(loss.detach()),
            "actor/adv_mean": float(adv.mean()),
            "actor/w_mean": float(w.mean()),
            "actor/w_max": float(w.max()),
            "actor/res_abs": float(res.detach().abs().mean()),
            "actor/q_gain": float(q_gain.mean()),
            "actor/grad_norm": gn,
        }

    def update(self, batch):
        ph = phase_for_step(self.learner.step, 0, *self.stages)
        info = self.critic_update(batch) if ph == "critic" else self.actor_update(batch)
        info["aloe/phase"] = 1.0 if ph == "critic" else 2.0
        return info

    def extra_modules(self):
        return {"aloe_q": self.q, "aloe_q_target": self.q_target}
