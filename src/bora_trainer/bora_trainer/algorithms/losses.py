"""Losses shared by the methods, as pure torch functions (BORA Sec. 3.1, Appendix A and B: Eq. 1-5).

Shapes: ``B`` samples, chunk length ``k``. Every per-step quantity is ``[B, k]``, where position
``i`` of row ``t`` refers to control step ``t + i``. ``mask`` is the validity mask ``m_{t,i}`` (1 for
steps that count). All "masked means" use the paper's per-sample normalisation ``1/|M_t|`` with
``|M_t| = sum_i m_{t,i}`` followed by a mean over the batch; rows with ``|M_t| = 0`` contribute 0
(they are clamped to 1 in the denominator) but still count in the batch mean, so a loss does not
depend on how a global batch is split between processes.

``reduce`` arguments take an optional callable ``f(tensor) -> tensor`` that sums a tensor over data
parallel processes (e.g. ``all_reduce(SUM)``). It is used where a statistic is pooled over the
batch (advantage normalisation, the gate), so that N processes with B samples each compute the same
value as one process with the global N*B batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Reduce = Callable[[torch.Tensor], torch.Tensor] | None


def _check_bk(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name}: expected a [B, k] tensor, got shape {tuple(x.shape)}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name}: shape {tuple(x.shape)} does not match {tuple(like.shape)}")


def validity_mask(dones: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Validity mask ``m_{t,i}`` of Appendix A (Eq. 3-4): steps up to AND including the first terminal.

    ``dones`` [B, k] (bool or 0/1) are the terminal flags ``d_{t+i}``; ``pad_mask`` [B, k] marks the
    steps that exist in the episode (0 for padding of chunks that run past the episode end). Returns a
    float [B, k] mask: ``m_{t,i} = pad_{t,i} * prod_{j<i} (1 - d_{t+j})``.
    """
    _check_bk("dones", dones)
    d = dones.to(torch.float32)
    # number of terminals strictly before position i: exclusive cumulative sum
    before = torch.cumsum(d, dim=1) - d
    m = (before == 0).to(torch.float32)
    if pad_mask is not None:
        _check_bk("pad_mask", pad_mask, dones)
        m = m * pad_mask.to(torch.float32)
    return m


