"""Action experts: z_t (+ normalised proprio) -> action chunk [B, k, A] in normalised units.

Two experts behind one ``ActionExpert`` interface (paper Sec. 3.1):

* ``ConsistencyActionExpert`` (BORA's actor): a consistency function ``f(x, sigma, cond)`` with the
  Karras/Song boundary parameterisation
  ``f = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond)``,
  ``c_skip = sd^2 / ((sigma - s_min)^2 + sd^2)``, ``c_out = sd (sigma - s_min) / sqrt(sigma^2 + sd^2)``,
  ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = log(sigma) / 4``, so ``f(x, s_min) = x`` exactly.
  Choice: consistency TRAINING on the demonstration chunks (no diffusion teacher needed, one-stage
  like ConRFT): the improved-CT loss of Song & Dhariwal (2023) (Karras sigma grid with a doubling
  curriculum N = 10 -> 1280, log-normal sigma sampling, weight 1/(sigma_{n+1} - sigma_n),
  pseudo-Huber distance, stop-gradient teacher = the online network) plus ``dsm_weight`` x an EDM
  denoising term ``||f(a + sigma eps, sigma) - a||^2`` (as in CTM, Kim et al. 2023) that speeds up
  the fit on small data. Sampling uses 1-3 steps (sigmas ``sample_sigmas[:n]``).
* ``DiffusionActionExpert`` (the VITRA-style baseline): DDPM (epsilon prediction, 100 training
  timesteps, squared-cosine schedule), sampled with deterministic DDIM in 10-100 steps.

Per-step Gaussian head (both experts), so the PPO ratio of Eq. (2) is defined:
``pi(a_{t+i} | s_t) = N(a_{t+i}; mu_i, diag(sigma^2))`` with ``mu = mean_chunk(z, proprio)`` the
deterministic chunk (sampling with all injected noise set to zero: start at the prior's mode and
re-noise with zero noise) and ``log sigma`` a learned state-independent parameter per action
dimension, clamped to ``[log_std_min, log_std_max]``. ``log_prob(z, proprio, a) -> [B, k]`` sums
the log-density over action dimensions. ``mean_chunk`` is differentiable w.r.t. the expert's
parameters and z (so PPO / BC gradients reach the VLM); for the consistency expert the graph is
1-3 network evaluations, for the diffusion expert it is the full DDIM chain.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ExpertConfig:
    """Shared expert hyper-parameters (chunk size k = 32, Table 3)."""

    action_dim: int = 27
    z_dim: int = 96
    state_dim: int = 0  # 0: no proprio conditioning
    chunk_size: int = 32
    hidden_dim: int = 512
    num_blocks: int = 3
    cond_dim: int = 256
    log_std_init: float = -1.0
    log_std_min: float = -5.0
    log_std_max: float = 1.0


def _fourier(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of a scalar per row: ``[B] -> [B, dim]`` (frequencies 1 .. 1000)."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, device=s.device, dtype=torch.float32))
    ang = s.float().unsqueeze(-1) * freqs
    return torch.cat([ang.sin(), ang.cos()], -1)


class _FiLMBlock(nn.Module):
    def __init__(self, hidden: int, cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(cond, 2 * hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
        with torch.no_grad():  # small (not zero) FiLM init: the condition (z_t) gets gradients from step 0
            self.film.weight.mul_(0.1)
            self.film.bias.zero_()

    def forward(self, h, c):
        scale, shift = self.film(c).chunk(2, -1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class ChunkDenoiser(nn.Module):
    """``F(x [B,k,A], noise_feature [B], cond [B,C]) -> [B,k,A]``: residual MLP over the flattened
    chunk with FiLM conditioning on (z, proprio, noise level). Fast on CPU, k*A in/out."""

    def __init__(self, cfg: ExpertConfig):
        super().__init__()
        k, A, H, C = cfg.chunk_size, cfg.action_dim, cfg.hidden_dim, cfg.cond_dim
        self.k, self.A = k, A
        self.cond = nn.Sequential(nn.Linear(cfg.z_dim + cfg.state_dim + 64, C), nn.SiLU(), nn.Linear(C, C))
        self.inp = nn.Linear(k * A, H)
        self.cond_in = nn.Linear(C, H)  # additive condition path into the trunk
        self.blocks = nn.ModuleList(_FiLMBlock(H, C) for _ in range(cfg.num_blocks))
        self.out_norm = nn.LayerNorm(H)
        self.out = nn.Linear(H, k * A)
        # Per-step linear skip (A x A, shared over the chunk): the flattened trunk is narrower than
        # k*A, so without it an epsilon-predictor could not pass its input noise through.
        self.skip = nn.Linear(A, A)
        nn.init.zeros_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)

    def forward(self, x, noise_feat, cond):
        c = self.cond(torch.cat([cond, _fourier(noise_feat, 64)], -1))
        h = self.inp(x.flatten(1)) + self.cond_in(c)
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(self.out_norm(h)).view(-1, self.k, self.A) + self.skip(x)


class ActionExpert(nn.Module, ABC):
    """Interface: ``sample``, ``mean_chunk``, ``bc_loss``, ``log_prob`` (normalised action units)."""

    default_num_steps: int = 1

    def __init__(self, cfg: ExpertConfig):
        super().__init__()
        if cfg.action_dim <= 0 or cfg.chunk_size <= 0 or cfg.z_dim <= 0 or cfg.state_dim < 0:
            raise ValueError(f"ExpertConfig: invalid dimensions {cfg}")
        self.cfg = cfg
        self.net = ChunkDenoiser(cfg)
        self.log_std = nn.Parameter(torch.full((cfg.action_dim,), float(cfg.log_std_init)))

    # ------------------------------------------------------------------ helpers
    @property
    def action_dim(self) -> int:
        return self.cfg.action_dim

    @property
    def chunk_size(self) -> int:
        return self.cfg.chunk_size

    def _cond(self, z: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        name = type(self).__name__
        if z.ndim != 2 or z.shape[1] != self.cfg.z_dim:
            raise ValueError(f"{name}: z must be [B, z_dim={self.cfg.z_dim}], got {tuple(z.shape)}")
        if self.cfg.state_dim:
            if proprio is None:
                raise ValueError(f"{name}: proprio [B, state_dim={self.cfg.state_dim}] is required")
            if proprio.shape != (z.shape[0], self.cfg.state_dim):
                raise ValueError(
                    f"{name}: proprio must be [B={z.shape[0]}, state_dim={self.cfg.state_dim}], "
                    f"got {tuple(proprio.shape)}"
                )
            return torch.cat([z.float(), proprio.float()], -1)
        return z.float()

    def _check_actions(self, actions: torch.Tensor, B: int) -> None:
        exp = (B, self.cfg.chunk_size, self.cfg.action_dim)
        if tuple(actions.shape) != exp:
            raise ValueError(
                f"{type(self).__name__}: actions must be [B, k, A] = {list(exp)}, got {tuple(actions.shape)}"
            )

    def _mask(self, mask, B: int, device) -> torch.Tensor:
        if mask is None:
            return torch.ones(B, self.cfg.chunk_size, device=device)
        if tuple(mask.shape) != (B, self.cfg.chunk_size):
            raise ValueError(
                f"{type(self).__name__}: mask must be [B, k] = {[B, self.cfg.chunk_size]}, "
                f"got {tuple(mask.shape)}"
            )
        return mask.to(device=device, dtype=torch.float32)

    @staticmethod
    def _masked_mean(per_step: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Mean over valid steps of each chunk (1/|M_t| sum_i m_i x_i), then over the batch."""
        per_chunk = (per_step * m).sum(1) / m.sum(1).clamp(min=1.0)
        return per_chunk.mean()

    def _noise(self, shape, device, generator) -> torch.Tensor:
        return torch.randn(shape, device=device, generator=generator)

    # ------------------------------------------------------------------ Gaussian head
    def std(self) -> torch.Tensor:
        return self.log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max).exp()

    def log_prob(
        self,
        z: torch.Tensor,
        proprio: torch.Tensor | None,
        actions: torch.Tensor,
        num_steps: int | None = None,
        mean: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log N(a_{t+i}; mu_i, diag(sigma^2))`` summed over action dims -> ``[B, k]`` (PPO ratio, Eq. 2).

        ``mean`` may be passed to reuse an already computed ``mean_chunk``.
        """
        if mean is None:
            mean = self.mean_chunk(z, proprio, num_steps)
        self._check_actions(actions, mean.shape[0])
        log_std = self.log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)
        zsc = (actions.float() - mean) / log_std.exp()
        return (-0.5 * zsc.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Per-step entropy of the Gaussian head (scalar, summed over action dims)."""
        log_std = self.log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()

    # ------------------------------------------------------------------ interface
    @abstractmethod
    def sample(
        self,
        z,
        proprio=None,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_scale: float = 1.0,
    ) -> torch.Tensor:
        """A chunk ``[B, k, A]`` (normalised). ``noise_scale=0`` gives ``mean_chunk``."""

    def mean_chunk(self, z, proprio=None, num_steps: int | None = None) -> torch.Tensor:
        """Deterministic chunk (all sampling noise zero), differentiable w.r.t. parameters and z."""
        return self.sample(z, proprio, num_steps, noise_scale=0.0)

    def bc_loss(self, z, proprio, actions_norm, mask=None) -> torch.Tensor:
        """Behaviour-cloning (generative) loss on normalised demonstration chunks, masked mean."""
        m = self._mask(mask, z.shape[0], z.device)
        loss = self._masked_mean(self.bc_loss_per_step(z, proprio, actions_norm), m)
        self._after_bc_loss()
        return loss

    @abstractmethod
    def bc_loss_per_step(self, z, proprio, actions_norm, generator: torch.Generator | None = None) -> torch.Tensor:
        """The generative loss of each step ``[B, k]`` (no mask), its noise drawn from ``generator`` (default:
        the global generator). ``-bc_loss_per_step`` is the likelihood proxy of ``OfflineConfig.ppo_likelihood``
        "consistency" (FPO's, McAllister et al. 2025: the same noise for the current and the reference expert)."""

    def _after_bc_loss(self) -> None:
        """Bookkeeping after one training loss (the consistency curriculum counts its steps)."""


# ====================================================================================== consistency


@dataclass
class ConsistencyConfig(ExpertConfig):
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    p_mean: float = -1.1
    p_std: float = 2.0
    ct_s0: int = 10
    ct_s1: int = 1280
    ct_total_steps: int = 70_000  # curriculum length (Table 3: 70k offline updates)
    ct_weight: float = 1.0
    dsm_weight: float = 1.0
    dsm_level_frac: float = 0.5
    num_inference_steps: int = 1
    sample_sigmas: tuple[float, ...] = (80.0, 1.0, 0.25)


class ConsistencyActionExpert(ActionExpert):
    """Consistency policy (1-3 steps); see the module docstring for the parameterisation and loss."""

    def __init__(self, cfg: ConsistencyConfig):
        if not 1 <= cfg.num_inference_steps <= len(cfg.sample_sigmas):
            raise ValueError(
                f"ConsistencyConfig.num_inference_steps must be in 1..{len(cfg.sample_sigmas)}, "
                f"got {cfg.num_inference_steps}"
            )
        super().__init__(cfg)
        self.default_num_steps = cfg.num_inference_steps
        self.register_buffer("ct_step", torch.zeros((), dtype=torch.long))

    # -- parameterisation
    def c_skip(self, sigma):
        c = self.cfg
        return c.sigma_data**2 / ((sigma - c.sigma_min) ** 2 + c.sigma_data**2)

    def c_out(self, sigma):
        c = self.cfg
        return c.sigma_data * (sigma - c.sigma_min) / (sigma**2 + c.sigma_data**2).sqrt()

    def c_in(self, sigma):
        return 1.0 / (sigma**2 + self.cfg.sigma_data**2).sqrt()

    def consistency_fn(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``f(x, sigma, cond)`` with the boundary condition ``f(x, sigma_min) = x``. sigma: ``[B]``."""
        s = sigma.view(-1, 1, 1)
        F_x = self.net(self.c_in(s) * x, 0.25 * sigma.log(), cond)
        return self.c_skip(s) * x + self.c_out(s) * F_x

    # -- iCT discretisation
    def num_scales(self, step: int | None = None) -> int:
        c = self.cfg
        step = int(self.ct_step) if step is None else step
        n_stages = math.floor(math.log2(c.ct_s1 / c.ct_s0)) + 1
        k_prime = max(1, c.ct_total_steps // n_stages)
        return int(min(c.ct_s0 * 2 ** (step // k_prime), c.ct_s1)) + 1

    def karras_sigmas(self, n: int, device=None) -> torch.Tensor:
        c = self.cfg
        i = torch.arange(n, device=device, dtype=torch.float64) / (n - 1)
        lo, hi = c.sigma_min ** (1 / c.rho), c.sigma_max ** (1 / c.rho)
        return ((lo + i * (hi - lo)) ** c.rho).float()

    def bc_loss_per_step(self, z, proprio, actions_norm, generator: torch.Generator | None = None) -> torch.Tensor:
        """iCT loss + ``dsm_weight`` x EDM denoising loss of each step ``[B, k]`` (``bc_loss``: masked mean)."""
        c = self.cfg
        cond = self._cond(z, proprio)
        B = cond.shape[0]
        self._check_actions(actions_norm, B)
        a = actions_norm.float().to(cond.device)
        dev = cond.device
        g = generator
        # consistency training pair (sigma_n, sigma_{n+1}) on the Karras grid
        N = self.num_scales()
        sig = self.karras_sigmas(N, dev)
        lo, hi = sig[:-1].log(), sig[1:].log()
        erf = torch.special.erf
        p = erf((hi - c.p_mean) / (math.sqrt(2) * c.p_std)) - erf((lo - c.p_mean) / (math.sqrt(2) * c.p_std))
        n = torch.multinomial(p.clamp(min=1e-12), B, replacement=True, generator=g)
        s_n, s_n1 = sig[n], sig[n + 1]
        eps = torch.randn(a.shape, device=dev, generator=g)
        f_student = self.consistency_fn(a + s_n1.view(-1, 1, 1) * eps, s_n1, cond)
        with torch.no_grad():
            f_teacher = self.consistency_fn(a + s_n.view(-1, 1, 1) * eps, s_n, cond)
        huber_c = 0.00054 * math.sqrt(c.action_dim)
        d = ((f_student - f_teacher).pow(2).sum(-1) + huber_c**2).sqrt() - huber_c  # [B, k]
        # 1/(sigma_{n+1} - sigma_n), normalised by its expectation under p(n) so the CT term keeps a
        # stable scale relative to the denoising term as the curriculum refines the grid.
        w_all = 1.0 / (sig[1:] - sig[:-1])
        w = (w_all[n] / ((p / p.sum()) * w_all).sum()).view(-1, 1)
        loss = c.ct_weight * (w * d)
        if c.dsm_weight > 0:
            s = (torch.randn(B, device=dev, generator=g) * c.p_std + c.p_mean).exp()
            s = s.clamp(c.sigma_min * 1.01, c.sigma_max)
            # a fraction of the rows at the inference noise levels (sample_sigmas), which the log-normal
            # sampling rarely visits
            lv = torch.tensor(c.sample_sigmas, device=dev)[
                torch.randint(len(c.sample_sigmas), (B,), device=dev, generator=g)
            ]
            s = torch.where(torch.rand(B, device=dev, generator=g) < c.dsm_level_frac, lv, s)
            den = self.consistency_fn(a + s.view(-1, 1, 1) * torch.randn(a.shape, device=dev, generator=g), s, cond)
            lam = ((s**2 + c.sigma_data**2) / (s * c.sigma_data) ** 2).view(-1, 1)
            loss = loss + c.dsm_weight * (lam * (den - a).pow(2).mean(-1))
        return loss

    def _after_bc_loss(self) -> None:
        if self.training and torch.is_grad_enabled():
            self.ct_step += 1

    def sample(self, z, proprio=None, num_steps=None, generator=None, noise_scale: float = 1.0):
        c = self.cfg
        n = self.default_num_steps if num_steps is None else int(num_steps)
        if not 1 <= n <= len(c.sample_sigmas):
            raise ValueError(
                f"ConsistencyActionExpert.sample: num_steps must be 1..{len(c.sample_sigmas)}, got {n}"
            )
        cond = self._cond(z, proprio)
        B, dev = cond.shape[0], cond.device
        shape = (B, c.chunk_size, c.action_dim)
        x = (
            c.sample_sigmas[0] * noise_scale * self._noise(shape, dev, generator)
            if noise_scale
            else torch.zeros(shape, device=dev)
        )
        a = self.consistency_fn(x, torch.full((B,), c.sample_sigmas[0], device=dev), cond)
        for s in c.sample_sigmas[1:n]:
            std = math.sqrt(max(s**2 - c.sigma_min**2, 0.0))
            x = a + std * noise_scale * self._noise(shape, dev, generator) if noise_scale else a
            a = self.consistency_fn(x, torch.full((B,), s, device=dev), cond)
        return a


# ====================================================================================== diffusion


@dataclass
class DiffusionConfig(ExpertConfig):
    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    prediction_type: str = "sample"  # "sample" (x0 prediction, default) or "epsilon" (DDPM)
    # Clip the x0 estimate to [-clip, clip] (normalised units) while sampling: with the cosine schedule
    # alpha_bar at t = T-1 is ~1e-5, so an unclipped x0 = (x - sqrt(1-ab) eps) / sqrt(ab) amplifies eps errors
    # (Diffusion Policy clips likewise). 0 disables.
    clip_sample: float = 5.0


class DiffusionActionExpert(ActionExpert):
    """DDPM (epsilon prediction, squared-cosine betas) + DDIM (eta = 0) sampling in 10-100 steps."""

    def __init__(self, cfg: DiffusionConfig):
        super().__init__(cfg)
        if cfg.prediction_type not in ("epsilon", "sample"):
            raise ValueError(
                f"DiffusionConfig.prediction_type must be 'epsilon' or 'sample', got {cfg.prediction_type!r}"
            )
        if not 1 <= cfg.num_inference_steps <= cfg.num_train_timesteps:
            raise ValueError("DiffusionConfig.num_inference_steps must be in 1..num_train_timesteps")
        self.default_num_steps = cfg.num_inference_steps
        T = cfg.num_train_timesteps
        f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor(
            [min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)], dtype=torch.float64
        )
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)

    def bc_loss_per_step(self, z, proprio, actions_norm, generator: torch.Generator | None = None) -> torch.Tensor:
        """DDPM epsilon-prediction MSE of each step ``[B, k]`` (mean over A; ``bc_loss``: masked mean)."""
        cond = self._cond(z, proprio)
        B = cond.shape[0]
        self._check_actions(actions_norm, B)
        a = actions_norm.float().to(cond.device)
        t = torch.randint(0, self.cfg.num_train_timesteps, (B,), device=cond.device, generator=generator)
        ab = self.alphas_cumprod[t].view(-1, 1, 1)
        eps = torch.randn(a.shape, device=a.device, generator=generator)
        x_t = ab.sqrt() * a + (1 - ab).sqrt() * eps
        pred = self.net(x_t, t.float() / self.cfg.num_train_timesteps, cond)
        target = eps if self.cfg.prediction_type == "epsilon" else a
        return (pred - target).pow(2).mean(-1)

    def sample(self, z, proprio=None, num_steps=None, generator=None, noise_scale: float = 1.0):
        c = self.cfg
        n = self.default_num_steps if num_steps is None else int(num_steps)
        if not 1 <= n <= c.num_train_timesteps:
            raise ValueError(
                f"DiffusionActionExpert.sample: num_steps must be 1..{c.num_train_timesteps}, got {n}"
            )
        cond = self._cond(z, proprio)
        B, dev = cond.shape[0], cond.device
        shape = (B, c.chunk_size, c.action_dim)
        x = (
            noise_scale * self._noise(shape, dev, generator)
            if noise_scale
            else torch.zeros(shape, device=dev)
        )
        ts = torch.linspace(c.num_train_timesteps - 1, 0, n).round().long().tolist()
        x0 = x
        for j, t in enumerate(ts):
            ab = self.alphas_cumprod[t]
            ab_prev = self.alphas_cumprod[ts[j + 1]] if j + 1 < n else torch.ones((), device=dev)
            out = self.net(x, torch.full((B,), t / c.num_train_timesteps, device=dev), cond)
            if c.prediction_type == "epsilon":
                eps = out
                x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
            else:
                x0 = out
            if c.clip_sample > 0:
                x0 = x0.clamp(-c.clip_sample, c.clip_sample)
            if c.prediction_type != "epsilon" or c.clip_sample > 0:
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x0


def build_expert(kind: str, **kwargs) -> ActionExpert:
    """``kind`` in {"consistency", "diffusion"}; kwargs are the config fields."""
    if kind == "consistency":
        return ConsistencyActionExpert(ConsistencyConfig(**kwargs))
    if kind == "diffusion":
        return DiffusionActionExpert(DiffusionConfig(**kwargs))
    raise ValueError(f"expert kind must be 'consistency' or 'diffusion', got {kind!r}")
