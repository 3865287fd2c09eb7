"""``bc-residual``: plain behaviour cloning of the residual on demonstrations and interventions, no critic.

An online baseline row (``bora train online --algo bc-residual``): the frozen VLA and the residual chunk
actor of the shared :class:`~bora_trainer.algorithms.online_learner.OnlineLearner` are the same as
BORA-Full's, but the residual is trained by imitation alone. The composite chunk
``A_hat = A_base + alpha_t * pi_res(s, A_base, z)`` (Sec. 3.2, Algorithm 1 line 14) regresses onto the
executed chunk on the steps a person chose: every valid step of the offline demonstration rows
(``is_online`` false) and the human-controlled steps (``is_intervention``) of the online rows; the
policy's own steps are not imitated (learning from interventions as in HG-DAgger, Kelly et al. 2019).
This is BORA-Full's ``L_BC`` term without its critic terms (no Q/V update, no improvement hinge, no anchor),
so comparing the two rows on the same data shows what the inherited critic adds.

Loss (ours): ``L = mean over the imitated steps of ||A_hat - A_exec||^2 / A`` (a plain mean over those
steps, not BORA's per-row normalisation) ``+ residual_l2 * mean(A_res^2)`` (Table 3's lambda_l2). A batch
without an imitated step gives ``L_BC = 0``. The critic is carried along untouched (checkpoints keep their
layout). Options: ``OnlineConfig.objective_options`` = :class:`BcResidualConfig` fields
(``config/bc_residual.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bora_trainer.algorithms.online_learner import OnlineObjective
from bora_trainer.config_io import load_config


@dataclass
class BcResidualConfig:
    """offline_rows: also imitate the offline demonstration rows (False: online interventions only).
    residual_l2: weight of ``mean(A_res^2)`` (Table 3: 2e-4, as BORA-Full)."""

    offline_rows: bool = True
    residual_l2: float = 2e-4

    def __post_init__(self) -> None:
        if self.residual_l2 < 0:
            raise ValueError(f"BcResidualConfig.residual_l2 must be >= 0, got {self.residual_l2}")


class BcResidualObjective(OnlineObjective):
    """Imitation of the human-chosen steps by the composite chunk (module docstring)."""

    def __init__(self, learner, options=None):
        super().__init__(learner, options)
        self.bcfg = load_config(BcResidualConfig, self.options)

    def imitated_steps(self, b: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, k] float: 1 on the valid steps that a person chose (demonstration rows, interventions)."""
        chosen = b["is_intervention"].bool()
        if self.bcfg.offline_rows:
            chosen = chosen | (~b["is_online"].bool())[:, None]
        return b["mask"].float() * chosen.float()

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        L = self.learner
        base = b["base"].float().detach()
        with L.autocast():
            res = L.actor(b["proprio"], base, b["z"]).float()
        a_hat = base + L.alpha() * res
        m = self.imitated_steps(b)
        err = ((a_hat - b["action"].float()) ** 2).mean(-1)  # [B, k]
        bc = (err * m).sum() / m.sum().clamp_min(1.0)
        l2 = (res**2).mean()
        loss = bc + self.bcfg.residual_l2 * l2
        return loss, {"actor/loss": loss.item(), "actor/bc": bc.item(), "actor/res_l2": l2.item(),
                      "actor/imitated_steps": float(m.sum())}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        L = self.learner
        loss, info = self.loss(batch)
        L.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        info["actor/grad_norm"] = L.clip_and_step(L.actor_opt, L.actor.parameters())
        return info
