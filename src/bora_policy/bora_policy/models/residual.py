"""Residual chunk actor and multi-round residual composition (Sec. 3.2, Algorithm 1 lines 8-15).

``ResidualChunkActor`` is the lightweight MLP pi_res(s_prop^norm, A_base^norm, z_VLM) -> A_res,
bounded by ``tanh * max_residual`` (normalised action units). The deployed chunk is

    A_final = (A_base^norm + alpha_t * A_res) * sigma_a + mu_a            (Algorithm 1 line 15)

with alpha_t rising linearly from 0.2 to 0.75 over 4000 steps (Table 3 "Residual Blend Factor",
:func:`alpha_schedule`). From round 2 on, the previous rounds' residuals are frozen and folded
into the base (lines 8-12): ``A_base^norm = A_VLA + lambda_old * pi_old(s^norm, A_VLA, z)``;
for more rounds the folding is applied in order, each frozen residual seeing the base it was
trained on: ``B_1 = A_VLA``, ``B_{r+1} = B_r + lambda_r * pi_r(s^norm, B_r, z)``.

:class:`ResidualPolicy` bundles the frozen residuals, the current one and the action
normalisation; the runtime policy node and the online trainer both call
:meth:`ResidualPolicy.compose`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ResidualConfig:
    """Residual chunk actor (Sec. 3.2) and blend schedule (Table 3: 0.2 -> 0.75 over 4000 steps).

    hidden_dims: MLP widths. max_residual: bound of |A_res| in normalised action units (tanh).
    init_scale: std of the output layer's initial weights (small: A_final starts at A_base).
    alpha_start / alpha_end / alpha_warmup_steps: the linear schedule of alpha_t (lambda_t).
    """

    hidden_dims: list[int] = field(default_factory=lambda: [512, 512])
    max_residual: float = 1.0
    init_scale: float = 1e-3
    layer_norm: bool = True
    alpha_start: float = 0.2
    alpha_end: float = 0.75
    alpha_warmup_steps: int = 4000

    def __post_init__(self) -> None:
        if not self.hidden_dims or any(int(h) <= 0 for h in self.hidden_dims):
            raise ValueError(f"ResidualConfig.hidden_dims must be positive widths, got {self.hidden_dims}")
        if self.max_residual <= 0:
            raise ValueError(f"ResidualConfig.max_residual must be > 0, got {self.max_residual}")
        if self.alpha_warmup_steps < 0:
            raise ValueError(f"ResidualConfig.alpha_warmup_steps must be >= 0, got {self.alpha_warmup_steps}")


def alpha_schedule(step: int | float, start: float = 0.2, end: float = 0.75, warmup: int = 4000) -> float:
    """Algorithm 1 line 14: ``alpha_t = alpha_s + (alpha_e - alpha_s) * min(t / T_alpha, 1)``. ``step`` is the
    learner's update count (ours): Algorithm 1 indexes alpha by t, which line 4 resets each episode; we read Table 3's
    "warm-up over 4,000 steps" as a ramp over the run's updates, so the blend grows with training, not within each
    episode (noted in review, 2026-12-08)."""
    if step < 0:
        raise ValueError(f"alpha_schedule: step must be >= 0, got {step}")
    frac = 1.0 if warmup <= 0 else min(float(step) / float(warmup), 1.0)
    return float(start + (end - start) * frac)


class ResidualChunkActor(nn.Module):
    """pi_res(s_prop^norm [B,S], A_base^norm [B,k,A], z [B,Z]) -> A_res [B,k,A], |A_res| <= max_residual."""

    def __init__(
        self, state_dim: int, action_dim: int, chunk_size: int, z_dim: int, cfg: ResidualConfig | None = None
    ):
        super().__init__()
        self.cfg = cfg or ResidualConfig()
        self.state_dim, self.action_dim, self.chunk_size, self.z_dim = (
            state_dim,
            action_dim,
            chunk_size,
            z_dim,
        )
        layers: list[nn.Module] = []
        d = state_dim + chunk_size * action_dim + z_dim
        for h in self.cfg.hidden_dims:
            layers += [nn.Linear(d, int(h))]
            if self.cfg.layer_norm:
                layers += [nn.LayerNorm(int(h))]
            layers += [nn.SiLU()]
            d = int(h)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(d, chunk_size * action_dim)
        nn.init.normal_(self.head.weight, std=self.cfg.init_scale)
        nn.init.zeros_(self.head.bias)

    def dims(self) -> dict[str, int]:
        return {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_size": self.chunk_size,
            "z_dim": self.z_dim,
        }

    def forward(
        self, prop_norm: torch.Tensor, base_chunk_norm: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        B = base_chunk_norm.shape[0]
        k, A = self.chunk_size, self.action_dim
        if base_chunk_norm.shape[1:] != (k, A):
            raise ValueError(
                f"ResidualChunkActor: base chunk shape {tuple(base_chunk_norm.shape)}, expected [B, {k}, {A}]"
            )
        if prop_norm.shape != (B, self.state_dim):
            raise ValueError(
                f"ResidualChunkActor: proprio shape {tuple(prop_norm.shape)}, "
                f"expected [{B}, {self.state_dim}]"
            )
        if z.shape != (B, self.z_dim):
            raise ValueError(f"ResidualChunkActor: z shape {tuple(z.shape)}, expected [{B}, {self.z_dim}]")
        dtype = self.head.weight.dtype
        x = torch.cat([prop_norm.to(dtype), base_chunk_norm.reshape(B, k * A).to(dtype), z.to(dtype)], dim=-1)
        out = torch.tanh(self.head(self.trunk(x))) * self.cfg.max_residual
        return out.reshape(B, k, A)


@dataclass
class FrozenResidual:
    """A previous round's residual actor and the blend weight lambda_old it was deployed with."""

    actor: ResidualChunkActor
    lam: float


