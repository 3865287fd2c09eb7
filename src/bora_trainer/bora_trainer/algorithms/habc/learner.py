"""HABC's learner: Hierarchical Advantage-Weighted Behaviour Cloning (arXiv 2606.17043; habc-method.md).

Two critic heads on a shared backbone over the (detached) state features ``phi(s) = [z_t, proprio]``:

* viability ``z_v = f_v(phi(s))``, ``p_v = sigmoid(z_v)`` ~ P(success | s) under the current policy,
  trained with BCE on labelled policy windows (D_auto^lab, Eq. 3);
* efficiency ``V_e = f_e(phi(s))`` ~ minus the steps to success, trained with Huber(delta=1) on the
  undiscounted one-step TD target ``y_e = 0`` at the success frame, else ``-1 + sg[V_e(s_{t+1})]``
  (Eq. 2) over D_succ = successful policy windows + successful intervention windows.

Advantages (detached, Eq. 4): ``A_v = z_v(s') - z_v(s)`` (logit space), ``A_e = -1 + V_e(s') - V_e(s)``.
Gate (Eq. 5): ``g_t = 1 + tanh((1 - p_v(s)) A_v + p_v(s) A_e)`` in (0, 2); ``g_t = 1`` during warm-up.
Raw weights (Eq. 6): successful rollout ``g_t``, failed rollout 0, demo 1, intervention 1 (or ``g_t``
with intervention reweighting, IR). Normalisation (Eq. 7): ``w = w~ / max(mean_{D_valid} w~, eps)`` over
the non-demo samples. Actor loss (Eq. 1): ``L_pi = 1/B sum_i w_i l_i`` with ``l_i`` the actor's own
per-sample imitation loss (the consistency expert's BC loss offline, the residual actor's chunk
regression online).

Points the spec marks [I] (inferred) are config options with the recommended default; see
:class:`HabcConfig`. Intervention-aware labels are built by :mod:`.labels`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bora_trainer.algorithms.habc.config import HabcConfig
from bora_trainer.algorithms.habc.labels import KIND_DEMO, KIND_INTERVENTION, KIND_POLICY, LABEL_NONE
from bora_trainer.algorithms.habc.losses import (
    efficiency_targets,
    habc_advantages,
    habc_gate,
    normalize_weights,
    raw_weights,
)
from bora_trainer.algorithms.losses import soft_update


class HabcHeads(nn.Module):
    """Shared MLP backbone ``phi`` with the viability logit head ``f_v`` and the efficiency head ``f_e``."""

    def __init__(self, in_dim: int, hidden: int = 256, num_layers: int = 2):
        super().__init__()
        if in_dim < 1 or hidden < 1 or num_layers < 1:
            raise ValueError(
                f"HabcHeads: in_dim, hidden, num_layers must be >= 1, got {in_dim}, {hidden}, {num_layers}"
            )
        layers: list[nn.Module] = [nn.LayerNorm(in_dim)]
        d = in_dim
        for _ in range(num_layers):
            layers += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        self.backbone = nn.Sequential(*layers)
        self.f_v = nn.Linear(hidden, 1)
        self.f_e = nn.Linear(hidden, 1)
        self.in_dim = in_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [B, in_dim] -> (viability logit ``z_v`` [B], efficiency value ``V_e`` [B])."""
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"HabcHeads: expected [B, {self.in_dim}] features, got {tuple(x.shape)}")
        h = self.backbone(x)
        return self.f_v(h).squeeze(-1), self.f_e(h).squeeze(-1)


@dataclass
class HabcBatch:
    """One HABC sample per window anchor (all tensors share the leading batch size B).

    z, next_z: [B, z_dim] cognition tokens at the anchor and at the next anchor (any value where
        ``has_target`` is False or ``terminal`` is True).
    proprio, next_proprio: [B, state_dim] normalised proprio, or None.
    kind: [B] long (habc_labels.KIND_*); label: [B] long (1/0/-1); in_succ: [B] bool (D_succ).
    n_steps: [B] steps to the next anchor (or to the success frame); terminal, has_target: [B] bool.
    valid: [B] bool mask of real samples (padding = False), or None for all valid.
    """

    z: torch.Tensor
    next_z: torch.Tensor
    kind: torch.Tensor
    label: torch.Tensor
    in_succ: torch.Tensor
    n_steps: torch.Tensor
    terminal: torch.Tensor
    has_target: torch.Tensor
    proprio: torch.Tensor | None = None
    next_proprio: torch.Tensor | None = None
    valid: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> HabcBatch:
        kw = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return HabcBatch(**kw)


