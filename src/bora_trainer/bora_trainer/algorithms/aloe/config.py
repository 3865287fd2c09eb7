"""ALOE's hyper-parameters (``OfflineConfig.algo_options`` / ``OnlineConfig.objective_options``;
defaults documented in ``config/aloe.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class AloeConfig:
    """ALOE hyper-parameters. [P] primary, [S] secondary source, [I] inferred: provisional, ablate.

    horizon: Q-chunk horizon h in control steps; 0 = the chunk length k. [I: the executed part of the
        chunk, so that rewards and s_{t+h} are logged; BORA executes k = 32.]
    n_heads: ensemble size N [unknown; I: 4].
    n_value_samples: K chunks sampled from the actor for V^pi [S/I: 4-8].
    gamma: discount [S: 0.99]. tau: target Polyak rate [S: 0.005].
    done_mask: mask the bootstrap (and rewards after a terminal) in the chunked target [S: the v1 chunked
        equation omits it; the spec says implement it].
    target_aggregate / advantage_aggregate: "min" over heads (pessimistic) [P for the advantage; I for the
        target], or "mean".
    beta: advantage temperature [S: reimplementation guess 0.5]. weight_clip: eps of the clip [S: 5].
    weight_form: "exp_clip" = ``exp(clip(A/beta, -eps, eps))`` [S: recommended]; "clip_exp" =
        ``clip(exp(A/beta), 0, exp(eps))`` (the explainer's reading, same upper cap).
    head_bootstrap_p: each head trains on a Bernoulli(p) subset of the batch [I: Sec. 8.2; 1 = off].
    width / num_layers / num_attn_heads: critic trunk [S: 256 / 6 / 8]. dropout: 0.
    critic_lr / actor_lr / weight_decay / batch_size: [S: AdamW 3e-5, batch 256].
    critic_steps / actor_steps: gradient steps per stage of one loop iteration [unknown; I]. 0 (the default)
        = derived from the run (``losses.stage_lengths``): offline, the updates after ``ppo_start`` split into
        ``iterations`` loops of a critic and an actor stage of equal length; online, ``online.max_updates`` (one
        round's cap) split the same way. A fixed count (the earlier default was 2000 each) must fit the run:
        at the demo's 500 offline updates (214 after ppo_start) and <= 400 online updates per round, 2000 meant
        the actor stage never came (the offline row was BC until ppo_start, the online residual untrained).
    iterations: collect/critic/actor rounds [P: 5 phone, 3-4 sorting].
    target_samples: fresh actor samples a' averaged in the bootstrap [I: 1 = the spec's single a'].
    """

    horizon: int = 0
    n_heads: int = 4
    n_value_samples: int = 4
    gamma: float = 0.99
    tau: float = 0.005
    done_mask: bool = True
    target_aggregate: Literal["min", "mean"] = "min"
    advantage_aggregate: Literal["min", "mean"] = "min"
    beta: float = 0.5
    weight_clip: float = 5.0
    weight_form: Literal["exp_clip", "clip_exp"] = "exp_clip"
    head_bootstrap_p: float = 1.0
    width: int = 256
    num_layers: int = 6
    num_attn_heads: int = 8
    dropout: float = 0.0
    critic_lr: float = 3e-5
    actor_lr: float = 3e-5
    weight_decay: float = 1e-4
    batch_size: int = 256
    critic_steps: int = 0
    actor_steps: int = 0
    iterations: int = 5
    target_samples: int = 1

    def __post_init__(self) -> None:
        if self.horizon < 0:
            raise ValueError(f"AloeConfig.horizon must be >= 0 (0 = chunk length), got {self.horizon}")
        if self.n_heads < 1 or self.n_value_samples < 1 or self.target_samples < 1:
            raise ValueError("AloeConfig.n_heads, n_value_samples and target_samples must be >= 1")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"AloeConfig.gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"AloeConfig.tau must be in [0, 1], got {self.tau}")
        if self.beta <= 0 or self.weight_clip <= 0:
            raise ValueError(
                f"AloeConfig.beta and weight_clip must be > 0, got {self.beta}, {self.weight_clip}"
            )
        for name in ("target_aggregate", "advantage_aggregate"):
            if getattr(self, name) not in ("min", "mean"):
                raise ValueError(f"AloeConfig.{name} must be 'min' or 'mean', got {getattr(self, name)!r}")
        if self.weight_form not in ("exp_clip", "clip_exp"):
            raise ValueError(
                f"AloeConfig.weight_form must be 'exp_clip' or 'clip_exp', got {self.weight_form!r}"
            )
        if not 0.0 < self.head_bootstrap_p <= 1.0:
            raise ValueError(f"AloeConfig.head_bootstrap_p must be in (0, 1], got {self.head_bootstrap_p}")
        if self.critic_steps < 0 or self.actor_steps < 0:
            raise ValueError(
                f"AloeConfig.critic_steps and actor_steps must be >= 0 (0 = derived from the run), got "
                f"{self.critic_steps} and {self.actor_steps}"
            )
        if self.iterations < 1:
            raise ValueError(f"AloeConfig.iterations must be >= 1, got {self.iterations}")
        if self.width % self.num_attn_heads:
            raise ValueError(
                f"AloeConfig.width ({self.width}) must be divisible by num_attn_heads ({self.num_attn_heads})"
            )