@dataclass
class ResidualOutput:
    """What one composition step produces (all [B, k, A])."""

    base_norm: torch.Tensor  # A_base^norm (VLA + folded earlier rounds)
    residual: torch.Tensor  # A_res (unscaled; zeros when there is no current residual)
    final_norm: torch.Tensor  # A_base^norm + alpha * A_res
    final_physical: torch.Tensor  # final_norm * sigma_a + mu_a
    alpha: float


class ResidualPolicy(nn.Module):
    """Frozen VLA base + frozen earlier residuals + the current residual (Algorithm 1 lines 8-15).

    ``action_mean``/``action_std`` are the run's stored action normalisation (the ``Normalizer``
    of the offline run): ``physical = norm * action_std + action_mean``.
    """

    def __init__(
        self,
        action_mean: torch.Tensor,
        action_std: torch.Tensor,
        frozen: Sequence[FrozenResidual] = (),
        current: ResidualChunkActor | None = None,
    ):
        super().__init__()
        self.register_buffer("action_mean", torch.as_tensor(action_mean, dtype=torch.float32).clone())
        self.register_buffer("action_std", torch.as_tensor(action_std, dtype=torch.float32).clone())
        self.frozen = nn.ModuleList([f.actor for f in frozen])
        self.lams = [float(f.lam) for f in frozen]
        for m in self.frozen:
            m.eval()
            m.requires_grad_(False)
        self.current = current
        self.normalizer_version = ""

    @classmethod
    def from_normalizer(
        cls, normalizer, frozen: Sequence[FrozenResidual] = (), current: ResidualChunkActor | None = None
    ) -> ResidualPolicy:
        """Use a ``bora_policy.models.normalizer.Normalizer``: physical = norm * (sigma + eps) + mu."""
        std = torch.as_tensor(normalizer.action_std + normalizer.eps, dtype=torch.float32)
        pol = cls(torch.as_tensor(normalizer.action_mean, dtype=torch.float32), std, frozen, current)
        pol.normalizer_version = normalizer.version
        return pol

    @property
    def round(self) -> int:
        """1-based round index of the current residual (1 = no folded residuals)."""
        return len(self.frozen) + 1

    def base_chunk(self, z: torch.Tensor, prop_norm: torch.Tensor, a_vla_norm: torch.Tensor) -> torch.Tensor:
        """Lines 8-12: fold the frozen residuals into the VLA chunk, in round order."""
        base = a_vla_norm
        with torch.no_grad():
            for actor, lam in zip(self.frozen, self.lams):
                base = base + lam * actor(prop_norm, base, z).to(base.dtype)
        return base

    def to_physical(self, chunk_norm: torch.Tensor) -> torch.Tensor:
        return chunk_norm * self.action_std.to(chunk_norm.dtype) + self.action_mean.to(chunk_norm.dtype)

    def compose(
        self,
        z: torch.Tensor,
        prop_norm: torch.Tensor,
        a_vla_norm: torch.Tensor,
        alpha: float,
        base_norm: torch.Tensor | None = None,
    ) -> ResidualOutput:
        """Lines 8-15 for a batch: returns A_base^norm, A_res, A_final (normalised and physical).

        ``base_norm`` may be passed when already known (stored with a transition), skipping the fold.
        Gradients flow into the current residual only (the frozen parts run without grad).
        """
        if a_vla_norm.dim() != 3:
            raise ValueError(f"compose: A_VLA must be [B, k, A], got {tuple(a_vla_norm.shape)}")
        base = self.base_chunk(z, prop_norm, a_vla_norm) if base_norm is None else base_norm
        if self.current is None:
            res = torch.zeros_like(base)
        else:
            res = self.current(prop_norm, base, z).to(base.dtype)
        final = base + alpha * res
        return ResidualOutput(base, res, final, self.to_physical(final), float(alpha))

    def frozen_list(self) -> list[FrozenResidual]:
        return [FrozenResidual(a, lam) for a, lam in zip(self.frozen, self.lams)]

    def next_round(self, new_actor: ResidualChunkActor, lam_current: float) -> ResidualPolicy:
        """Freeze the current residual with ``lam_current`` and start a new round with ``new_actor``."""
        if self.current is None:
            raise ValueError("next_round: there is no current residual to freeze")
        cur = self.current
        frozen = self.frozen_list() + [FrozenResidual(cur, lam_current)]
        return ResidualPolicy(self.action_mean, self.action_std, frozen, new_actor)


