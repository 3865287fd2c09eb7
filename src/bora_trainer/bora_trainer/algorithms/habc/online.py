"""HABC online: ``bora train online --algo habc`` (the algorithm: ``habc/learner.py``).

Applied to the **residual actor**: replay rows are windows; offline rows (``is_online`` false) are
demonstrations (weight 1); an online row is an intervention window when enough of its valid steps are
human-controlled. Outcome labels need the episode's outcome and its last human step: the rollout loop
reports each finished episode with ``objective.observe_episode(episode, success, is_intervention)``; rows
of unreported episodes stay unlabelled. The actor loss is the weighted regression of the composite chunk
``A_base + alpha_t A_res`` onto the executed chunk.

Not supported: HABC on the action expert online (the VLA is frozen online by design).
Hyper-parameters: ``OnlineConfig.objective_options`` (:class:`HabcConfig`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from bora_trainer.algorithms.habc.config import HabcConfig
from bora_trainer.algorithms.habc.labels import (
    KIND_DEMO,
    KIND_INTERVENTION,
    KIND_POLICY,
    LABEL_NONE,
    min_human_steps,
    window_transitions,
)
from bora_trainer.algorithms.habc.learner import HabcBatch, HabcLearner
from bora_trainer.algorithms.losses import weighted_actor_loss
from bora_trainer.algorithms.online_learner import OnlineObjective
from bora_trainer.config_io import load_config

log = logging.getLogger(__name__)


class HabcResidualObjective(OnlineObjective):
    """HABC on the residual chunk actor (module docstring). Options: :class:`HabcConfig` fields."""

    def __init__(self, learner, options=None):
        super().__init__(learner, options)
        d = learner.dims
        self.hcfg = h = load_config(HabcConfig, {"chunk_len": d["chunk_size"], **self.options})
        self.habc = HabcLearner(h, d["z_dim"], d["state_dim"], learner.device)
        if h.n_warmup >= learner.cfg.max_updates:
            log.warning(
                "HabcConfig.n_warmup=%d >= online.max_updates=%d: the gate (Algorithm 1 steps 4-5) is not used in "
                "the first round (set objective_options n_warmup to use it sooner)",
                h.n_warmup,
                learner.cfg.max_updates,
            )
        # episode id -> (success, first step of the post-intervention suffix, number of steps)
        self.episodes: dict[int, tuple[bool | None, int, int]] = {}

    def observe_episode(self, episode: int, success: bool | None, is_intervention) -> None:
        """Record a finished episode's outcome and takeover steps (needed for intervention-aware labels)."""
        is_int = np.asarray(is_intervention, dtype=bool)
        human = np.flatnonzero(is_int)
        self.episodes[int(episode)] = (success, int(human[-1]) + 1 if len(human) else 0, len(is_int))

    def row_labels(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """HABC window fields of replay rows (see module docstring)."""
        k = self.hcfg.chunk_len
        dev = b["z"].device
        online = b["is_online"].bool().cpu().numpy() if "is_online" in b else np.ones(len(b["z"]), bool)
        valid = b["mask"].bool().cpu().numpy()
        is_int = b["is_intervention"].bool().cpu().numpy() & valid
        n_valid = valid.sum(1)
        n_human = is_int.sum(1)
        need = np.array([min_human_steps(max(int(n), 1), self.hcfg.min_human_share) for n in n_valid])
        kind = np.where(
            ~online, KIND_DEMO, np.where((n_human >= need) & (n_human > 0), KIND_INTERVENTION, KIND_POLICY)
        )
        B = len(kind)
        label = np.full(B, LABEL_NONE)
        in_succ = np.zeros(B, bool)
        n_steps = np.full(B, k)
        terminal = np.zeros(B, bool)
        has_target = b["next_valid"].bool().cpu().numpy().copy()
        eps, steps = b["episode"].cpu().numpy(), b["step"].cpu().numpy()
        for i in range(B):
            if kind[i] == KIND_DEMO:
                has_target[i] = False
                continue
            rec = self.episodes.get(int(eps[i]))
            if rec is None or rec[0] is None:
                continue
            success, suffix, T = rec
            if kind[i] == KIND_POLICY and steps[i] >= suffix:
                label[i] = int(success)
            in_succ[i] = bool(success) and (label[i] == 1 or kind[i] == KIND_INTERVENTION)
            n, term, has = window_transitions(steps[i : i + 1], np.array([T]), k, np.array([success]))
            n_steps[i], terminal[i], has_target[i] = n[0], term[0], has[0] and (term[0] or has_target[i])
        t = lambda x, dt: torch.as_tensor(x, dtype=dt, device=dev)  # noqa: E731
        return {
            "kind": t(kind, torch.long),
            "label": t(label, torch.long),
            "in_succ": t(in_succ, torch.bool),
            "n_steps": t(n_steps, torch.float32),
            "terminal": t(terminal, torch.bool),
            "has_target": t(has_target, torch.bool),
        }

    def update(self, b):
        L_ = self.learner
        hb = HabcBatch(
            z=b["z"].float(),
            next_z=b["next_z"].float(),
            proprio=b["proprio"].float(),
            next_proprio=b["next_proprio"].float(),
            **self.row_labels(b),
        )
        info = self.habc.critic_step(hb)
        w, wstats = self.habc.weights(hb, L_.step)
        info.update(wstats)
        base = b["base"].float()
        res = L_.actor(b["proprio"], base, b["z"]).float()
        a_hat = base + L_.alpha() * res
        m = b["mask"].float()
        per = (((a_hat - b["action"].float()) ** 2).mean(-1) * m).sum(1) / m.sum(1).clamp_min(1.0)
        loss = weighted_actor_loss(per, w) + L_.cfg.residual_l2 * (res**2).mean()
        L_.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        info["actor/grad_norm"] = L_.clip_and_step(L_.actor_opt, L_.actor.parameters())
        info["actor/loss"] = float(loss.detach())
        info["actor/res_abs"] = float(res.detach().abs().mean())  # the evidence report's online column
        return info

    def extra_modules(self):
        mods = {"habc_heads": self.habc.heads}
        if self.habc.target is not None:
            mods["habc_target"] = self.habc.target
        return mods
