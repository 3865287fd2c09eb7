"""Offline phase of BORA (Sec. 3.1, Appendix A-B, Table 3) and the baselines of Table 1.

Algorithms (registry ``ALGORITHMS``; ``--algo`` names):

* ``diffusion-bc``: VITRA-style multi-step diffusion action expert, imitation only.
* ``cp-bc``: consistency action expert, imitation only.
* ``cp-decoupled-critic``: consistency expert + a critic with its OWN pixel encoder (no VLM token, no
  per-step action conditioning); PPO + BC with that critic's action-level advantages.
* ``bora``: consistency expert + action-conditioned chunk critic on the cognition token z_t, trained
  with the shifted bootstrap (Eq. 1), masked Bellman (Eq. 3) and expectile V (Eq. 4); actor trained with
  action-level GAE, validity-masked clipped PPO (Eq. 2) + BC, the advantage gate (Eq. 5) and the
  two-stage schedule (Appendix B.2).

Decoupled optimisation (Appendix B): the critic sees ``z_t.detach()`` and no pathwise ``grad_a Q`` is
used, so critic losses never reach the actor; the VLM is trained only through the actor loss (BC, and
PPO in Stage 2). One backward pass over ``critic_loss + actor_loss`` gives both parameter sets their
own gradients; two AdamW optimisers step them. ``gate_scope`` (``losses.gated_ppo_bc_loss``) says what a
closed gate withholds. With ``"batch"`` (the paper's literal gate) a closed gate skips the actor optimiser
step (and the actor gradient is multiplied by 0, so every data-parallel rank still runs the same
collective ops); ``"ppo_chunk"`` masks the PPO term of the low-advantage chunks only; the critic is always
stepped.

PPO reference policy (the ``pi_theta_old`` of Eq. 2): demonstrations are not samples of the current
policy, so "old" is a frozen snapshot of the action expert (the Gaussian head included), refreshed every
``ppo_ref_refresh`` updates (and at the start of Stage 2). It is evaluated on the current cognition
token (detached), so the ratio measures how far the expert has moved since the snapshot for the same
z_t; keeping a second copy of the multi-billion-parameter VLM only for the ratio is not worth the
memory. ``ppo_ref_refresh = 1`` gives the on-policy single-step case (ratio = 1, clip inactive; the
surrogate's gradient is then the advantage-weighted log-likelihood gradient).

Extension hook: ``register_algorithm("aloe")`` on a subclass of ``OfflineAlgorithm`` makes it available
to ``bora train offline --algo aloe`` (issue 6).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from bora_trainer.algorithms import losses as L
from bora_trainer.data.chunks import ChunkDatasetConfig


@dataclass
class ModelConfig:
    """Which networks to build (bora_policy.models). ``vlm`` is a named tiny/shape config or a local path."""

    vlm: str = "paligemma-tiny"
    vlm_load_weights: bool = True
    gradient_checkpointing: bool = False
    bf16: bool = True  # autocast on CUDA
    use_proprio: bool = True  # feed the normalised state to the VLM (proprio token) and the expert
    expert: dict[str, Any] = field(default_factory=dict)  # extra kwargs of the action expert config
    critic: dict[str, Any] = field(
        default_factory=dict
    )  # extra kwargs of the chunk / decoupled critic config
    expert_sample_steps: int = 1  # consistency: 1-3 steps at inference; diffusion: its own default if 0


@dataclass
class OfflineConfig:
    """Offline BORA training. Defaults are Table 3 (Phase 1) unless marked "not in Table 3"."""

    algo: str = "bora"
    # --- Table 3, Phase 1
    total_updates: int = 70_000
    batch_size: int = 8  # per GPU / process
    k: int = 32  # action chunk size
    weight_decay: float = 1e-4  # AdamW
    vlm_lr: float = 1e-5  # actor VLM learning rate
    expert_lr: float = 5e-5  # actor consistency (action expert) learning rate
    ppo_start_step: int | None = None  # None: round(total_updates * ppo_start_fraction) = 40k of 70k
    ppo_start_fraction: float = 40_000 / 70_000
    lambda_bc: float = 1.0
    lambda_ppo: float = 0.01  # PPO guidance coefficient
    adv_clip: float = 2.0  # advantage normalisation clip
    gate_enabled: bool = True  # OPE gate (false = gate_scope "off")
    gate_margin: float = 0.0  # delta_OPE
    # what a closed gate (Eq. 5, Appendix B.1 "optionally") withholds (losses.gated_ppo_bc_loss): "batch" =
    # the paper's literal gate (the whole actor step, BC included), "ppo_chunk" = ours: the PPO term of
    # each chunk with A_bar_t <= margin (BC always applied), "off" = no gate. Default ppo_chunk: measured in
    # bench/results/gate_scope.md (press_button, demo recipe): the scopes' success intervals overlap, the
    # literal gate skipped the whole actor step (BC included) on most PPO-stage updates; ppo_chunk keeps BC
    gate_scope: Literal["batch", "ppo_chunk", "off"] = "ppo_chunk"
    # --- not in Table 3 (paper text / Table 3 Phase 2 / common practice)
    gamma: float = 0.99  # Table 3 Phase 2 discount, reused offline
    gae_lambda: float = 0.95  # GAE lambda (standard PPO value)
    expectile_tau: float = 0.7  # IQL expectile, tau in (0.5, 1) (Appendix A); IQL's default 0.7
    ppo_eps: float = 0.2  # PPO clip (Schulman et al.)
    ppo_dual_clip: float = 0.0  # ours: > 1 bounds the surrogate at c * A for A < 0 (0 = off, Eq. 2 exactly)
    critic_lr: float = 1e-4  # Table 3 Phase 2 critic learning rate, reused offline
    target_tau: float = 0.005  # Polyak rate of the target value net (Table 3 Phase 2 tau_target)
    gate_source: Literal["raw", "normalized"] = "raw"  # Appendix B.1 allows either
    ppo_ref_refresh: int = 100  # updates between snapshots of pi_theta_old (see module docstring)
    max_grad_norm: float = 1.0  # per optimiser; 0 disables
    warmup_updates: int = 0  # linear LR warm-up
    # random-shift image augmentation (DrQ, Kostrikov et al. 2020): each training image (every camera of
    # o_t and o_{t+k}) is padded by this many pixels (edge replicate) and cropped back at a random offset;
    # 0 disables. Helps a from-scratch VLM generalise from tens of demonstrations.
    augment_shift: int = 0
    # --- not in Table 3: start from a pretrained run (the paper: every row fine-tunes one pretrained VLA)
    # A run directory (or checkpoint directory) whose latest checkpoint initialises this run's modules:
    # every module of the same name with identical parameter names and shapes is loaded (the VLM always;
    # the action expert when it is the same kind; a critic when the source has one of the same kind);
    # the others keep their fresh initialisation. The source run's normaliser is reused. Optimisers and
    # the step counter start fresh. Ignored when resuming (the run's own checkpoint wins).
    init_from: str | None = None
    # which episodes of the dataset to train on: "all", or "clean" = successful scripted-expert
    # demonstrations with every quality knob at 0 (episode info ``source``/``success``/``quality``), e.g. for
    # a shared warm-up that the rows then fine-tune on all (mixed-quality) episodes
    episodes: Literal["all", "clean"] = "all"
    # --- run mechanics
    seed: int = 0
    num_workers: int = 0
    shuffle: bool = True
    log_every: int = 10
    ckpt_every: int = 1000
    keep_last: int = 3
    device: str = "auto"  # auto: cuda if available else cpu
    fsdp: bool = False  # shard the learner with FSDP2 (fully_shard) instead of DDP
    find_unused_parameters: bool = True  # DDP: Stage-1 leaves the PPO head unused
    model: ModelConfig = field(default_factory=ModelConfig)
    data: ChunkDatasetConfig = field(default_factory=ChunkDatasetConfig)
    # extra hyper-parameters of a plugin objective (``AloeConfig`` / ``HabcConfig`` fields for aloe / habc)
    algo_options: dict[str, Any] = field(default_factory=dict)
    # --- recorded in RUN/config.yaml for the later stages (``bora eval --run``, ``bora train online``)
    task: str | None = None  # bora_sim task; None: the dataset's ``tasks`` entry when it names exactly one
    data_dir: str | None = None  # the training dataset (absolute; set by the trainer from ``--data``)

    def __post_init__(self) -> None:
        if self.k != self.data.k:
            if self.data.k == ChunkDatasetConfig.k:
                self.data.k = self.k
            else:
                raise ValueError(f"OfflineConfig: k={self.k} but data.k={self.data.k}; set one of them")
        if self.gate_scope not in L.GATE_SCOPES:
            raise ValueError(f"OfflineConfig.gate_scope must be one of {list(L.GATE_SCOPES)}, got {self.gate_scope!r}")
        if self.episodes not in ("all", "clean"):
            raise ValueError(f"OfflineConfig.episodes must be 'all' or 'clean', got {self.episodes!r}")
        if self.augment_shift < 0:
            raise ValueError(f"OfflineConfig.augment_shift must be >= 0, got {self.augment_shift}")
        for name in ("total_updates", "batch_size", "k", "ppo_ref_refresh"):
            if getattr(self, name) < 1:
                raise ValueError(f"OfflineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.expectile_tau < 1.0:
            raise ValueError(f"OfflineConfig.expectile_tau must be in (0, 1), got {self.expectile_tau}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("OfflineConfig.gamma and gae_lambda must be in [0, 1]")

    @property
    def ppo_start(self) -> int:
        return L.ppo_start_step(self.total_updates, self.ppo_start_step, self.ppo_start_fraction)


@dataclass
class StepOutput:
    """What one forward of an algorithm returns to the trainer."""

    actor_loss: torch.Tensor
    critic_loss: torch.Tensor | None
    actor_open: bool
    metrics: dict[str, float]


Reduce = Callable[[torch.Tensor], torch.Tensor] | None

ALGORITHMS: dict[str, type[OfflineAlgorithm]] = {}


def register_algorithm(name: str):
    """Class decorator: make an ``OfflineAlgorithm`` subclass available as ``--algo name``."""

    def deco(cls):
        if name in ALGORITHMS and ALGORITHMS[name] is not cls:
            raise ValueError(
                f"offline algorithm {name!r} is already registered ({ALGORITHMS[name].__name__})"
            )
        cls.name = name
        ALGORITHMS[name] = cls
        return cls

    return deco


def get_algorithm(name: str) -> type[OfflineAlgorithm]:
    """The registered class of ``--algo name``; plugin modules (ALOE, HABC) are imported on a miss."""
    if name not in ALGORITHMS:
        from bora_trainer.train_offline import load_plugins  # lazy: train_offline imports this module

        load_plugins()
    if name not in ALGORITHMS:
        raise KeyError(f"unknown offline algorithm {name!r}; available: {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


class OfflineAlgorithm(nn.Module):
    """Base learner: holds the networks and computes the losses of one batch.

    ``batch`` (prepared by the trainer, on the device): ``images`` [B, n_cam, 3, H, W] uint8,
    ``instruction`` list[str], ``state_n`` [B, S] normalised, ``actions_n`` [B, k, A] normalised, ``rewards``,
    ``dones``, ``mask`` [B, k], ``next_images``, ``next_state_n``. Subclasses implement ``losses``.
    """

    name = "base"
    expert_kind: Literal["consistency", "diffusion"] = "consistency"
    uses_critic = False
    critic_kind: Literal["chunk", "decoupled"] = "chunk"

    def __init__(
        self, cfg: OfflineConfig, vlm: nn.Module, expert: nn.Module, critic: nn.Module | None = None
    ):
        super().__init__()
        self.cfg = cfg
        self.vlm = vlm
        self.expert = expert
        self.critic = critic
        self.reduce: Reduce = None  # set by the trainer under data parallelism

    # -- parameter groups (AdamW, Table 3 learning rates)
    def actor_param_groups(self) -> list[dict]:
        groups = [
            {
                "params": [p for p in self.vlm.parameters() if p.requires_grad],
                "lr": self.cfg.vlm_lr,
                "name": "vlm",
            },
            {
                "params": [p for p in self.expert.parameters() if p.requires_grad],
                "lr": self.cfg.expert_lr,
                "name": "expert",
            },
        ]
        return [g for g in groups if g["params"]]

    def critic_param_groups(self) -> list[dict]:
        if self.critic is None:
            return []
        params = [p for p in self.critic.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.cfg.critic_lr, "name": "critic"}] if params else []

    def encode(self, images, instructions, state_n) -> torch.Tensor:
        return self.vlm.encode(images, instructions, state_n if self.cfg.model.use_proprio else None)

    def expert_proprio(self, state_n):
        return state_n if self.cfg.model.use_proprio else None

    def forward(self, batch: dict, step: int) -> dict:
        # a plain dict (DDP looks for tensors in the output to find unused parameters)
        out = self.losses(batch, step)
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}

    def losses(self, batch: dict, step: int) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after the optimiser steps (target nets, reference snapshots)."""

    def modules_to_save(self) -> dict[str, nn.Module]:
        out = {"vlm": self.vlm, "expert": self.expert}
        if self.critic is not None:
            out["critic"] = self.critic
        return out


