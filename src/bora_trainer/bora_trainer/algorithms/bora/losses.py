"""BORA's own loss pieces (the shared equations 1-5 are in ``algorithms/losses.py``).

* :func:`critic_objectives`: Eq. (3) for every twin Q head + Eq. (4) against the pessimistic Q (offline).
* :func:`chunk_critic_losses`: the offline critic step on given tokens (Eq. 1 target, then Eq. 3-4).
* :func:`ppo_diagnostics`: spread of the PPO ratio and of the advantages (issue 14 diagnostics).
* :func:`improvement_hinge`: Eq. (6), the online residual's improvement hinge.
* :func:`critic_anchor_loss`: the online critic regulariser (ours; ``OnlineConfig.critic_reg``).
"""

from __future__ import annotations

import torch

from bora_trainer.algorithms import losses as L


def masked_stats(x: torch.Tensor, m: torch.Tensor) -> tuple[float, float, float, float]:
    """(mean, std, min, max) of ``x`` over the entries with ``m`` > 0 (zeros when there are none)."""
    sel = x[m > 0]
    if sel.numel() == 0:
        return 0.0, 0.0, 0.0, 0.0
    sel = sel.float()
    return float(sel.mean()), float(sel.std(unbiased=False)), float(sel.min()), float(sel.max())


def ppo_diagnostics(logp, logp_old, adv, adv_n, mask, eps) -> dict[str, float]:
    """How far the PPO ratio and the advantages spread over the valid steps of the batch (issue 14
    diagnostics; this process's batch, not all-reduced): ratio mean/std/min/max and clip fraction, raw
    action-level GAE advantage mean/std/min/max, normalised advantage std."""
    m = mask.to(adv.dtype)
    ratio = torch.exp((logp - logp_old) * m)
    r_mean, r_std, r_min, r_max = masked_stats(ratio, m)
    a_mean, a_std, a_min, a_max = masked_stats(adv, m)
    n = m.sum().clamp_min(1)
    return {
        "ppo/ratio_mean": r_mean,
        "ppo/ratio_std": r_std,
        "ppo/ratio_min": r_min,
        "ppo/ratio_max": r_max,
        "ppo/clip_frac": float((((ratio - 1).abs() > eps).float() * m).sum() / n),
        "adv/raw_mean": a_mean,
        "adv/raw_std": a_std,
        "adv/raw_min": a_min,
        "adv/raw_max": a_max,
        "adv/norm_std": masked_stats(adv_n, m)[1],
    }


def critic_objectives(q_all, v, y, mask, tau):
    """Eq. (3) for every Q head (twin Q: each head regresses the same target ``y``) and Eq. (4) against the
    pessimistic ``q = min_h q_h`` (stop-gradient), as in IQL. Returns ``(L_Q, L_V, q)``."""
    lq = sum(L.masked_bellman_loss(qh, y, mask) for qh in q_all)
    q = q_all.detach().amin(0)
    lv = L.expectile_value_loss(q, v, mask, tau)
    return lq, lv, q



def chunk_critic_losses(cfg, critic, zd: torch.Tensor, z_next: torch.Tensor, batch: dict):
    """BORA's offline critic step on given tokens (``Bora.critic_losses``, and the refit on the final VLM's
    cached tokens, ``offline/critic_refit.py``): Eq. 1's target (from v_psi or its Polyak copy,
    ``cfg.critic_bootstrap``; blended with the Monte-Carlo returns when ``cfg.critic_mc_weight`` > 0), then Eq. 3
    for every Q head and Eq. 4. ``zd`` / ``z_next`` are z_t and z_{t+1} (no gradient); ``batch`` holds
    ``actions_n``, ``rewards``, ``dones``, ``mask`` and ``returns`` [B, k]. Returns
    ``(critic_loss, q [B,k] detached, v [B,k] detached, metrics)``."""
    mask = batch["mask"]
    with torch.no_grad():
        v_net = critic.v if cfg.critic_bootstrap == "online" else critic.v_target
        v_tgt = v_net(zd)  # v(z_t, i)
        v_next0 = v_net(z_next)[:, 0]  # v(z_{t+1}, 0)
        y = L.shifted_bootstrap_targets(batch["rewards"], batch["dones"], v_tgt, v_next0, cfg.gamma)
        y = L.mc_mixed_targets(y, batch.get("returns"), cfg.critic_mc_weight)
    q_all = critic.q_all(zd, batch["actions_n"])  # [num_q, B, k]
    v = critic.v(zd)
    lq, lv, q = critic_objectives(q_all, v, y, mask, cfg.expectile_tau)
    m = mask.to(q.dtype)
    n = m.sum().clamp_min(1)
    metrics = {
        "loss/q": float(lq.detach()),
        "loss/v": float(lv.detach()),
        "critic/q_mean": float((q.detach() * m).sum() / n),
        "critic/v_mean": float((v.detach() * m).sum() / n),
        "critic/y_mean": float((y * m).sum() / n),
        # TD error of the pessimistic Q against its Eq. 1 target (issue 14 diagnostics)
        "critic/td_abs": float(((q.detach() - y).abs() * m).sum() / n),
        "critic/td_std": masked_stats(q.detach() - y, m)[1],
    }
    return lq + lv, q, v.detach(), metrics


def improvement_hinge(
    q_base: torch.Tensor, q_hat: torch.Tensor, mask: torch.Tensor, delta: float = 0.0
) -> torch.Tensor:
    """Eq. (6): ``E[ 1/|M_t| sum_i m_{t,i} max(0, Q(z, a_base_i) + delta - Q(z, a_hat_i)) ]``."""
    return L.masked_mean(torch.relu(q_base.detach() + delta - q_hat), mask)


def critic_anchor_loss(
    q: torch.Tensor, q_offline: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Critic regulariser (ours): masked mean over ``rows`` of ``(q - q_offline)^2`` (q_offline frozen)."""
    sq = (q - q_offline.detach()) ** 2
    per = (sq * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    w = rows.to(per.dtype)
    return (per * w).sum() / w.sum().clamp_min(1.0)
