"""ALOE wired into the trainers: ``bora train offline --algo aloe`` and ``bora train online --algo aloe``.

Offline (:class:`AloeOffline`, applied to the **action expert**; the VLM is trained through the actor
loss only): the ensemble critic reads ``z_t.detach()``, the normalised proprio and the logged chunk;
the chunked TD target bootstraps at the observation after the chunk (``h = k``) with a chunk sampled
from the current consistency expert. Schedule per update ``step``:

* ``step < ppo_start`` (the offline warm-up of Appendix B.2, reused as ALOE's "warm-start with BC"):
  plain BC for the actor while the critic is trained;
* afterwards cycles of ``critic_steps`` critic-only updates (actor frozen: gate closed) followed by
  ``actor_steps`` actor-only updates with ``w = exp(clip(A/beta, -eps, eps))`` (critic frozen). With a
  fixed dataset the "collect" stage is the dataset itself.

Online (:class:`AloeResidualObjective`, applied to the **residual actor**; the VLA is frozen online): the
current policy is the composite ``A_base + alpha_t pi_res(s, A_base, z)`` on the stored base chunk, so the
bootstrap chunk is ``next_base + alpha_t pi_res(next)``. It is deterministic given the stored base chunk,
so ``V^pi(s) = Q_pess(s, A_base + alpha_t pi_res)`` (K samples would be identical). The actor step is
advantage-weighted regression of the composite onto the executed chunk (human steps included). The
same critic/actor alternation runs on the learner's update counter; each round's collection (with
takeovers) is the online loop's rollouts.

Not supported (no sensible meaning): ALOE on the action expert during the online phase (the VLA is frozen
there by design) and ALOE offline with the diffusion expert (it has no cheap fresh sample for V^pi with
K chunks; use ``cp-bc`` for that baseline).

The ALOE hyper-parameters come from ``OfflineConfig.algo_options`` / ``OnlineConfig.objective_options``
(a mapping with :class:`AloeConfig` fields; defaults otherwise).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from bora_trainer.algorithms import losses as L
from bora_trainer.algorithms.aloe import (
    AloeConfig,
    EnsembleChunkQ,
    aggregate_heads,
    aloe_weights,
    chunk_td_target,
    per_sample_weighted_bc,
)
from bora_trainer.algorithms.offline import OfflineAlgorithm, StepOutput, register_algorithm
from bora_trainer.algorithms.online import OnlineObjective, frozen, register_objective
from bora_trainer.config_io import load_config


def _options(cfg: Any, *names: str) -> dict:
    for n in names:
        v = getattr(cfg, n, None)
        if v:
            return dict(v)
    return {}


def phase_for_step(step: int, warmup: int, critic_steps: int, actor_steps: int) -> str:
    """ "warmup" (BC actor + critic) before ``warmup``; then cycles of "critic" then "actor" updates."""
    if step < warmup:
        return "warmup"
    cyc = critic_steps + actor_steps
    if cyc <= 0:
        raise ValueError("AloeConfig.critic_steps + actor_steps must be > 0")
    return "critic" if (step - warmup) % cyc < critic_steps else "actor"


def _critic_mse(q: torch.Tensor, y: torch.Tensor, row_w: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3: sum over heads of the batch-mean squared TD error (q [N, B], y [B]); ``row_w`` [B] (0/1)
    leaves rows out of the mean (the batch size stays the denominator, as with the masked losses)."""
    se = (q.float() - y[None]) ** 2
    if row_w is not None:
        se = se * row_w[None].to(se.dtype)
    return se.mean(1).sum()


def online_td_target(
    b: dict[str, torch.Tensor], q_next: torch.Tensor, gamma: float, done_mask: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked TD target (Eq. 2) of replay rows, with termination separated from truncation.

    The steps of a row that exist are the first ``n_steps`` (``pad_mask``); ``done`` marks only real
    terminals, so a chunk cut by a time limit bootstraps ``gamma^L Q(s_next, a')`` from its stored next
    state (``data/replay.py``: the final observation or its stand-in), exactly as the offline chunk
    dataset does with its last observation. Returns ``(y [B], row weight [B])``: a row with neither a
    terminal nor a next state (a gap in the replanning steps) gets weight 0 instead of a terminal target.
    """
    r = b["reward"].float()
    k = r.shape[1]
    if "n_steps" in b:
        pad = torch.arange(k, device=r.device)[None] < b["n_steps"].to(r.device)[:, None]
    else:
        pad = torch.ones_like(r, dtype=torch.bool)
    dones = b["done"].bool() & pad
    nv = b["next_valid"].bool()
    y = chunk_td_target(r, dones, q_next, gamma, pad.to(r.dtype), done_mask, next_valid=nv)
    terminated = (L.validity_mask(dones, pad) * dones.to(r.dtype)).sum(1) > 0
    return y, (nv | terminated).to(r.dtype)


@register_algorithm("aloe")
class AloeOffline(OfflineAlgorithm):
    """ALOE on the consistency action expert (module docstring)."""

    expert_kind = "consistency"
    uses_critic = False  # the ensemble is built here, not by the trainer's ChunkCritic builder

    def __init__(self, cfg, vlm, expert, critic=None):
        super().__init__(cfg, vlm, expert, None)
        self.acfg = load_config(AloeConfig, _options(cfg, "algo_options"))
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

    def critic_param_groups(self):
        return [{"params": list(self.critic.parameters()), "lr": self.acfg.critic_lr, "name": "aloe_critic"}]

    def phase(self, step: int) -> str:
        return phase_for_step(step, self.cfg.ppo_start, self.acfg.critic_steps, self.acfg.actor_steps)

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
            critic_loss = _critic_mse(q, y)
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
        actor_loss = per_sample_weighted_bc(self.expert, z, prop, batch["actions_n"], batch["mask"], w)
        metrics["loss/bc_weighted"] = float(actor_loss.detach())
        return StepOutput(actor_loss, critic_loss, True, metrics)

    def after_step(self, step: int) -> None:
        if self.phase(step) in ("warmup", "critic"):
            L.soft_update(self.critic_target, self.critic, self.acfg.tau)

    def modules_to_save(self):
        out = super().modules_to_save()
        out["critic_target"] = self.critic_target
        return out


@register_objective("aloe")
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
        loss = _critic_mse(q, y, row_w)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = L_.clip_and_step(self.opt, self.q.parameters())
        L.soft_update(self.q_target, self.q, a.tau)
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
        a_hat, res = self.policy(b["z"], b["proprio"], base)
        per = _per_sample(((a_hat - b["action"].float()) ** 2).mean(-1), b["mask"].float())
        loss = (w * per).mean() + L_.cfg.residual_l2 * (res**2).mean()
        L_.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = L_.clip_and_step(L_.actor_opt, L_.actor.parameters())
        return {
            "actor/loss": float(loss.detach()),
            "actor/adv_mean": float(adv.mean()),
            "actor/w_mean": float(w.mean()),
            "actor/w_max": float(w.max()),
            "actor/grad_norm": gn,
        }

    def update(self, batch):
        a = self.acfg
        ph = phase_for_step(self.learner.step, 0, a.critic_steps, a.actor_steps)
        info = self.critic_update(batch) if ph == "critic" else self.actor_update(batch)
        info["aloe/phase"] = 1.0 if ph == "critic" else 2.0
        return info

    def extra_modules(self):
        return {"aloe_q": self.q, "aloe_q_target": self.q_target}


def _per_sample(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1/|M_b| sum_i m_{b,i} x_{b,i}`` per sample, [B]."""
    m = mask.to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)
