"""ALOE's critic learner: action-level off-policy evaluation for VLA post-training (arXiv 2602.12691).

* Critic: an ensemble of chunk Q heads ``Q_i(s, a_{t:t+h})``, i = 1..N, on a shared Transformer trunk
  (tokens: the cognition token ``z_t``, proprio, one token per chunk step with a learned position
  embedding, and N "Q readout" tokens), each head independently initialised; Polyak target copy.
* Current-policy chunked TD target (Eq. 2, with the done mask):
  ``y_t = sum_{i<h} gamma^i m_i r_{t+i} + gamma^h (1 - done) min_i Qbar_i(s_{t+h}, a')``,
  ``a' ~ pi(. | s_{t+h})`` sampled fresh from the current, frozen actor; ``m`` keeps the steps up to and
  including the first terminal in the chunk.
* Critic loss (Eq. 3): ``L_Q = sum_i E_D[(Q_i(s, a) - y)^2]`` over all buffer chunks.
* Pessimistic aggregation (Eq. 4): ``Q_pess = min_i Q_i``, in the target and in the advantage.
* ``V^pi(s) = 1/K sum_k Q_pess(s, a^(k))``, ``a^(k) ~ pi`` (Eq. 5); ``A = Q_pess(s, a_data) - sg[V^pi]``.
* Weight (Eq. 6): ``w = exp(clip(A / beta, -eps, eps))``, detached; actor loss (Eq. 7):
  ``L_pi = E[w l(s, a_data)]`` with ``l`` the actor's native per-sample imitation loss.
* Loop (Sec. 4): collect (with takeovers) -> critic with the actor frozen -> actor with the critic frozen.

Everything the spec marks [S] (secondary source) or [I] (inferred) is a config option of
:class:`AloeConfig` with the recommended default.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bora_trainer.algorithms.aloe.config import AloeConfig
from bora_trainer.algorithms.aloe.losses import aggregate_heads, aloe_weights, chunk_td_target
from bora_trainer.algorithms.losses import soft_update

# sample_fn(z [B, Z], proprio [B, S] | None) -> chunk [B, >=h, A] in normalised action units
SampleFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class EnsembleChunkQ(nn.Module):
    """N chunk Q heads on a shared Transformer trunk (ALOE architecture figure).

    ``forward(z [B, Z], actions [B, h, A], proprio [B, S] | None) -> [N, B]``. Tokens: ``z``, proprio,
    ``h`` action tokens (+ learned position embedding), N readout tokens; head ``i`` reads readout token
    ``i``. Heads and readout tokens are initialised independently (different random draws), so the
    ensemble disagrees off the data even though the trunk is shared."""

    def __init__(
        self,
        z_dim: int,
        action_dim: int,
        horizon: int,
        state_dim: int = 0,
        n_heads: int = 4,
        width: int = 256,
        num_layers: int = 6,
        num_attn_heads: int = 8,
        dropout: float = 0.0,
    ):
        super().__init__()
        if min(z_dim, action_dim, horizon, n_heads, width, num_layers) < 1:
            raise ValueError(
                "EnsembleChunkQ: z_dim, action_dim, horizon, n_heads, width, num_layers must be >= 1"
            )
        self.z_dim, self.action_dim, self.horizon, self.state_dim, self.n_heads = (
            z_dim,
            action_dim,
            horizon,
            state_dim,
            n_heads,
        )
        self.z_proj = nn.Linear(z_dim, width)
        self.s_proj = nn.Linear(state_dim, width) if state_dim else None
        self.a_proj = nn.Linear(action_dim, width)
        self.pos = nn.Parameter(torch.randn(horizon, width) * 0.02)
        self.readout = nn.Parameter(torch.randn(n_heads, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, num_attn_heads, 4 * width, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.trunk = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.heads = nn.ModuleList([nn.Linear(width, 1) for _ in range(n_heads)])

    def forward(
        self, z: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"EnsembleChunkQ: z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        if actions.dim() != 3 or actions.shape[2] != self.action_dim or actions.shape[1] < self.horizon:
            raise ValueError(
                f"EnsembleChunkQ: actions must be [B, >={self.horizon}, {self.action_dim}], "
                f"got {tuple(actions.shape)}"
            )
        B = z.shape[0]
        dt = self.z_proj.weight.dtype
        toks = [self.z_proj(z.to(dt))[:, None]]
        if self.s_proj is not None:
            if proprio is None:
                raise ValueError("EnsembleChunkQ: built with state_dim > 0 but proprio is None")
            toks.append(self.s_proj(proprio.to(dt))[:, None])
        toks.append(self.a_proj(actions[:, : self.horizon].to(dt)) + self.pos)
        toks.append(self.readout.expand(B, -1, -1))
        h = self.norm(self.trunk(torch.cat(toks, dim=1)))[:, -self.n_heads :]
        return torch.stack([head(h[:, i]).squeeze(-1) for i, head in enumerate(self.heads)], dim=0)


@dataclass
class AloeBatch:
    """A batch of logged chunks (normalised units).

    z, next_z: [B, Z] cognition tokens at the chunk start ``s_t`` and after the chunk ``s_{t+h}``.
    proprio, next_proprio: [B, S] or None. actions: [B, >=h, A] the logged (executed) chunk.
    rewards, dones: [B, h] per-step rewards and terminal flags of the logged chunk.
    pad_mask: [B, h] steps that exist (None = all). next_valid: [B] a state after the chunk was logged.
    """

    z: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    next_z: torch.Tensor
    proprio: torch.Tensor | None = None
    next_proprio: torch.Tensor | None = None
    pad_mask: torch.Tensor | None = None
    next_valid: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> AloeBatch:
        kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return AloeBatch(**kw)


class AloeLearner:
    """The ALOE critic (ensemble + target) and the advantage weights for the actor.

    Stage 2 (critic, actor frozen): :meth:`critic_step` with ``sample_fn`` = the frozen actor.
    Stage 3 (actor, critic frozen): ``w, stats = learner.weights(batch, sample_fn)`` then
    ``(w * per_sample_actor_loss).mean()``. The actor and its optimiser belong to the trainer."""

    def __init__(
        self,
        cfg: AloeConfig,
        z_dim: int,
        action_dim: int,
        chunk_len: int,
        state_dim: int = 0,
        device: str | torch.device = "cpu",
    ):
        self.cfg = cfg
        self.h = cfg.horizon or chunk_len
        if self.h > chunk_len:
            raise ValueError(f"AloeConfig.horizon={cfg.horizon} exceeds the chunk length {chunk_len}")
        self.device = torch.device(device)
        self.critic = EnsembleChunkQ(
            z_dim,
            action_dim,
            self.h,
            state_dim,
            cfg.n_heads,
            cfg.width,
            cfg.num_layers,
            cfg.num_attn_heads,
            cfg.dropout,
        ).to(self.device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.weight_decay
        )

    @torch.no_grad()
    def td_target(self, b: AloeBatch, sample_fn: SampleFn) -> torch.Tensor:
        """Eq. 2 with ``a' ~ pi(. | s_{t+h})`` drawn fresh from ``sample_fn`` (the frozen current actor)."""
        qs = []
        for _ in range(self.cfg.target_samples):
            a_next = sample_fn(b.next_z, b.next_proprio)
            qs.append(
                aggregate_heads(self.target(b.next_z, a_next, b.next_proprio), self.cfg.target_aggregate)
            )
        q_next = torch.stack(qs).mean(0).float()
        h = self.h
        pad = None if b.pad_mask is None else b.pad_mask[:, :h]
        return chunk_td_target(
            b.rewards[:, :h].float(),
            b.dones[:, :h],
            q_next,
            self.cfg.gamma,
            pad,
            self.cfg.done_mask,
            b.next_valid,
        )

    def critic_loss(self, b: AloeBatch, sample_fn: SampleFn) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3: ``sum_i mean_B (Q_i(s, a) - y)^2`` (each head on its bootstrap subset when enabled)."""
        y = self.td_target(b, sample_fn)
        q = self.critic(b.z, b.actions, b.proprio).float()  # [N, B]
        err = (q - y[None]) ** 2
        if self.cfg.head_bootstrap_p < 1.0:
            keep = (torch.rand_like(err) < self.cfg.head_bootstrap_p).to(err.dtype)
            per_head = (err * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        else:
            per_head = err.mean(1)
        loss = per_head.sum()
        qd = q.detach()
        stats = {
            "aloe/critic_loss": float(loss.detach()) / q.shape[0],
            "aloe/q_mean": float(qd.mean()),
            "aloe/q_head_std": float(qd.std(0).mean()) if q.shape[0] > 1 else 0.0,
            "aloe/target_mean": float(y.mean()),
        }
        return loss, stats

    def critic_step(self, b: AloeBatch, sample_fn: SampleFn) -> dict[str, float]:
        loss, stats = self.critic_loss(b, sample_fn)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        soft_update(self.target, self.critic, self.cfg.tau)
        return stats

    @torch.no_grad()
    def value(self, z: torch.Tensor, proprio: torch.Tensor | None, sample_fn: SampleFn) -> torch.Tensor:
        """Eq. 5: ``V^pi(s) = 1/K sum_k Q_pess(s, a^(k))`` with K fresh samples from the actor."""
        vals = [
            aggregate_heads(self.critic(z, sample_fn(z, proprio), proprio), self.cfg.advantage_aggregate)
            for _ in range(self.cfg.n_value_samples)
        ]
        return torch.stack(vals).mean(0).float()

    @torch.no_grad()
    def advantage(self, b: AloeBatch, sample_fn: SampleFn) -> torch.Tensor:
        """``A = Q_pess(s, a_data) - sg[V^pi(s)]`` (Eq. 5), [B]."""
        q = aggregate_heads(self.critic(b.z, b.actions, b.proprio), self.cfg.advantage_aggregate).float()
        return q - self.value(b.z, b.proprio, sample_fn)

    @torch.no_grad()
    def weights(self, b: AloeBatch, sample_fn: SampleFn) -> tuple[torch.Tensor, dict[str, float]]:
        """Detached actor weights ``w = exp(clip(A/beta, -eps, eps))`` (Eq. 6) and statistics."""
        adv = self.advantage(b, sample_fn)
        w = aloe_weights(adv, self.cfg.beta, self.cfg.weight_clip, self.cfg.weight_form)
        cap = math.exp(self.cfg.weight_clip)
        return w, {
            "aloe/adv_mean": float(adv.mean()),
            "aloe/adv_std": float(adv.std()) if adv.numel() > 1 else 0.0,
            "aloe/w_mean": float(w.mean()),
            "aloe/w_at_cap": float((w >= cap * (1 - 1e-6)).float().mean()),
        }

    def state_dict(self) -> dict:
        return {
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "opt": self.opt.state_dict(),
        }

    def load_state_dict(self, sd: dict) -> None:
        self.critic.load_state_dict(sd["critic"])
        self.target.load_state_dict(sd["target"])
        if "opt" in sd:
            self.opt.load_state_dict(sd["opt"])


@dataclass
class LoopStats:
    iteration: int
    collected: int
    critic: dict[str, float]
    actor: dict[str, float]


def run_aloe_loop(
    cfg: AloeConfig,
    learner: AloeLearner,
    *,
    collect: Callable[[int], int],
    sample_batch: Callable[[], AloeBatch],
    sample_fn: SampleFn,
    actor_step: Callable[[AloeBatch, torch.Tensor], dict[str, float]],
    iterations: int | None = None,
    progress: Callable[[LoopStats], None] | None = None,
) -> list[LoopStats]:
    """The three-stage ALOE loop (Sec. 4), repeated ``iterations`` times:

    1. ``collect(i)`` rolls the current actor out (with takeovers) into the buffer; returns #episodes.
    2. Off-policy critic estimation, actor frozen: ``cfg.critic_steps`` of :meth:`AloeLearner.critic_step`
       (``sample_fn`` must run the actor without gradients).
    3. Policy improvement, critic frozen: ``cfg.actor_steps`` of ``actor_step(batch, weights)``.
    """
    if cfg.critic_steps < 1 or cfg.actor_steps < 1:
        raise ValueError(
            "run_aloe_loop: AloeConfig.critic_steps and actor_steps must be set (>= 1); 0 derives them from a "
            "training run's update budget, which this loop does not have"
        )
    out = []
    for i in range(iterations if iterations is not None else cfg.iterations):
        n = collect(i)
        c_stats: dict[str, float] = {}
        learner.critic.train()
        for _ in range(cfg.critic_steps):
            c_stats = learner.critic_step(sample_batch(), sample_fn)
        learner.critic.eval()
        a_stats: dict[str, float] = {}
        for _ in range(cfg.actor_steps):
            b = sample_batch()
            w, ws = learner.weights(b, sample_fn)
            a_stats = {**ws, **actor_step(b, w)}
        st = LoopStats(i, n, c_stats, a_stats)
        out.append(st)
        if progress is not None:
            progress(st)
    return out