def shifted_bootstrap_targets(
    rewards: torch.Tensor, dones: torch.Tensor, v_cur: torch.Tensor, v_next0: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Eq. (1) shifted value bootstrap inside a chunk.

    ``y_{t,i} = r_{t+i} + gamma (1 - d_{t+i}) v(z_t, i+1)`` for ``i < k-1`` and
    ``y_{t,k-1} = r_{t+k-1} + gamma (1 - d_{t+k-1}) v(z_{t+1}, 0)``, where ``z_{t+1}`` is the token of the
    observation that follows the chunk (step ``t+k``).

    ``rewards``, ``dones``, ``v_cur`` are [B, k] (``v_cur[:, i] = v(z_t, i)``, from the target value net);
    ``v_next0`` is [B]. The result carries no gradient (targets are constants of Eq. 3).
    """
    _check_bk("rewards", rewards)
    _check_bk("dones", dones, rewards)
    _check_bk("v_cur", v_cur, rewards)
    if v_next0.shape != rewards.shape[:1]:
        raise ValueError(f"v_next0: expected shape {tuple(rewards.shape[:1])}, got {tuple(v_next0.shape)}")
    boot = torch.cat([v_cur[:, 1:], v_next0[:, None]], dim=1)
    not_done = 1.0 - dones.to(rewards.dtype)
    return (rewards + gamma * not_done * boot.to(rewards.dtype)).detach()


def mc_mixed_targets(y_td: torch.Tensor, returns: torch.Tensor | None, weight: float) -> torch.Tensor:
    """``(1 - w) y_td + w G`` (``OfflineConfig.critic_mc_weight``, ours): Eq. 1's target blended with the
    steps' Monte-Carlo returns-to-go ``G`` [B, k]. ``w = 0`` returns ``y_td`` itself (Eq. 1 exactly)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"critic_mc_weight must be in [0, 1], got {weight}")
    if weight == 0.0:
        return y_td
    if returns is None:
        raise ValueError("critic_mc_weight > 0 needs the batch's 'returns' (ChunkDataset samples carry them)")
    _check_bk("returns", returns, y_td)
    return ((1.0 - weight) * y_td + weight * returns.to(y_td.dtype)).detach()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``E_t[ 1/|M_t| sum_i m_{t,i} x_{t,i} ]``: per-sample normalised masked mean, then batch mean."""
    _check_bk("x", x)
    _check_bk("mask", mask, x)
    m = mask.to(x.dtype)
    per_sample = (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
    return per_sample.mean()


def masked_bellman_loss(q: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (3): ``L_Q = E[ 1/|M_t| sum_i m_{t,i} (q_{t,i} - y_{t,i})^2 ]`` (``y`` treated as constant)."""
    _check_bk("q", q)
    _check_bk("y", y, q)
    return masked_mean((q - y.detach()) ** 2, mask)


def expectile_value_loss(q: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. (4): ``L_V = E[ 1/|M_t| sum_i m_{t,i} |tau - 1[q - v < 0]| (q - v)^2 ]``; q is stop-gradient."""
    if not 0.0 < tau < 1.0:
        raise ValueError(f"expectile tau must be in (0, 1), got {tau}")
    _check_bk("q", q)
    _check_bk("v", v, q)
    diff = q.detach() - v
    weight = torch.abs(tau - (diff < 0).to(v.dtype))
    return masked_mean(weight * diff**2, mask)


def action_level_gae(
    q: torch.Tensor,
    v: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Intra-chunk action-level GAE (Sec. 3.1): ``A_{t,i} = delta_{t,i} + gamma lam (1 - d_{t+i}) A_{t,i+1}``.

    ``delta_{t,i} = q_{t,i} - v_{t,i}`` and ``A_{t,k} = 0``. With ``mask`` given, invalid steps get
    ``delta = 0`` and do not propagate into earlier steps (padding past the episode end); steps after a
    terminal are already cut by ``(1 - d)``. Returns a detached [B, k] tensor.
    """
    _check_bk("q", q)
    _check_bk("v", v, q)
    _check_bk("dones", dones, q)
    delta = (q - v).detach()
    cont = gamma * lam * (1.0 - dones.to(delta.dtype))
    if mask is not None:
        _check_bk("mask", mask, q)
        m = mask.to(delta.dtype)
        delta = delta * m
    k = q.shape[1]
    adv = torch.zeros_like(delta)
    nxt = torch.zeros_like(delta[:, 0])
    for i in range(k - 1, -1, -1):
        if mask is not None and i + 1 < k:
            nxt = nxt * m[:, i + 1]
        nxt = delta[:, i] + cont[:, i] * nxt
        adv[:, i] = nxt
    return adv


def normalize_advantages(
    adv: torch.Tensor, mask: torch.Tensor, clip: float = 2.0, eps: float = 1e-6, reduce: Reduce = None
) -> torch.Tensor:
    """Masked standardisation ``(A - mean) / (std + eps)`` over all valid steps, then ``clip`` to
    ``[-clip, clip]`` (Table 3 "Advantage Normalization Clip" 2.0). Invalid steps are set to 0.
    ``std`` is the population standard deviation of the valid entries."""
    _check_bk("adv", adv)
    _check_bk("mask", mask, adv)
    m = mask.to(adv.dtype)
    stats = torch.stack([(adv * m).sum(), (adv * adv * m).sum(), m.sum()]).detach()
    if reduce is not None:
        stats = reduce(stats)
    n = stats[2].clamp_min(1.0)
    mean = stats[0] / n
    var = (stats[1] / n - mean**2).clamp_min(0.0)
    out = (adv - mean) / (var.sqrt() + eps)
    if clip is not None and clip > 0:
        out = out.clamp(-clip, clip)
    return out * m


def clipped_ppo_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps: float = 0.2,
    dual_clip: float = 0.0,
) -> torch.Tensor:
    """Eq. (2) validity-masked clipped surrogate:
    ``L_PPO = -E[ 1/|M_t| sum_i m_{t,i} min(r_{t,i} A_{t,i}, clip(r_{t,i}, 1-eps, 1+eps) A_{t,i}) ]``
    with ``r_{t,i} = exp(logp_new - logp_old)`` (``logp_old`` and ``adv`` are constants).

    ``dual_clip`` = c > 1 (ours, off by default: Eq. 2 exactly): for A < 0 the surrogate is bounded
    below by ``c * A`` (dual-clip PPO, Ye et al. 2020), so a stale reference with a huge ratio (a
    per-step Gaussian over many action dims: r = exp(sum of per-dim log ratios)) cannot produce an
    unbounded gradient."""
    _check_bk("logp_new", logp_new)
    _check_bk("logp_old", logp_old, logp_new)
    _check_bk("adv", adv, logp_new)
    adv = adv.detach()
    # masked-out entries may hold arbitrary log-probs (padding): keep exp() finite there
    m = mask.to(logp_new.dtype)
    log_ratio = (logp_new - logp_old.detach()) * m
    ratio = torch.exp(log_ratio)
    surr = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - eps, 1.0 + eps) * adv)
    if dual_clip:
        if dual_clip <= 1.0:
            raise ValueError(f"clipped_ppo_loss: dual_clip must be > 1 (or 0 = off), got {dual_clip}")
        surr = torch.where(adv < 0, torch.maximum(surr, dual_clip * adv), surr)
    return -masked_mean(surr, mask)


