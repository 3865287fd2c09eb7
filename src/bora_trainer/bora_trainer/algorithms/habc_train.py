"""HABC wired into the trainers: ``bora train offline --algo habc`` and ``bora train online --algo habc``.

Offline (:class:`HabcOffline`, applied to the **action expert** + VLM through the actor loss): every chunk
sample ``(episode, t)`` of the dataset is a window; its kind / outcome label / D_succ membership come from
:func:`habc_labels.label_episode` on the episode's ``is_intervention`` and outcome, and its efficiency
transition is ``t -> t + k`` (the sample's next observation; :func:`habc_labels.window_transitions`).
The trainer must hand the dataset over once (``learner.attach_dataset(dataset)``) so the labels can be
built; per update the heads are trained (Eq. 3) and the consistency expert's BC loss is weighted per
sample (Eq. 1, 6, 7). Useful on datasets that mix demonstrations (``source: expert``, weight 1) with
policy rollouts and takeovers; on demonstrations only it reduces to BC (all weights 1).

Online (:class:`HabcResidualObjective`, applied to the **residual actor**): replay rows are windows; offline
rows (``is_online`` false) are demonstrations (weight 1); an online row is an intervention window when
enough of its valid steps are human-controlled. Outcome labels need the episode's outcome and its last
human step: the rollout loop reports each finished episode with ``objective.observe_episode(episode,
success, is_intervention)``; rows of unreported episodes stay unlabelled. The actor loss is the weighted
regression of the composite chunk ``A_base + alpha_t A_res`` onto the executed chunk.

Not supported: HABC on the action expert online (the VLA is frozen online by design).
Hyper-parameters: ``OfflineConfig.algo_options`` / ``OnlineConfig.objective_options`` (:class:`HabcConfig`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bora_trainer.algorithms.aloe import per_sample_weighted_bc
from bora_trainer.algorithms.habc import HabcBatch, HabcConfig, HabcLearner, weighted_actor_loss
from bora_trainer.algorithms.habc_labels import (
    KIND_DEMO,
    KIND_INTERVENTION,
    KIND_POLICY,
    LABEL_NONE,
    episode_success,
    label_episode,
    min_human_steps,
    window_transitions,
)
from bora_trainer.algorithms.offline import OfflineAlgorithm, StepOutput, register_algorithm
from bora_trainer.algorithms.online import OnlineObjective, register_objective
from bora_trainer.config_io import load_config


def _options(cfg: Any, name: str) -> dict:
    v = getattr(cfg, name, None)
    return dict(v) if v else {}


class EpisodeLabelTable:
    """Per-step HABC labels of every episode of a dataset, looked up by ``(episode_id, t)``."""

    def __init__(self, hcfg: HabcConfig, chunk_len: int):
        self.hcfg, self.k = hcfg, chunk_len
        self.eps: dict[int, dict[str, np.ndarray]] = {}

    def add(self, eid: int, is_intervention: np.ndarray, info: dict) -> None:
        success = episode_success(info)
        lab = label_episode(
            is_intervention,
            success,
            self.k,
            self.hcfg.min_human_share,
            is_demo=info.get("source") in self.hcfg.demo_sources,
            demos_in_critic=self.hcfg.demos_in_critic,
        )
        T = len(is_intervention)
        n, term, has = window_transitions(np.arange(T), np.full(T, T), self.k, np.full(T, bool(success)))
        self.eps[int(eid)] = {
            "kind": lab.kind,
            "label": lab.label,
            "in_succ": lab.in_succ,
            "n_steps": n,
            "terminal": term,
            "has_target": has,
        }

    def lookup(self, eids: torch.Tensor, ts: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = {k: [] for k in ("kind", "label", "in_succ", "n_steps", "terminal", "has_target")}
        for e, t in zip(eids.tolist(), ts.tolist(), strict=True):
            if e not in self.eps:
                raise KeyError(f"HABC: episode {e} has no labels (attach_dataset was given another dataset?)")
            ep = self.eps[e]
            for k in rows:
                rows[k].append(ep[k][t])
        dev = eids.device
        return {
            "kind": torch.tensor(np.array(rows["kind"]), dtype=torch.long, device=dev),
            "label": torch.tensor(np.array(rows["label"]), dtype=torch.long, device=dev),
            "in_succ": torch.tensor(np.array(rows["in_succ"]), dtype=torch.bool, device=dev),
            "n_steps": torch.tensor(np.array(rows["n_steps"]), dtype=torch.float32, device=dev),
            "terminal": torch.tensor(np.array(rows["terminal"]), dtype=torch.bool, device=dev),
            "has_target": torch.tensor(np.array(rows["has_target"]), dtype=torch.bool, device=dev),
        }


@register_algorithm("habc")
class HabcOffline(OfflineAlgorithm):
    """HABC on the consistency action expert (module docstring)."""

    expert_kind = "consistency"
    uses_critic = False

    def __init__(self, cfg, vlm, expert, critic=None):
        super().__init__(cfg, vlm, expert, None)
        self.hcfg = h = load_config(HabcConfig, {"chunk_len": cfg.k, **_options(cfg, "algo_options")})
        if h.chunk_len != cfg.k:
            raise ValueError(f"HabcConfig.chunk_len={h.chunk_len} must equal the chunk size k={cfg.k}")
        self.habc = HabcLearner(h, vlm.z_dim, expert.cfg.state_dim)
        self.critic = self.habc.heads
        if self.habc.target is not None:
            self.habc_target = self.habc.target
        self.labels: EpisodeLabelTable | None = None

    def attach_dataset(self, dataset) -> None:
        """Build the window labels of every episode of a :class:`~bora_trainer.data.chunks.ChunkDataset`."""
        from bora_policy.common.episodes import read_episode

        table = EpisodeLabelTable(self.hcfg, self.cfg.k)
        for eid in dataset.episode_ids:
            arrays, info = read_episode(dataset.root, eid, load_images=False)
            table.add(eid, arrays["is_intervention"], info)
        self.labels = table

    def actor_param_groups(self):
        groups = super().actor_param_groups()
        if self.hcfg.freeze_action_expert:
            groups = [g for g in groups if g["name"] != "expert"]
        return groups

    def critic_param_groups(self):
        return [{"params": list(self.habc.heads.parameters()), "lr": self.hcfg.lr, "name": "habc_heads"}]

    def losses(self, batch, step):
        if self.labels is None:
            raise RuntimeError("HabcOffline: call attach_dataset(dataset) before training (the trainer hook)")
        lab = self.labels.lookup(batch["episode_id"], batch["t"])
        z = self.encode(batch["images"], batch["instruction"], batch["state_n"])
        with torch.no_grad():
            z_next = self.encode(batch["next_images"], batch["instruction"], batch["next_state_n"])
        prop = self.expert_proprio(batch["state_n"])
        hb = HabcBatch(
            z=z.detach().float(),
            next_z=z_next.float(),
            proprio=batch["state_n"],
            next_proprio=batch["next_state_n"],
            **lab,
        )
        critic_loss, metrics = self.habc.critic_loss(hb)
        w, wstats = self.habc.weights(hb, step)
        metrics.update(wstats)
        actor_loss = per_sample_weighted_bc(self.expert, z, prop, batch["actions_n"], batch["mask"], w)
        metrics["loss/bc_weighted"] = float(actor_loss.detach())
        return StepOutput(actor_loss, critic_loss, True, metrics)

    def after_step(self, step: int) -> None:
        if self.habc.target is not None:
            from bora_trainer.algorithms.losses import soft_update

            soft_update(self.habc.target, self.habc.heads, self.hcfg.target_tau)


@register_objective("habc")
class HabcResidualObjective(OnlineObjective):
    """HABC on the residual chunk actor (module docstring). Options: :class:`HabcConfig` fields."""

    def __init__(self, learner, options=None):
        super().__init__(learner, options)
        d = learner.dims
        self.hcfg = h = load_config(HabcConfig, {"chunk_len": d["chunk_size"], **self.options})
        self.habc = HabcLearner(h, d["z_dim"], d["state_dim"], learner.device)
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
        return info

    def extra_modules(self):
        mods = {"habc_heads": self.habc.heads}
        if self.habc.target is not None:
            mods["habc_target"] = self.habc.target
        return mods
