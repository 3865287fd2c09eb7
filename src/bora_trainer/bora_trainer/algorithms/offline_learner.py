"""The base of every offline learner (``bora train offline --algo NAME``; registry: ``algorithms/registry.py``).

An :class:`OfflineAlgorithm` holds the networks of one method (VLM, action expert, optional critic) and
computes the losses of one batch (:class:`StepOutput`); ``bora_trainer.offline`` builds it, owns the
optimisers (one for the actor, one for the critic), the data loading, data parallelism and checkpoints.
Class attributes tell the trainer which networks to build: ``expert_kind`` ("consistency" / "diffusion"),
``uses_critic`` and ``critic_kind`` ("chunk": on the cognition token; "decoupled": its own pixel encoder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bora_trainer.algorithms.bora.config import OfflineConfig


@dataclass
class StepOutput:
    """What one forward of an algorithm returns to the trainer."""

    actor_loss: torch.Tensor
    critic_loss: torch.Tensor | None
    actor_open: bool
    metrics: dict[str, float]


Reduce = Callable[[torch.Tensor], torch.Tensor] | None


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
