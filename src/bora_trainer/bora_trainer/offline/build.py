"""What the offline trainer builds: the method's learner (VLM, action expert, critic) from the registry,
the deployable policy's ``VLAConfig``, and a run initialised from another run (``OfflineConfig.init_from``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm


def build_learner(
    cfg: OfflineConfig, state_dim: int, action_dim: int, device: torch.device, n_cameras: int = 1
) -> OfflineAlgorithm:
    """VLM + action expert (+ critic) for ``cfg.algo``, on ``device``."""
    from bora_policy.models.action_expert import build_expert
    from bora_policy.models.vlm import build_vlm

    algo_cls = registry.offline_learner(cfg.algo)
    mc = cfg.model
    vlm = build_vlm(
        mc.vlm,
        state_dim=state_dim if mc.use_proprio else None,
        device=device,
        bf16=mc.bf16,
        gradient_checkpointing=mc.gradient_checkpointing,
        load_weights=mc.vlm_load_weights,
    )
    expert_kw = dict(
        action_dim=action_dim, z_dim=vlm.z_dim, state_dim=state_dim if mc.use_proprio else 0, chunk_size=cfg.k
    )
    if algo_cls.expert_kind == "consistency":
        expert_kw["ct_total_steps"] = cfg.total_updates
    expert_kw.update(mc.expert)
    expert = build_expert(algo_cls.expert_kind, **expert_kw)
    critic = None
    if algo_cls.uses_critic:
        critic = build_critic(
            cfg, algo_cls, z_dim=vlm.z_dim, state_dim=state_dim, action_dim=action_dim, n_cameras=n_cameras
        )
    return algo_cls(cfg, vlm, expert.to(device), critic.to(device) if critic is not None else None).to(device)


def build_critic(
    cfg: OfflineConfig, algo_cls, z_dim: int, state_dim: int, action_dim: int, n_cameras: int = 1
) -> nn.Module:
    """``ChunkCritic`` on z_t, or ``DecoupledChunkCritic`` (own pixel encoder) when the algorithm asks for it;
    ``cfg.model.critic`` holds extra constructor arguments (hidden_dim, num_q, ...)."""
    from bora_policy.models.critic import ChunkCritic, DecoupledChunkCritic

    kw = dict(cfg.model.critic)
    if getattr(algo_cls, "critic_kind", "chunk") == "decoupled":
        kw.setdefault("state_dim", state_dim if cfg.model.use_proprio else 0)
        return DecoupledChunkCritic(n_cameras=n_cameras, action_dim=action_dim, chunk_size=cfg.k, **kw)
    return ChunkCritic(z_dim=z_dim, action_dim=action_dim, chunk_size=cfg.k, **kw)


_EXPERT_ARCH_FIELDS = {
    "hidden_dim": "expert_hidden_dim",
    "num_blocks": "expert_num_blocks",
    "cond_dim": "expert_cond_dim",
}


def policy_config(
    cfg: OfflineConfig, algo_cls, state_dim: int, action_dim: int, n_cameras: int, image_size: int
):
    """The ``VLAConfig`` that rebuilds exactly the VLM and action expert of :func:`build_learner`.

    ``num_inference_steps`` is ``model.expert_sample_steps`` (what the trainer samples with), or the
    expert's own default when that is 0. Every other ``model.expert`` entry goes to ``expert_kwargs``.
    """
    from bora_policy.models.action_expert import ConsistencyConfig, DiffusionConfig
    from bora_policy.models.vla import VLAConfig

    mc = cfg.model
    kind = algo_cls.expert_kind
    ecls = ConsistencyConfig if kind == "consistency" else DiffusionConfig
    extra = dict(mc.expert)
    arch = {dst: extra.pop(src, getattr(ecls, src)) for src, dst in _EXPERT_ARCH_FIELDS.items()}
    own_steps = extra.pop("num_inference_steps", ecls.num_inference_steps)
    if kind == "consistency":
        extra.setdefault("ct_total_steps", cfg.total_updates)  # as build_learner (training-only field)
    vlm = mc.vlm
    if Path(vlm).exists():  # a local checkpoint directory: absolute, so the export works from anywhere
        vlm = str(Path(vlm).resolve())
    return VLAConfig(
        vlm=vlm,
        expert=kind,
        action_dim=action_dim,
        state_dim=state_dim,
        chunk_size=cfg.k,
        num_inference_steps=int(mc.expert_sample_steps or own_steps),
        n_cameras=n_cameras,
        image_size=int(image_size),
        proprio_token=mc.use_proprio,
        expert_proprio=mc.use_proprio,
        expert_kwargs=extra,
        padding_side="right",
        bf16=mc.bf16,
        gradient_checkpointing=False,  # inference only
        vlm_dtype="float32",
        **arch,
    )


def run_root(path: str | Path) -> Path:
    """The run directory of ``path`` (a run directory, or one of its checkpoint directories)."""
    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "normalizer.json").exists():
            return cand
    raise FileNotFoundError(f"init_from: {path} is not a run directory (no normalizer.json in it or above)")


def init_modules_from(learner: OfflineAlgorithm, path: str | Path) -> list[str]:
    """Load every module of ``learner`` whose state (parameter names and shapes) matches the same-named
    module of the deployed checkpoint under ``path`` (``OfflineConfig.init_from``; ``select.deployed_checkpoint``:
    the latest unless ``bora select`` chose another; ``path`` itself when it is a checkpoint directory).
    Returns the loaded names.

    The VLM must match (an error names the mismatch otherwise: the runs were built from different VLM
    configs); the action expert / critic are loaded only when they are of the same kind and shape (e.g. a
    ``cp-bc`` warm-up initialises the consistency expert of ``bora`` but not the diffusion expert of
    ``diffusion-bc``). A reference copy of the expert (PPO's pi_theta_old) is re-synchronised afterwards.
    A source trained with ``policy_ema`` gives its weight average (``vlm_ema`` / ``expert_ema``: the policy it
    exported), not its raw weights."""
    from bora_trainer.select import load_deployed

    src = load_deployed(path)["modules"]  # the checkpoint RUN/policy came from, its weight average if any
    loaded = []
    for name, mod in learner.modules_to_save().items():
        if name == "expert_ref" or name not in src:
            continue
        own = mod.state_dict()
        same = set(own) == set(src[name]) and all(own[k].shape == src[name][k].shape for k in own)
        if not same:
            if name == "vlm":
                diff = sorted(set(own) ^ set(src[name]))[:3] or [
                    k for k in own if own[k].shape != src[name][k].shape
                ][:3]
                raise ValueError(f"init_from {path}: the VLM does not match this run's (differs in {diff})")
            continue
        mod.load_state_dict(src[name])
        loaded.append(name)
    if "vlm" not in loaded:
        raise ValueError(f"init_from {path}: the checkpoint has no 'vlm' weights (has {sorted(src)})")
    if "expert" in loaded and hasattr(learner, "refresh_reference"):
        learner.refresh_reference()
    return loaded
