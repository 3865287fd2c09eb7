"""Refit the chunk critic on the final VLM's cognition tokens (``OfflineConfig.critic_refit_updates``; ours).

Why (bench/results/critic_refit.md): in BORA's decoupled optimisation the critic learns on ``z_t.detach()``
while the VLM keeps moving under the actor loss, and it gets one small batch per actor update (Table 3's batch
8; the demo's 32). At our scale that is far too little for the value head: after a 500-update row its
``v(z_t, 0)`` does not even fit the returns of its own training episodes (mean |v - G| about 0.5 where Q, which
also sees the action, fits to about 0.13), and it ranks held-out rollouts by outcome at chance or below, while a
linear probe on the same z_t ranks them at 0.8-0.95. Trained longer on frozen tokens, the same head does.

What: after the last update, the final VLM encodes every observation the critic's samples use (z_t and
z_{t+1} of every chunk sample of the dataset, demonstrations and ``rollout_data``; no augmentation), once, in
eval mode and without gradients. Then the critic alone takes ``critic_refit_updates`` steps of the same
objective as during training (:func:`bora_trainer.algorithms.bora.losses.chunk_critic_losses`: Eq. 1's target,
optionally blended with Monte-Carlo returns, Eq. 3 and 4, Polyak targets) on batches of ``critic_refit_batch``
cached samples, with a fresh AdamW at ``critic_lr``. The critic is cheap next to the VLM, so thousands of such
updates cost about as much as a few dozen training updates. The actor is untouched; ``RUN/critic`` (what
``bora train online`` inherits and what Fig. 11 evaluates) is the refitted critic. Checkpoints keep the critic
as training left it (a resumed or ``init_from`` run continues from there, and refits again at its end).

Under DDP every rank refits on the whole dataset with the same random stream (no collective), so the ranks end
with the same critic; rank 0 exports it. Not with ``fsdp`` (the config refuses it).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bora_trainer.algorithms.bora.losses import chunk_critic_losses

FIELDS = ("actions_n", "rewards", "dones", "mask", "returns")


def supports_refit(learner) -> bool:
    """BORA's action-conditioned chunk critic on z_t (``bora``; ALOE's and HABC's critics are other kinds)."""
    from bora_policy.models.critic import ChunkCritic

    return isinstance(getattr(learner, "critic", None), ChunkCritic)


@torch.no_grad()
def encode_samples(learner, dataset, prepare, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """z_t, z_{t+1} and the low-dimensional fields of every chunk sample of ``dataset`` (the final VLM, eval
    mode); ``prepare`` is the trainer's batch preparation without augmentation (device, normalisation)."""
    from torch.utils.data import DataLoader

    was_training = learner.vlm.training
    learner.vlm.eval()
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("z", "z_next", *FIELDS)}
    try:
        for raw in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
            b = prepare(raw)
            out["z"].append(learner.encode(b["images"], b["instruction"], b["state_n"]).float())
            out["z_next"].append(learner.encode(b["next_images"], b["instruction"], b["next_state_n"]).float())
            for k in FIELDS:
                out[k].append(b[k].float())
    finally:
        learner.vlm.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def refit_critic(
    cfg, learner, dataset, prepare, logger=None, step0: int = 0, log=print, enabled: bool = True
) -> dict:
    """Encode the dataset once, then ``cfg.critic_refit_updates`` critic-only updates (module docstring).
    Returns the means of the last logging window (``refit/...``)."""
    from bora_trainer.progress import ProgressLog

    critic = learner.critic
    t0 = time.perf_counter()
    data = encode_samples(learner, dataset, prepare)
    device = data["z"].device
    n = len(data["z"])
    log(f"critic refit: {n} chunk samples encoded in {time.perf_counter() - t0:.1f} s; "
        f"{cfg.critic_refit_updates} updates of batch {cfg.critic_refit_batch}")
    params = [p for p in critic.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.critic_lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(int(cfg.seed) + 7_919)
    prog = ProgressLog("critic refit", cfg.critic_refit_updates, start=0, enabled=enabled)
    acc: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    every = max(1, int(cfg.log_every))
    for u in range(1, cfg.critic_refit_updates + 1):
        idx = torch.randint(n, (cfg.critic_refit_batch,), generator=gen).to(device)
        batch = {k: data[k][idx] for k in FIELDS}
        loss, _q, _v, m = chunk_critic_losses(cfg, critic, data["z"][idx], data["z_next"][idx], batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        critic.soft_update_targets(cfg.target_tau)
        for k, v in m.items():
            acc.setdefault(f"refit/{k}", []).append(v)
        prog.update(u, m)
        if u % every == 0 or u == cfg.critic_refit_updates:
            last = {k: float(np.mean(v)) for k, v in acc.items()}
            if logger is not None:
                logger.scalars(step0 + u, last)
            acc = {}
    log(f"critic refit: done in {time.perf_counter() - t0:.1f} s "
        + " ".join(f"{k}={last[k]:.4g}" for k in ("refit/loss/q", "refit/loss/v") if k in last))
    return last
