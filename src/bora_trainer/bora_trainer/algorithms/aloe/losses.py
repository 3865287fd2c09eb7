"""ALOE's losses and schedules (arXiv 2602.12691; aloe-method.md; equations in ``aloe/learner.py``).

Pure functions of tensors: head aggregation (Eq. 4), the chunked TD targets offline (Eq. 2) and on the
online replay rows, the advantage weights (Eq. 6), the weighted BC of the action expert (Eq. 7), the
critic loss (Eq. 3) and the critic/actor alternation.
"""

from __future__ import annotations

import math

import torch

from bora_trainer.algorithms.losses import validity_mask


def aggregate_heads(q: torch.Tensor, mode: str = "min") -> torch.Tensor:
    """Eq. 4: ``Q_pess = min_i Q_i`` over the head dimension 0 of ``q`` [N, B] ("mean" = ensemble mean)."""
    if q.dim() != 2:
        raise ValueError(f"aggregate_heads: expected [N, B] head values, got {tuple(q.shape)}")
    if mode == "min":
        return q.min(dim=0).values
    if mode == "mean":
        return q.mean(dim=0)
    raise ValueError(f"aggregate_heads: mode must be 'min' or 'mean', got {mode!r}")


def chunk_td_target(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    q_next: torch.Tensor,
    gamma: float,
    pad_mask: torch.Tensor | None = None,
    done_mask: bool = True,
    next_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 2 current-policy chunked TD target (detached), for the logged chunk's rewards.

    ``rewards``, ``dones`` [B, h]; ``q_next`` [B] = the aggregated target heads at ``(s_{t+L}, a')``;
    ``pad_mask`` [B, h] marks steps that exist (a chunk cut by the episode end has ``L < h`` of them).
    With ``done_mask``: ``y = sum_i gamma^i m_i r_{t+i} + gamma^L (1 - d) q_next`` where ``m`` keeps the steps
    up to and including the first terminal and ``d = 1`` if a terminal lies in the chunk; without it
    (the v1 form) ``y = sum_i gamma^i pad_i r_{t+i} + gamma^L q_next``. ``next_valid`` [B] = 0 drops the
    bootstrap (no state after the chunk was logged)."""
    if rewards.dim() != 2 or dones.shape != rewards.shape:
        raise ValueError(
            f"chunk_td_target: rewards {tuple(rewards.shape)} and dones {tuple(dones.shape)} "
            "must both be [B, h]"
        )
    if q_next.shape != rewards.shape[:1]:
        raise ValueError(
            f"chunk_td_target: q_next must be [B]={tuple(rewards.shape[:1])}, got {tuple(q_next.shape)}"
        )
    B, h = rewards.shape
    pad = torch.ones_like(rewards) if pad_mask is None else pad_mask.to(rewards.dtype)
    disc = gamma ** torch.arange(h, dtype=rewards.dtype, device=rewards.device)
    if done_mask:
        m = validity_mask(dones, pad)
        terminated = ((dones.to(rewards.dtype) * m).sum(dim=1) > 0).to(rewards.dtype)
    else:
        m = pad
        terminated = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    ret = (rewards * m * disc).sum(dim=1)
    boot_disc = gamma ** pad.sum(dim=1)
    boot = boot_disc * (1.0 - terminated) * q_next.detach().to(rewards.dtype)
    if next_valid is not None:
        boot = boot * next_valid.to(rewards.dtype)
    return (ret + boot).detach()


def aloe_weights(adv: torch.Tensor, beta: float, eps: float, form: str = "exp_clip") -> torch.Tensor:
    """Eq. 6 advantage weights, detached: ``exp(clip(A/beta, -eps, eps))`` ("exp_clip", recommended) or
    ``clip(exp(A/beta), 0, exp(eps))`` ("clip_exp")."""
    a = adv.detach() / beta
    if form == "exp_clip":
        return torch.exp(a.clamp(-eps, eps))
    if form == "clip_exp":
        return torch.exp(a).clamp(0.0, math.exp(eps))
    raise ValueError(f"aloe_weights: form must be 'exp_clip' or 'clip_exp', got {form!r}")


def per_sample_weighted_bc(
    expert,
    z: torch.Tensor,
    proprio: torch.Tensor | None,
    actions_norm: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """``1/B sum_b w_b l_b`` with ``l_b`` the action expert's own masked BC loss of sample b (Eq. 7 of ALOE,
    Eq. 1 of HABC), in ONE call of ``expert.bc_loss`` (its noise draws and curriculum counter advance once).

    If ``bc_loss`` accepts ``reduction="none"`` (a [B] result) that is used. Otherwise the weight enters
    through the mask: ``ActionExpert._masked_mean`` computes ``sum_i m_i x_i / max(sum_i m_i, 1)`` per
    sample, so the mask ``m'_b = c w_b m_b / |M_b|`` with ``c w_b <= 1`` gives ``c w_b l_b`` exactly
    (``c = 1 / max w``), and dividing by ``c`` restores the scale."""
    import inspect

    w = weights.detach().to(torch.float32)
    m = mask.to(torch.float32)
    if "reduction" in inspect.signature(expert.bc_loss).parameters:
        per = expert.bc_loss(z, proprio, actions_norm, m, reduction="none")
        return (w * per).mean()
    c = 1.0 / float(w.max().clamp_min(1e-12)) / (1.0 + 1e-6)
    m_w = m * (c * w / m.sum(1).clamp_min(1.0))[:, None]
    return expert.bc_loss(z, proprio, actions_norm, m_w) / c



def stage_lengths(budget: int, iterations: int, critic_steps: int = 0, actor_steps: int = 0) -> tuple[int, int]:
    """``(critic_steps, actor_steps)`` of ALOE's loop for ``budget`` updates of critic and actor stages.

    A stage given as 0 is derived from the run (ours; the paper gives no count): ``budget`` split into
    ``iterations`` loops of a critic and an actor stage of equal length, ``max(1, budget // (2 iterations))``.
    E.g. the demo's offline row: 500 updates, ppo_start 286 -> budget 214, 5 iterations -> 21 and 21; Table 3's
    online cap of 15k updates per round -> 1500 and 1500. A stage given explicitly is kept.
    """
    auto = max(1, int(budget) // (2 * int(iterations)))
    return (int(critic_steps) or auto, int(actor_steps) or auto)


def phase_for_step(step: int, warmup: int, critic_steps: int, actor_steps: int) -> str:
    """ "warmup" (BC actor + critic) before ``warmup``; then cycles of "critic" then "actor" updates."""
    if step < warmup:
        return "warmup"
    cyc = critic_steps + actor_steps
    if cyc <= 0:
        raise ValueError("AloeConfig.critic_steps + actor_steps must be > 0")
    return "critic" if (step - warmup) % cyc < critic_steps else "actor"


def critic_mse(q: torch.Tensor, y: torch.Tensor, row_w: torch.Tensor | None = None) -> torch.Tensor:
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
    terminated = (validity_mask(dones, pad) * dones.to(r.dtype)).sum(1) > 0
    return y, (nv | terminated).to(r.dtype)


def per_sample_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1/|M_b| sum_i m_{b,i} x_{b,i}`` per sample, [B]."""
    m = mask.to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)
