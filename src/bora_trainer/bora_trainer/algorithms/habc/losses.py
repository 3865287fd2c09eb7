"""HABC's losses (arXiv 2606.17043; habc-method.md; the equations are listed in ``habc/learner.py``):
efficiency targets (Eq. 2), advantages (Eq. 4), the gate (Eq. 5), raw weights (Eq. 6) and their
normalisation (Eq. 7). The weighted actor loss (Eq. 1) is ``algorithms.losses.weighted_actor_loss``."""

from __future__ import annotations

import torch

from bora_trainer.algorithms.habc.labels import KIND_DEMO, KIND_INTERVENTION, KIND_POLICY, LABEL_NONE


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