def bc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Behaviour cloning on normalised chunks: ``E[ 1/|M_t| sum_i m_{t,i} mean_d (pred - target)^2 ]``.

    ``pred``, ``target``: [B, k, A] normalised actions; ``mask``: [B, k]."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(
            f"bc_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} must be equal [B,k,A]"
        )
    return masked_mean(((pred - target) ** 2).mean(dim=-1), mask)


def chunk_mean_advantage(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. (5): ``A_bar_t = 1/|M_t| sum_i m_{t,i} A_{t,i}`` per sample, [B]."""
    _check_bk("adv", adv)
    _check_bk("mask", mask, adv)
    m = mask.to(adv.dtype)
    return (adv * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def advantage_gate(
    adv: torch.Tensor, mask: torch.Tensor, margin: float = 0.0, reduce: Reduce = None
) -> tuple[bool, torch.Tensor]:
    """Advantage gate of Appendix B.1. The batch score is the mean over samples of Eq. (5) ``A_bar_t``;
    the actor update is allowed iff ``score > margin`` (``delta_OPE``, Table 3: 0.0). The critic update
    is never gated (the caller always steps it). Returns ``(open, score)``."""
    a_bar = chunk_mean_advantage(adv.detach(), mask)
    stats = torch.stack(
        [a_bar.sum(), torch.tensor(float(a_bar.numel()), dtype=a_bar.dtype, device=a_bar.device)]
    )
    if reduce is not None:
        stats = reduce(stats)
    score = stats[0] / stats[1].clamp_min(1.0)
    return bool(score.item() > margin), score


GATE_SCOPES = ("batch", "ppo_chunk", "off")


def gated_ppo_bc_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    gate_adv: torch.Tensor,
    mask: torch.Tensor,
    bc: torch.Tensor,
    scope: str = "batch",
    margin: float = 0.0,
    lambda_ppo: float = 0.01,
    lambda_bc: float = 1.0,
    eps: float = 0.2,
    dual_clip: float = 0.0,
    reduce: Reduce = None,
) -> tuple[torch.Tensor, bool, torch.Tensor, dict[str, float]]:
    """Stage-2 actor loss ``lambda_ppo L_PPO + lambda_bc L_BC`` (Appendix B.2) with the advantage gate of
    Appendix B.1 (Eq. 5, "optionally") applied at ``scope``:

    * ``"batch"`` (the paper's literal gate): the whole actor update of the batch, BC included, is
      skipped when the batch mean of ``A_bar_t`` is ``<= margin`` (returned ``actor_open`` False; the
      trainer then steps the critic only);
    * ``"ppo_chunk"`` (ours): a per-chunk mask on the PPO term only, ``g_t = 1[A_bar_t > margin]``:
      ``L_PPO = -1/B sum_t g_t 1/|M_t| sum_i m_{t,i} min(r A, clip(r) A)`` (a closed chunk counts 0 in
      the batch mean); BC is always applied and the actor is always stepped;
    * ``"off"``: no gate (Eq. 2 on every chunk).

    ``adv`` is the advantage of the surrogate (normalised), ``gate_adv`` the one the gate scores (raw or
    normalised, ``gate_source``). Returns ``(loss, actor_open, L_PPO, stats)``; the stats always hold the
    batch score (``gate/score``), whether the literal gate would be open (``gate/batch_open``) and the
    share of chunks whose A_bar_t clears the margin (``gate/chunk_open_frac``), whatever the scope.
    """
    if scope not in GATE_SCOPES:
        raise ValueError(f"gate scope must be one of {GATE_SCOPES}, got {scope!r}")
    batch_open, score = advantage_gate(gate_adv, mask, margin, reduce=reduce)
    keep = (chunk_mean_advantage(gate_adv.detach(), mask) > margin).to(mask.dtype)
    kept = torch.stack([keep.sum(), torch.tensor(float(keep.numel()), dtype=keep.dtype, device=keep.device)])
    if reduce is not None:
        kept = reduce(kept)
    ppo_mask = mask * keep[:, None] if scope == "ppo_chunk" else mask
    ppo = clipped_ppo_loss(logp_new, logp_old, adv, ppo_mask, eps, dual_clip)
    loss = lambda_ppo * ppo + lambda_bc * bc
    actor_open = batch_open if scope == "batch" else True
    stats = {
        "gate/score": float(score),
        "gate/batch_open": float(batch_open),
        "gate/chunk_open_frac": float(kept[0] / kept[1].clamp_min(1.0)),
    }
    return loss, actor_open, ppo, stats


PPO_START_FRACTION = 40_000 / 70_000  # Table 3: PPO from update 40k of 70k


def ppo_start_step(total: int, ppo_start: int | None = None, fraction: float = PPO_START_FRACTION) -> int:
    """First update of Stage 2: ``ppo_start`` if given, else ``round(total * fraction)`` (40/70 of a run)."""
    if ppo_start is not None:
        return int(ppo_start)
    return int(round(total * fraction))


def stage_for_step(
    step: int, total: int, ppo_start: int | None = None, fraction: float = PPO_START_FRACTION
) -> int:
    """Two-stage schedule of Appendix B.2 for 0-based update ``step``: 1 = BC warm-up (actor BC only,
    critic trained), 2 = BC + PPO guidance. Stage 2 starts at ``ppo_start`` (or 40/70 of ``total``)."""
    if step < 0 or total <= 0:
        raise ValueError(f"stage_for_step: step must be >= 0 and total > 0, got step={step}, total={total}")
    return 2 if step >= ppo_start_step(total, ppo_start, fraction) else 1


def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """Polyak averaging ``theta_target <- (1 - tau) theta_target + tau theta`` (Table 3 tau_target 0.005)."""
    with torch.no_grad():
        for pt, ps in zip(target.parameters(), source.parameters(), strict=True):
            pt.lerp_(ps.detach(), tau)
        for bt, bs in zip(target.buffers(), source.buffers(), strict=True):
            bt.copy_(bs)


def weighted_actor_loss(per_sample_loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted imitation: ``L_pi = 1/B sum_i w_i l_i`` with detached weights ``w`` [B] and the actor's
    per-sample losses ``l`` [B] (ALOE Eq. 7 with the advantage weights, HABC Eq. 1 with its gate weights)."""
    if per_sample_loss.shape != weights.shape:
        raise ValueError(
            f"per-sample loss {tuple(per_sample_loss.shape)} and weights {tuple(weights.shape)} differ"
        )
    return (weights.detach() * per_sample_loss).mean()


def imitated_rows_scale(bc_mask: torch.Tensor) -> torch.Tensor:
    """``B / #chunks with a BC step``: rescales a masked-mean BC loss (per chunk, then over the batch) so that
    chunks of failed rollouts (``bc_mask`` all 0, ``data/chunks.py``) do not shrink it. 1 when every chunk has
    a BC step (a dataset without failed rollouts: the loss is unchanged)."""
    rows = (bc_mask.sum(1) > 0).float()
    return len(rows) / rows.sum().clamp_min(1.0)
