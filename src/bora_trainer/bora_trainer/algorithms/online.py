"""Online residual RLPD with an inherited critic (Sec. 3.2, Appendix B.3-B.4, Table 3 Phase 2).

:class:`OnlineLearner` owns the residual chunk actor, the inherited critic (Q and V, started from the
offline run's weights), their Polyak target copy and a frozen copy of the offline critic. Its
``update(batch)`` runs one step of a pluggable objective (registry :data:`OBJECTIVES`, key = the CLI's
``--algo``). The same ``update`` serves ``bora train online`` in simulation and the trainer node on
recorded bags. Batches come from :class:`bora_trainer.data.replay.MixedSampler` (1:1 offline/online,
``is_online`` flag); the frozen VLA is never re-run: z_t and the base chunk are stored per row.

``bora-residual`` (:class:`BoraResidualObjective`), per update (Algorithm 1 lines 26-27):

* critic: Eq. (3) masked Bellman (every twin Q head) on Eq. (1) shifted-bootstrap targets (target V)
  + Eq. (4) expectile V + ``lambda_Q * L_reg`` with the critic regulariser (the paper names
  lambda_Q = 0.25 but not its form; ours, ``critic_reg="anchor_offline"``):
  ``L_reg = masked mean over OFFLINE rows of (q_phi(z, a) - q_phi_offline(z, a))^2`` where
  ``q_phi_offline`` is the frozen inherited offline critic and ``a`` the dataset chunk: the online
  critic may move on the new online data but keeps the offline value landscape on the offline data.
  ``critic_reg="none"`` disables it. Then the Polyak update of the targets (tau = 0.005).
* actor (gradients reach the residual only; the critic is frozen during this loss):
  ``lambda_BC(t) L_BC + lambda_imp L_improve + lambda_anchor L_anchor + lambda_l2 L_l2`` with
  - ``L_BC``: squared error of the composite A_hat = A_base + alpha_t A_res to the executed chunk on
    the offline rows (all valid steps) and on the online steps under human control
    (``is_intervention``); lambda_BC decays 2.0 -> 1.0 over 10k updates;
  - ``L_improve``: Eq. (6) hinge ``max(0, q(z, a_base) + delta - q(z, a_hat))`` (delta 0, lambda 0.35);
  - ``L_anchor`` (ours, the paper gives only the weight 0.03): masked mean of
    ``||A_hat - A_base||^2`` (normalised units), the deployed deviation from the base chunk;
  - ``L_l2``: mean of ``A_res^2`` (the raw residual before alpha), weight 2e-4.
  ``lambda_q`` (default 0) optionally adds Eq. (8)'s objective term ``-E[q(z, a_hat)]``.

Cost (batch B, chunk k): the step-MLP layers after the first run on B*k tokens and dominate. Per update the
critic is evaluated 9 times (target V; twin Q + V with backward; frozen offline twin Q on the B/2 offline
rows; twin Q at A_hat with backward to the actions and at A_base), the bootstrap ``v(z_{t+1}, 0)`` only at
position 0. ``OnlineConfig.precision="bf16"`` runs the update under bf16 autocast also on a CPU.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from bora_policy.models.residual import ResidualChunkActor, ResidualConfig, alpha_schedule
from bora_trainer.algorithms.losses import (
    bc_loss,
    expectile_value_loss,
    masked_bellman_loss,
    masked_mean,
    shifted_bootstrap_targets,
    soft_update,
)


@dataclass
class OnlineConfig:
    """Phase 2 hyper-parameters (Table 3 unless marked "ours").

    n_start: online chunk transitions needed before updates start (N_start; ours).
    expectile: tau of Eq. (4), as offline (ours: 0.7).
    grad_clip: global-norm clip of each optimiser step (ours; 0 disables).
    lambda_q: weight of Eq. (8)'s ``-q(z, a_hat)`` term (ours; 0 = the brief's loss without it).
    precision: ``"auto"`` (bf16 autocast on CUDA with bf16 support and on a CPU with native bf16, i.e.
    AVX512-BF16 or AMX: ``bora_policy.runtime.cpu_probe.decide_precision``; else fp32), ``"bf16"`` (bf16
    autocast on any device: about 1.8x faster updates on a CPU with AVX512-BF16, at bf16 matmul precision;
    emulated and ~40x slower per matmul on an AVX2-only CPU) or ``"fp32"``.
    """

    algo: str = "bora-residual"
    batch_size: int = 128
    gamma: float = 0.99
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    weight_decay: float = 1e-4
    tau: float = 0.005
    max_updates: int = 15000
    n_start: int = 64
    expectile: float = 0.7
    bc_lambda_start: float = 2.0
    bc_lambda_end: float = 1.0
    bc_decay_steps: int = 10000
    critic_reg: Literal["anchor_offline", "none"] = "anchor_offline"
    critic_reg_lambda: float = 0.25
    improve_lambda: float = 0.35
    improve_delta: float = 0.0
    anchor_lambda: float = 0.03
    residual_l2: float = 2e-4
    lambda_q: float = 0.0
    grad_clip: float = 10.0
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    objective_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(
                f"OnlineConfig.batch_size must be even (1:1 offline/online), got {self.batch_size}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"OnlineConfig.gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"OnlineConfig.tau must be in (0, 1], got {self.tau}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"OnlineConfig.precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if self.critic_reg not in ("anchor_offline", "none"):
            raise ValueError(
                f"OnlineConfig.critic_reg must be 'anchor_offline' or 'none', got {self.critic_reg!r}"
            )


def bc_lambda_schedule(step: int, start: float = 2.0, end: float = 1.0, decay: int = 10000) -> float:
    """Table 3: lambda_BC decays linearly from 2.0 to 1.0 over 10k updates, then stays."""
    frac = 1.0 if decay <= 0 else min(max(step, 0) / decay, 1.0)
    return float(start + (end - start) * frac)


class NormalizerMismatchError(ValueError):
    """Two components were produced with different normalisation statistics."""


def check_normalizer_versions(**versions: str | None) -> str:
    """All given normaliser versions must be equal (None = unknown, skipped); returns the version."""
    known = {k: v for k, v in versions.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in known.items())
        raise NormalizerMismatchError(
            f"normaliser versions differ ({detail}): the online phase must use the "
            "offline run's normalisation for the critic, the VLA and the replay data"
        )
    return next(iter(known.values()), "")


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily stop gradients into ``module``'s parameters (they still pass to its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


# ---------------------------------------------------------------------------------------- registry
OBJECTIVES: dict[str, type[OnlineObjective]] = {}


def register_objective(name: str) -> Callable[[type[OnlineObjective]], type[OnlineObjective]]:
    """Class decorator: make an objective available as ``--algo name``."""

    def deco(cls: type[OnlineObjective]) -> type[OnlineObjective]:
        if name in OBJECTIVES and OBJECTIVES[name] is not cls:
            raise ValueError(f"online objective {name!r} is already registered ({OBJECTIVES[name].__name__})")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return deco


def get_objective(name: str) -> type[OnlineObjective]:
    if name not in OBJECTIVES:
        # objectives that live in other modules register on import
        for mod in ("bora_trainer.algorithms.aloe", "bora_trainer.algorithms.habc"):
            with contextlib.suppress(ImportError):
                __import__(mod)
    if name not in OBJECTIVES:
        raise ValueError(f"unknown online algorithm {name!r}; registered: {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


class OnlineObjective:
    """Base class of pluggable online objectives.

    ``update(batch)`` performs one full update (critic, targets, actor) using the learner's modules
    and optimisers and returns float metrics. Subclasses may create extra modules
    (return them from ``extra_modules`` so they are checkpointed).
    """

    name = "base"

    def __init__(self, learner: OnlineLearner, options: dict[str, Any] | None = None):
        self.learner = learner
        self.options = dict(options or {})

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def extra_modules(self) -> dict[str, nn.Module]:
        return {}

    def observe_episode(self, episode: int, success: bool | None, is_intervention) -> None:
        """A finished online episode (its replay ``episode`` id, outcome, per-step takeover flags).
        Both online loops call it for every episode they add; objectives that label rows by episode
        (HABC) override it, the others ignore it."""


class OnlineLearner:
    """Residual actor + inherited critic (+ target and frozen offline copies) + optimisers.

    ``critic`` is a ``ChunkCritic``-like module with ``q(z, actions_norm) -> [B, k]`` and
    ``v(z) -> [B, k]``; it is deep-copied, so the offline model passed in is not modified. Its own
    target nets (``v_target``/``soft_update_targets``) are used when it has them. ``offline_critic`` (default:
    ``critic``) is the frozen anchor of the critic regulariser; later rounds pass the previous round's
    online critic as ``critic`` and the offline one here.
    ``normalizer_version`` is the run's; ``critic_normalizer_version`` the offline critic's: they
    must agree (critic inheritance keeps the normalisation).
    """

    def __init__(
        self,
        critic: nn.Module,
        state_dim: int,
        action_dim: int,
        chunk_size: int,
        z_dim: int,
        cfg: OnlineConfig | None = None,
        normalizer_version: str = "",
        critic_normalizer_version: str | None = None,
        actor: ResidualChunkActor | None = None,
        device: str | torch.device | None = None,
        offline_critic: nn.Module | None = None,
    ):
        self.cfg = cfg or OnlineConfig()
        self.normalizer_version = check_normalizer_versions(
            run=normalizer_version, offline_critic=critic_normalizer_version
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dims = {
            "state_dim": state_dim,
            "action_dim": action_dim,
            "chunk_size": chunk_size,
            "z_dim": z_dim,
        }
        torch.manual_seed(self.cfg.seed)
        self.critic = copy.deepcopy(critic).to(self.device).train()
        self.critic.requires_grad_(True)
        # target nets: the critic's own (ChunkCritic.v_target / soft_update) when it has them, else a copy
        soft = getattr(critic, "soft_update_targets", None) or getattr(critic, "soft_update", None)
        self.internal_target = callable(getattr(critic, "v_target", None)) and callable(soft)
        self.critic_target = (
            None if self.internal_target else copy.deepcopy(self.critic).requires_grad_(False).eval()
        )
        # frozen copy of the critic the online phase starts from (the offline one unless given)
        src = offline_critic if offline_critic is not None else self.critic
        self.critic_offline = copy.deepcopy(src).to(self.device).requires_grad_(False).eval()
        self.actor = actor or ResidualChunkActor(state_dim, action_dim, chunk_size, z_dim, self.cfg.residual)
        self.actor.to(self.device).train()
        # multi-tensor AdamW (the same values as the per-parameter loop). The critic optimiser keeps every
        # critic parameter (target copies get no gradient, so no step) for checkpoint compatibility.
        self.actor_opt = torch.optim.AdamW(
            self.actor.parameters(), lr=self.cfg.actor_lr, weight_decay=self.cfg.weight_decay, foreach=True
        )
        self.critic_opt = torch.optim.AdamW(
            self.critic.parameters(), lr=self.cfg.critic_lr, weight_decay=self.cfg.weight_decay, foreach=True
        )
        self.step = 0
        prec = self.cfg.precision
        if prec == "auto":  # bf16 on CUDA with bf16 support and on CPUs with native bf16 only (cpu_probe)
            from bora_policy.runtime.cpu_probe import auto_precision

            prec = auto_precision(self.device.type)  # BORA_PRECISION, else the CPU/GPU probe
        self.use_bf16 = prec == "bf16"
        self.objective = get_objective(self.cfg.algo)(self, self.cfg.objective_options)

    # ------------------------------------------------------------------------------ schedules
    def alpha(self, step: int | None = None) -> float:
        """alpha_t of the composite A_base + alpha_t A_res (Table 3: 0.2 -> 0.75 over 4000 updates)."""
        r = self.cfg.residual
        return alpha_schedule(
            self.step if step is None else step, r.alpha_start, r.alpha_end, r.alpha_warmup_steps
        )

    def bc_lambda(self, step: int | None = None) -> float:
        c = self.cfg
        return bc_lambda_schedule(
            self.step if step is None else step, c.bc_lambda_start, c.bc_lambda_end, c.bc_decay_steps
        )

    def v_target(self, z: torch.Tensor, steps: list[int] | None = None) -> torch.Tensor:
        """v(z, i) of the target value net, [B, k] (``[B, len(steps)]`` for the positions ``steps`` only;
        a critic with ``v_steps = True`` evaluates just those positions)."""
        if steps is not None and self.internal_target and getattr(self.critic, "v_steps", False):
            return self.critic.v_target(z, steps=steps)
        v = self.critic.v_target(z) if self.internal_target else self.critic_target.v(z)
        return v if steps is None else v[:, steps]

    def update_targets(self) -> None:
        """Polyak update of the target nets (Table 3 tau_target = 0.005)."""
        if self.internal_target:
            name = "soft_update_targets" if hasattr(self.critic, "soft_update_targets") else "soft_update"
            getattr(self.critic, name)(self.cfg.tau)
        else:
            soft_update(self.critic_target, self.critic, self.cfg.tau)

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def check_buffer(self, spec: Any) -> None:
        """A replay buffer's spec must match the learner's shapes and normaliser."""
        for k, v in self.dims.items():
            have = getattr(spec, k)
            if have != v:
                raise ValueError(f"replay buffer {k}={have}, but the learner was built with {k}={v}")
        check_normalizer_versions(run=self.normalizer_version, replay=spec.normalizer_version)

    # ------------------------------------------------------------------------------ update
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update of the configured objective on a mixed batch (Algorithm 1 lines 25-27)."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        info = self.objective.update(batch)
        self.step += 1
        info["alpha"] = self.alpha()
        return info

    def clip_and_step(self, opt: torch.optim.Optimizer, params) -> float:
        gn = 0.0
        if self.cfg.grad_clip > 0:
            gn = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        opt.step()
        return gn

    # ------------------------------------------------------------------------------ checkpoints
    def modules(self) -> dict[str, nn.Module]:
        mods = {"residual": self.actor, "critic": self.critic}
        if self.critic_target is not None:
            mods["critic_target"] = self.critic_target
        mods.update(self.objective.extra_modules())
        return mods

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }

    def load_state(
        self, modules: dict[str, dict[str, torch.Tensor]], trainer_state: dict | None = None
    ) -> None:
        for k, m in self.modules().items():
            if k in modules:
                m.load_state_dict(modules[k])
        if trainer_state:
            self.step = int(trainer_state["step"])
            self.actor_opt.load_state_dict(trainer_state["actor_opt"])
            self.critic_opt.load_state_dict(trainer_state["critic_opt"])


# ---------------------------------------------------------------------------------------- BORA
def improvement_hinge(
    q_base: torch.Tensor, q_hat: torch.Tensor, mask: torch.Tensor, delta: float = 0.0
) -> torch.Tensor:
    """Eq. (6): ``E[ 1/|M_t| sum_i m_{t,i} max(0, Q(z, a_base_i) + delta - Q(z, a_hat_i)) ]``."""
    return masked_mean(torch.relu(q_base.detach() + delta - q_hat), mask)


def critic_anchor_loss(
    q: torch.Tensor, q_offline: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """Critic regulariser (ours): masked mean over ``rows`` of ``(q - q_offline)^2`` (q_offline frozen)."""
    sq = (q - q_offline.detach()) ** 2
    per = (sq * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    w = rows.to(per.dtype)
    return (per * w).sum() / w.sum().clamp_min(1.0)


@register_objective("bora-residual")
class BoraResidualObjective(OnlineObjective):
    """BORA-Full online objective (module docstring)."""

    def critic_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        L, c = self.learner, self.learner.cfg
        mask = b["mask"].float()
        with torch.no_grad(), L.autocast():
            v_cur_t = L.v_target(b["z"]).float()
            v_next_t = L.v_target(b["next_z"], steps=[0]).float()[:, 0] * b["next_valid"].float()
        y = shifted_bootstrap_targets(b["reward"].float(), b["done"].float(), v_cur_t, v_next_t, c.gamma)
        with L.autocast():
            # every Q head regresses to y (twin heads: q_all); V's expectile uses the minimum
            q_all = (
                L.critic.q_all(b["z"], b["action"])
                if hasattr(L.critic, "q_all")
                else L.critic.q(b["z"], b["action"])[None]
            ).float()
            v = L.critic.v(b["z"]).float()
        q = q_all.amin(0)
        loss_q = sum(masked_bellman_loss(qh, y, mask) for qh in q_all)
        loss_v = expectile_value_loss(q, v, mask, c.expectile)
        loss = loss_q + loss_v
        info = {
            "critic/loss_q": loss_q.item(),
            "critic/loss_v": loss_v.item(),
            "critic/q_mean": q.mean().item(),
        }
        if c.critic_reg == "anchor_offline" and c.critic_reg_lambda > 0:
            off = ~b["is_online"].bool()  # the regulariser only looks at offline rows
            with torch.no_grad(), L.autocast():
                q_off = L.critic_offline.q(b["z"][off], b["action"][off]).float()
            reg = critic_anchor_loss(q[off], q_off, mask[off], torch.ones_like(off[off]))
            loss = loss + c.critic_reg_lambda * reg
            info["critic/reg"] = reg.item()
        info["critic/loss"] = loss.item()
        return loss, info

    def composite(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(A_base, A_res, A_hat = A_base + alpha_t A_res)``; the base is data (detached)."""
        L = self.learner
        base = b["base"].float().detach()
        with L.autocast():
            res = L.actor(b["proprio"], base, b["z"]).float()
        return base, res, base + L.alpha() * res

    def hinge(self, b: dict[str, torch.Tensor], base: torch.Tensor, a_hat: torch.Tensor):
        """Eq. (6) on the online critic with its parameters frozen: ``(L_improve, q_base, q_hat)``."""
        L, c = self.learner, self.learner.cfg
        with frozen(L.critic), L.autocast():
            q_hat = L.critic.q(b["z"], a_hat).float()
            with torch.no_grad():
                q_base = L.critic.q(b["z"], base).float()
        return improvement_hinge(q_base, q_hat, b["mask"].float(), c.improve_delta), q_base, q_hat

    def actor_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        L, c = self.learner, self.learner.cfg
        mask = b["mask"].float()
        base, res, a_hat = self.composite(b)
        # BC on offline rows (all valid steps) and on online steps under human control
        bc_mask = mask * ((~b["is_online"].bool())[:, None] | b["is_intervention"].bool()).float()
        rows = (bc_mask.sum(1) > 0).float()
        loss_bc = bc_loss(a_hat, b["action"].float(), bc_mask) * (len(rows) / rows.sum().clamp_min(1.0))
        hinge, q_base, q_hat = self.hinge(b, base, a_hat)
        anchor = masked_mean(((a_hat - base) ** 2).mean(-1), mask)
        l2 = (res**2).mean()
        lam_bc = L.bc_lambda()
        loss = lam_bc * loss_bc + c.improve_lambda * hinge + c.anchor_lambda * anchor + c.residual_l2 * l2
        if c.lambda_q > 0:
            loss = loss - c.lambda_q * masked_mean(q_hat, mask)
        info = {
            "actor/loss": loss.item(),
            "actor/bc": loss_bc.item(),
            "actor/hinge": hinge.item(),
            "actor/anchor": anchor.item(),
            "actor/res_l2": l2.item(),
            "actor/lambda_bc": lam_bc,
            "actor/q_gain": masked_mean(q_hat - q_base, mask).item(),
            "actor/res_abs": res.abs().mean().item(),
        }
        return loss, info

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        L = self.learner
        # critic (Algorithm 1 line 26)
        loss_c, info = self.critic_loss(batch)
        L.critic_opt.zero_grad(set_to_none=True)
        loss_c.backward()
        info["critic/grad_norm"] = L.clip_and_step(L.critic_opt, L.critic.parameters())
        L.update_targets()
        # actor (line 27): gradients only into the residual
        loss_a, info_a = self.actor_loss(batch)
        L.actor_opt.zero_grad(set_to_none=True)
        loss_a.backward()
        info_a["actor/grad_norm"] = L.clip_and_step(L.actor_opt, L.actor.parameters())
        info.update(info_a)
        return info