class HabcLearner:
    """Owns the two heads (and their optimiser); computes the critic loss and the actor weights.

    The trainer owns the actor: per update it calls :meth:`critic_step` and then
    ``weighted_actor_loss(per_sample_actor_loss, learner.weights(batch, step)[0])`` (Algorithm 1)."""

    def __init__(self, cfg: HabcConfig, z_dim: int, state_dim: int = 0, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.state_dim = state_dim if cfg.use_proprio else 0
        self.heads = HabcHeads(z_dim + self.state_dim, cfg.hidden, cfg.num_layers).to(device)
        self.target = copy.deepcopy(self.heads).requires_grad_(False) if cfg.target_tau > 0 else None
        self.opt = torch.optim.AdamW(self.heads.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.device = torch.device(device)

    def features(self, z: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        x = z
        if self.state_dim:
            if proprio is None:
                raise ValueError("HabcLearner: use_proprio is on but the batch has no proprio")
            x = torch.cat([z, proprio.to(z.dtype)], dim=-1)
        x = x.float()
        return x.detach() if self.cfg.detach_features else x

    def critic_loss(self, b: HabcBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3: ``BCE(z_v, y)`` on labelled policy windows + ``Huber_delta(V_e, y_e)`` on D_succ."""
        valid = torch.ones_like(b.in_succ, dtype=torch.bool) if b.valid is None else b.valid.to(torch.bool)
        z_v, v_e = self.heads(self.features(b.z, b.proprio))
        with torch.no_grad():
            nxt = self.target if self.target is not None else self.heads
            _, v_e_next = nxt(self.features(b.next_z, b.next_proprio))
        lab = valid & (b.label != LABEL_NONE) & ((b.kind == KIND_POLICY) | (b.kind == KIND_DEMO))
        eff = valid & b.in_succ.to(torch.bool) & b.has_target.to(torch.bool)
        zero = z_v.sum() * 0.0
        l_v = F.binary_cross_entropy_with_logits(z_v[lab], b.label[lab].float()) if lab.any() else zero
        y_e = efficiency_targets(v_e_next, b.n_steps, b.terminal, self.cfg.t_max)
        l_e = F.huber_loss(v_e[eff], y_e[eff], delta=self.cfg.huber_delta) if eff.any() else zero
        stats = {
            "habc/loss_viability": float(l_v.detach()),
            "habc/loss_efficiency": float(l_e.detach()),
            "habc/n_labelled": float(lab.sum()),
            "habc/n_succ": float(eff.sum()),
        }
        return l_v + l_e, stats

    def critic_step(self, b: HabcBatch) -> dict[str, float]:
        loss, stats = self.critic_loss(b)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.target is not None:
            soft_update(self.target, self.heads, self.cfg.target_tau)
        return stats

    @torch.no_grad()
    def gate(self, b: HabcBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(g_t, p_v, A_v, A_e)`` from the detached heads (Eq. 4-5)."""
        z_v, v_e = self.heads(self.features(b.z, b.proprio))
        z_v_n, v_e_n = self.heads(self.features(b.next_z, b.next_proprio))
        a_v, a_e = habc_advantages(z_v, z_v_n, v_e, v_e_n, b.n_steps, b.terminal, b.has_target)
        p_v = torch.sigmoid(z_v)
        return habc_gate(p_v, a_v, a_e), p_v, a_v, a_e

    @torch.no_grad()
    def weights(self, b: HabcBatch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Normalised actor weights for update ``step`` (Algorithm 1 steps 4-5): ``g_t = 1`` while
        ``step < n_warmup``; IR from ``ir_start_step`` when enabled."""
        cfg = self.cfg
        if step < cfg.n_warmup:
            g = torch.ones(b.kind.shape[0], device=b.kind.device)
            p_v = a_v = a_e = None
        else:
            g, p_v, a_v, a_e = self.gate(b)
        ir = cfg.intervention_reweighting and step >= cfg.ir_start_step
        raw = raw_weights(b.kind, b.label, g, ir=ir, unlabelled_weight=cfg.unlabelled_weight, valid=b.valid)
        w = normalize_weights(raw, b.kind, b.valid, cfg.normalize_over, cfg.norm_eps)
        stats: dict[str, float] = {"habc/w_mean": float(w.mean()), "habc/w_max": float(w.max())}
        succ = (b.kind == KIND_POLICY) & (b.label == 1)
        if p_v is not None:
            if succ.any():
                stats["habc/gate_succ_mean"] = float(g[succ].mean())
                stats["habc/p_v_succ_mean"] = float(p_v[succ].mean())
            ints = b.kind == KIND_INTERVENTION
            if ints.any():
                stats["habc/gate_int_mean"] = float(g[ints].mean())
        return w, stats

    def state_dict(self) -> dict:
        sd = {"heads": self.heads.state_dict(), "opt": self.opt.state_dict()}
        if self.target is not None:
            sd["target"] = self.target.state_dict()
        return sd

    def load_state_dict(self, sd: dict) -> None:
        self.heads.load_state_dict(sd["heads"])
        if "opt" in sd:
            self.opt.load_state_dict(sd["opt"])
        if self.target is not None and "target" in sd:
            self.target.load_state_dict(sd["target"])