# ---------------------------------------------------------------------------------------------- checkpoints
def residual_checkpoint_extra(residuals: Sequence[FrozenResidual], normalizer_version: str) -> dict:
    """``meta.json`` ``extra`` describing a multi-round residual stack: module names, lambdas, dims, config.

    The checkpoint's modules are ``residual_1 .. residual_R`` (safetensors); the last one is the current
    round's actor and its ``lambda`` is the alpha it was deployed with.
    """
    if not residuals:
        raise ValueError("residual_checkpoint_extra: no residuals")
    a = residuals[-1].actor
    return {
        "kind": "residual",
        "normalizer_version": normalizer_version,
        "dims": a.dims(),
        "residual_config": {
            k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in vars(a.cfg).items()
        },
        "residuals": [{"name": f"residual_{i + 1}", "lambda": float(r.lam)} for i, r in enumerate(residuals)],
    }


def load_residual_checkpoint(
    path, normalizer, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[ResidualPolicy, float]:
    """Rebuild the :class:`ResidualPolicy` of a checkpoint directory written by ``bora train online``.

    Returns ``(policy, alpha)``: all residuals but the last are folded into the base; the last is
    ``current`` and ``alpha`` its deployed blend weight. ``normalizer`` must be the run's (its version
    is checked against the checkpoint's). ``verify`` checks the sha256 listed in ``meta.json``.
    """
    import hashlib
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(path)
    if (path / "latest").exists():
        path = path / "checkpoints" / (path / "latest").read_text().strip()
    meta = json.loads((path / "meta.json").read_text())
    extra = meta.get("extra", {})
    if extra.get("kind") != "residual":
        raise ValueError(f"{path}: not a residual checkpoint (meta.json extra.kind = {extra.get('kind')!r})")
    if extra["normalizer_version"] != normalizer.version:
        raise ValueError(
            f"{path}: residual trained with normaliser {extra['normalizer_version']}, "
            f"but the given normaliser is {normalizer.version}"
        )
    cfg = ResidualConfig(**extra["residual_config"])
    actors = []
    from bora_policy.runtime.residual_meta import stack_entries  # names and lambdas as the policy node checks them

    for name, lam in stack_entries(extra, str(path / "meta.json")):
        f = path / f"{name}.safetensors"
        if verify:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest != meta["files"].get(f.name):
                raise ValueError(f"{f}: sha256 mismatch (file corrupted or modified)")
        actor = ResidualChunkActor(cfg=cfg, **extra["dims"])
        actor.load_state_dict(load_file(str(f)))
        actors.append(FrozenResidual(actor.to(device), lam))
    pol = ResidualPolicy.from_normalizer(normalizer, actors[:-1], actors[-1].actor).to(device)
    pol.current.eval()
    return pol, actors[-1].lam