class _BCOnly(OfflineAlgorithm):
    def losses(self, batch, step):
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        bc = self.expert.bc_loss(z, self.expert_proprio(batch["state_n"]), batch["actions_n"], batch["mask"])
        return StepOutput(self.cfg.lambda_bc * bc, None, True, {"loss/bc": float(bc.detach())})


@register_algorithm("diffusion-bc")
class DiffusionBC(_BCOnly):
    """VITRA-style baseline: multi-step diffusion action expert on z_t, imitation only."""

    expert_kind = "diffusion"


@register_algorithm("cp-bc")
class ConsistencyBC(_BCOnly):
    """Consistency-policy action expert on z_t, imitation only."""

    expert_kind = "consistency"


class _PPOWithCritic(OfflineAlgorithm):
    """Shared actor side: BC warm-up, then lambda_ppo * PPO (Eq. 2) + lambda_bc * BC with action-level GAE
    advantages from ``critic_values`` and the gate (Eq. 5). Subclasses define the critic side."""

    uses_critic = True

    def __init__(self, cfg, vlm, expert, critic):
        super().__init__(cfg, vlm, expert, critic)
        self.expert_ref = copy.deepcopy(expert)
        for p in self.expert_ref.parameters():
            p.requires_grad_(False)
        self.expert_ref.eval()
        self._ref_step = -1

    def refresh_reference(self) -> None:
        """pi_theta_old <- pi_theta (module docstring)."""
        with torch.no_grad():
            for pr, p in zip(self.expert_ref.parameters(), self.expert.parameters(), strict=True):
                pr.copy_(p.detach())
            for br, b in zip(self.expert_ref.buffers(), self.expert.buffers(), strict=True):
                br.copy_(b)

    def critic_losses(self, batch, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Return ``(critic_loss, q [B,k] detached, v [B,k] detached, metrics)``."""
        raise NotImplementedError

    def losses(self, batch, step):
        cfg = self.cfg
        mask = batch["mask"]
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        critic_loss, q, v, metrics = self.critic_losses(batch, z)
        prop = self.expert_proprio(batch["state_n"])
        bc = self.expert.bc_loss(z, prop, batch["actions_n"], mask)
        metrics["loss/bc"] = float(bc.detach())
        stage = L.stage_for_step(step, cfg.total_updates, cfg.ppo_start_step, cfg.ppo_start_fraction)
        metrics["train/stage"] = float(stage)
        actor_open = True
        if stage == 1:
            actor_loss = cfg.lambda_bc * bc
        else:
            adv = L.action_level_gae(q, v, batch["dones"], cfg.gamma, cfg.gae_lambda, mask)
            adv_n = L.normalize_advantages(adv, mask, cfg.adv_clip, reduce=self.reduce)
            logp = self.expert.log_prob(z, prop, batch["actions_n"])
            with torch.no_grad():
                logp_old = self.expert_ref.log_prob(z.detach(), prop, batch["actions_n"])
            actor_loss, actor_open, ppo, gate_stats = L.gated_ppo_bc_loss(
                logp,
                logp_old,
                adv_n,
                adv if cfg.gate_source == "raw" else adv_n,
                mask,
                bc,
                cfg.gate_scope if cfg.gate_enabled else "off",
                cfg.gate_margin,
                cfg.lambda_ppo,
                cfg.lambda_bc,
                cfg.ppo_eps,
                cfg.ppo_dual_clip,
                reduce=self.reduce,
            )
            metrics.update(gate_stats)
            metrics["loss/ppo"] = float(ppo.detach())
            metrics.update(ppo_diagnostics(logp.detach(), logp_old, adv, adv_n, mask, cfg.ppo_eps))
        metrics["gate/open"] = float(actor_open)
        return StepOutput(actor_loss, critic_loss, actor_open, metrics)

    def after_step(self, step: int) -> None:
        cfg = self.cfg
        if step + 1 == cfg.ppo_start or (step + 1) % cfg.ppo_ref_refresh == 0:
            self.refresh_reference()
        self.update_targets()

    def update_targets(self) -> None:
        raise NotImplementedError

    def modules_to_save(self):
        out = super().modules_to_save()
        out["expert_ref"] = self.expert_ref
        return out


def _masked_stats(x: torch.Tensor, m: torch.Tensor) -> tuple[float, float, float, float]:
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
    r_mean, r_std, r_min, r_max = _masked_stats(ratio, m)
    a_mean, a_std, a_min, a_max = _masked_stats(adv, m)
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
        "adv/norm_std": _masked_stats(adv_n, m)[1],
    }


def _critic_objectives(q_all, v, y, mask, tau):
    """Eq. (3) for every Q head (twin Q: each head regresses the same target ``y``) and Eq. (4) against the
    pessimistic ``q = min_h q_h`` (stop-gradient), as in IQL. Returns ``(L_Q, L_V, q)``."""
    lq = sum(L.masked_bellman_loss(qh, y, mask) for qh in q_all)
    q = q_all.detach().amin(0)
    lv = L.expectile_value_loss(q, v, mask, tau)
    return lq, lv, q


@register_algorithm("bora")
class Bora(_PPOWithCritic):
    """Action-conditioned chunk critic on z_t (Eq. 1, 3, 4) + PPO/BC actor with GAE and the gate."""

    def critic_losses(self, batch, z):
        cfg, critic = self.cfg, self.critic
        mask = batch["mask"]
        zd = z.detach()
        with torch.no_grad():
            z_next = self.encode(batch["next_images"], batch["instruction"], batch["next_state_n"])
            v_tgt = critic.v_target(zd)  # v(z_t, i) of the target value net
            v_next0 = critic.v_target(z_next)[:, 0]  # v(z_{t+1}, 0)
            y = L.shifted_bootstrap_targets(batch["rewards"], batch["dones"], v_tgt, v_next0, cfg.gamma)
        q_all = critic.q_all(zd, batch["actions_n"])  # [num_q, B, k]
        v = critic.v(zd)
        lq, lv, q = _critic_objectives(q_all, v, y, mask, cfg.expectile_tau)
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
            "critic/td_std": _masked_stats(q.detach() - y, m)[1],
        }
        return lq + lv, q, v.detach(), metrics

    def update_targets(self) -> None:
        self.critic.soft_update_targets(self.cfg.target_tau)


@register_algorithm("cp-decoupled-critic")
class DecoupledCriticPPO(_PPOWithCritic):
    """Baseline: the same Eq. 1/3/4 critic objectives and PPO+BC actor, but the critic has its own pixel
    encoder (images + state, no VLM token) and no per-step action conditioning."""

    critic_kind = "decoupled"

    def critic_losses(self, batch, z):
        cfg, critic = self.cfg, self.critic
        mask = batch["mask"]
        prop = batch["state_n"] if critic.state_dim else None
        next_prop = batch["next_state_n"] if critic.state_dim else None
        with torch.no_grad():
            v_tgt = critic.v_target(batch["images"], prop)
            v_next0 = critic.v_target(batch["next_images"], next_prop)[:, 0]
            y = L.shifted_bootstrap_targets(batch["rewards"], batch["dones"], v_tgt, v_next0, cfg.gamma)
        q_all = critic.q_all(batch["images"], batch["actions_n"], prop)
        v = critic.v(batch["images"], prop)
        lq, lv, q = _critic_objectives(q_all, v, y, mask, cfg.expectile_tau)
        metrics = {"loss/q": float(lq.detach()), "loss/v": float(lv.detach())}
        return lq + lv, q, v.detach(), metrics

    def update_targets(self) -> None:
        self.critic.soft_update_targets(self.cfg.target_tau)
