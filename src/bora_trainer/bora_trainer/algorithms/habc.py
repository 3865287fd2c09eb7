"""HABC: Hierarchical Advantage-Weighted Behaviour Cloning (arXiv 2606.17043; /shared/papers/habc-method.md).

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
:class:`HabcConfig`. Intervention-aware labels are built by :mod:`.habc_labels`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .habc_labels import KIND_DEMO, KIND_INTERVENTION, KIND_POLICY, LABEL_NONE


@dataclass
class HabcConfig:
    """HABC hyper-parameters. [P] = stated in the paper, [I] = inferred (provisional, ablate).

    chunk_len: window length in control steps; BORA's chunk size k = 32 (paper: 50).
    min_human_share: a window is an intervention window when at least this share of its steps is
        human-controlled [P: 10 of 50 = 0.2], scaled to ``chunk_len`` (ceil(0.2 * 32) = 7 of 32).
    n_warmup: actor updates with ``g_t = 1`` before the gate is used [P: 500].
    huber_delta: Huber threshold of the efficiency loss [P: 1.0].
    intervention_reweighting: IR, use ``g_t`` on intervention windows instead of 1 [P: off in Step 1].
    ir_start_step: IR only from this update on [P: "after an initial HABC phase"; length unstated].
    unlabelled_weight: actor weight of unlabelled pre-intervention policy windows [I: 0, Sec. 8.5].
    normalize_over: D_valid of Eq. 7: "positive" = non-demo valid samples with w~ > 0 [I: Sec. 8.4,
        failed-rollout zeros do not inflate the weights]; "all" = every non-demo valid sample.
    norm_eps: the eps of ``max(c, eps)`` in Eq. 7.
    step_stride: anchor spacing of the efficiency TD (control steps per ``-1`` chain link) [I: 1, the
        next control step, Sec. 8.3]; online rollouts anchor at the recorded chunk starts instead.
    t_max: clamp efficiency targets to ``[-t_max, 0]`` (V_e lies in [-T_max, 0]); 0 disables [I].
    target_tau: Polyak rate of a target copy for ``V_e(s')`` [I: 0 = none, stop-gradient only as in the
        paper; Sec. 8.7 suggests one if training is unstable].
    demo_sources: episode ``source`` values that count as SFT demonstrations (D_SFT).
    demos_in_critic: also train both heads on successful demos [I: off in the paper; useful offline
        when the data are demonstrations only].
    freeze_action_expert: offline only: "all runs keep action-expert training disabled" (App. F) read
        literally: the actor loss updates the VLM but not the action expert. The spec proposes the literal
        reading as default (Sec. 8.2), which presumes a pretrained expert; BORA's offline phase trains the
        consistency expert from scratch in the same run, where freezing it would stop all action learning,
        so our default is False (set True when starting from a pretrained expert). Online: no effect.
    hidden, num_layers: MLP backbone of the heads [I: architecture not given].
    use_proprio: append the normalised proprio to ``z_t`` as head input.
    detach_features: heads do not back-propagate into the VLM [I: Sec. 8.1].
    lr, weight_decay: head optimiser (AdamW) [I: not given; BORA Table 3 online values].
    batch_size: [P: 256].
    """

    chunk_len: int = 32
    min_human_share: float = 0.2
    n_warmup: int = 500
    huber_delta: float = 1.0
    intervention_reweighting: bool = False
    ir_start_step: int = 0
    unlabelled_weight: float = 0.0
    normalize_over: Literal["positive", "all"] = "positive"
    norm_eps: float = 1e-6
    step_stride: int = 1
    t_max: float = 0.0
    target_tau: float = 0.0
    demo_sources: list[str] = field(default_factory=lambda: ["expert"])
    demos_in_critic: bool = False
    freeze_action_expert: bool = False
    hidden: int = 256
    num_layers: int = 2
    use_proprio: bool = True
    detach_features: bool = True
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.chunk_len < 1:
            raise ValueError(f"HabcConfig.chunk_len must be >= 1, got {self.chunk_len}")
        if not 0.0 < self.min_human_share <= 1.0:
            raise ValueError(f"HabcConfig.min_human_share must be in (0, 1], got {self.min_human_share}")
        if self.n_warmup < 0 or self.ir_start_step < 0:
            raise ValueError("HabcConfig.n_warmup and ir_start_step must be >= 0")
        if self.huber_delta <= 0:
            raise ValueError(f"HabcConfig.huber_delta must be > 0, got {self.huber_delta}")
        if self.normalize_over not in ("positive", "all"):
            raise ValueError(
                f"HabcConfig.normalize_over must be 'positive' or 'all', got {self.normalize_over!r}"
            )
        if self.step_stride < 1:
            raise ValueError(f"HabcConfig.step_stride must be >= 1, got {self.step_stride}")
        if not 0.0 <= self.target_tau <= 1.0:
            raise ValueError(f"HabcConfig.target_tau must be in [0, 1], got {self.target_tau}")
        if self.unlabelled_weight < 0:
            raise ValueError(f"HabcConfig.unlabelled_weight must be >= 0, got {self.unlabelled_weight}")


# ----------------------------------------------------------------------------------------------------
# pure functions (Eq. 2-7)


def efficiency_targets(
    v_e_next: torch.Tensor, n_steps: torch.Tensor, terminal: torch.Tensor, t_max: float = 0.0
) -> torch.Tensor:
    """Eq. 2 (with an anchor stride of ``n`` steps): ``y_e = -n + (1 - terminal) sg[V_e(s')]``.

    With ``n = 1``: ``y_e = -1 + V_e(s_{t+1})``; at the success frame (terminal, ``n = 0``) ``y_e = 0``.
    ``t_max > 0`` clamps the target to ``[-t_max, 0]``. Returns a detached [B] tensor."""
    y = -n_steps.to(v_e_next.dtype) + (1.0 - terminal.to(v_e_next.dtype)) * v_e_next.detach()
    if t_max > 0:
        y = y.clamp(-t_max, 0.0)
    return y.detach()


def habc_advantages(
    z_v: torch.Tensor,
    z_v_next: torch.Tensor,
    v_e: torch.Tensor,
    v_e_next: torch.Tensor,
    n_steps: torch.Tensor,
    terminal: torch.Tensor,
    has_target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4: ``A_v = z_v(s') - z_v(s)`` and ``A_e = -n + V_e(s') - V_e(s)`` (``n = 1`` in the paper).

    At a terminal transition (success before the next anchor) there is no ``s'``: ``A_v = 0`` [I] and
    ``A_e = -n - V_e(s)`` (the target of Eq. 2 minus ``V_e(s)``). Where ``has_target`` is False (last
    anchor of an unsuccessful episode) both are 0, so ``g_t = 1``. All outputs are detached."""
    z_v, z_v_next, v_e, v_e_next = (x.detach() for x in (z_v, z_v_next, v_e, v_e_next))
    term = terminal.to(torch.bool)
    a_v = torch.where(term, torch.zeros_like(z_v), z_v_next - z_v)
    a_e = efficiency_targets(v_e_next, n_steps, term) - v_e
    if has_target is not None:
        ok = has_target.to(torch.bool)
        a_v = torch.where(ok, a_v, torch.zeros_like(a_v))
        a_e = torch.where(ok, a_e, torch.zeros_like(a_e))
    return a_v, a_e


def habc_gate(p_v: torch.Tensor, a_v: torch.Tensor, a_e: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``g_t = 1 + tanh((1 - p_v) A_v + p_v A_e)`` in (0, 2)."""
    return 1.0 + torch.tanh((1.0 - p_v) * a_v + p_v * a_e)


def raw_weights(
    kind: torch.Tensor,
    label: torch.Tensor,
    gate: torch.Tensor,
    *,
    ir: bool = False,
    unlabelled_weight: float = 0.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 6 raw weights ``w~``: demo 1; policy window labelled success ``g_t``, labelled failure 0,
    unlabelled ``unlabelled_weight``; intervention window 1, or ``g_t`` under IR. Invalid samples 0."""
    one = torch.ones_like(gate)
    w = torch.zeros_like(gate)
    w = torch.where(kind == KIND_DEMO, one, w)
    pol = kind == KIND_POLICY
    w = torch.where(pol & (label == 1), gate, w)
    w = torch.where(pol & (label == LABEL_NONE), torch.full_like(gate, unlabelled_weight), w)
    w = torch.where(kind == KIND_INTERVENTION, gate if ir else one, w)
    if valid is not None:
        w = w * valid.to(w.dtype)
    return w


def normalize_weights(
    raw: torch.Tensor,
    kind: torch.Tensor,
    valid: torch.Tensor | None = None,
    mode: str = "positive",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Eq. 7: ``c = mean_{D_valid} w~``, ``w = w~ / max(c, eps)`` for the non-demo samples; demos keep
    their raw weight (1). D_valid = non-demo valid samples, with ``w~ > 0`` when ``mode="positive"``.
    With an empty D_valid the weights are returned unchanged."""
    if mode not in ("positive", "all"):
        raise ValueError(f"normalize_weights: mode must be 'positive' or 'all', got {mode!r}")
    nondemo = kind != KIND_DEMO
    if valid is not None:
        nondemo = nondemo & valid.to(torch.bool)
    sel = nondemo & (raw > 0) if mode == "positive" else nondemo
    n = sel.sum()
    if int(n) == 0:
        return raw.detach()
    c = (raw * sel.to(raw.dtype)).sum() / n.to(raw.dtype)
    scaled = raw / torch.clamp(c, min=eps)
    return torch.where(kind != KIND_DEMO, scaled, raw).detach()


def weighted_actor_loss(per_sample_loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ``L_pi = 1/B sum_i w_i l_i`` with detached weights."""
    if per_sample_loss.shape != weights.shape:
        raise ValueError(
            f"per-sample loss {tuple(per_sample_loss.shape)} and weights {tuple(weights.shape)} differ"
        )
    return (weights.detach() * per_sample_loss).mean()


# ----------------------------------------------------------------------------------------------------
# heads


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
            from .losses import soft_update

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


from . import habc_train as _habc_train  # noqa: E402,F401  (registers --algo habc offline and online)
