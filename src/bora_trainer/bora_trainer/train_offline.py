"""``bora train offline``: the offline phase (BORA and the Table 1 baselines) on an episode dataset.

    bora train offline --algo bora --data DATASET --config config/offline_demo.yaml --out runs/demo
    torchrun --nproc_per_node 8 -m bora_trainer.train_offline --algo bora --data D --config \
        config/offline_8xh100.yaml --out RUN

Data parallel under torchrun (``torch.distributed``: nccl on CUDA, gloo on CPU): each process reads
``batch_size`` samples per update through a ``DistributedSampler`` (so the global batch is
``world_size * batch_size``), gradients are averaged by DDP (or FSDP2 with ``fsdp: true``), and only rank
0 writes checkpoints, TensorBoard logs and the progress bar. Pooled batch statistics (advantage
normalisation, the gate) are all-reduced so every rank takes the same decision.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm
from bora_trainer.checkpoint import RunLogger, load_checkpoint, save_checkpoint, write_run_files
from bora_trainer.config_io import load_config, to_dict
from bora_trainer.data.chunks import ChunkDataset


# ---------------------------------------------------------------------------------------------- distributed
@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str = "auto") -> DistInfo:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    want_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# ---------------------------------------------------------------------------------------------- building
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


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ random shift (``OfflineConfig.augment_shift``): pad ``[..., C, H, W]`` images by ``pad`` pixels
    (edge replicate) and crop ``H x W`` back at an offset drawn uniformly in ``[0, 2 pad]`` per image
    (every leading index: sample and camera). Keeps the dtype (uint8 in, uint8 out)."""
    if pad <= 0:
        return images
    if images.dim() < 3:
        raise ValueError(f"random_shift: expected [..., C, H, W] images, got shape {tuple(images.shape)}")
    C, H, W = images.shape[-3:]
    flat = images.reshape(-1, C, H, W).float()
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (flat.shape[0], 2), generator=generator).tolist()
    crops = [padded[i, :, dy : dy + H, dx : dx + W] for i, (dy, dx) in enumerate(off)]
    return torch.stack(crops).reshape(images.shape).to(images.dtype)


def is_clean_episode(info: dict) -> bool:
    """A successful scripted-expert demonstration with every quality knob at 0 (``OfflineConfig.episodes``)."""
    knobs = info.get("quality") or {}
    return (
        info.get("source", "expert") == "expert"
        and bool(info.get("success", False))
        and all(float(v) == 0.0 for v in knobs.values())
    )


def select_episodes(data_dir: str | Path, which: str) -> list[int] | None:
    """Episode ids for ``OfflineConfig.episodes``: None (all) or the clean ones (an error when there are none)."""
    if which == "all":
        return None
    import json

    from bora_policy.common.episodes import episode_ids

    root = Path(data_dir)
    ids = [
        e
        for e in episode_ids(root)
        if is_clean_episode(json.loads((root / "episodes" / f"episode_{e:06d}.json").read_text()))
    ]
    if not ids:
        raise ValueError(f"OfflineConfig.episodes = 'clean': {root} has no clean expert episodes")
    return ids


def _run_root(path: str | Path) -> Path:
    """The run directory of ``path`` (a run directory, or one of its checkpoint directories)."""
    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "normalizer.json").exists():
            return cand
    raise FileNotFoundError(f"init_from: {path} is not a run directory (no normalizer.json in it or above)")


def init_modules_from(learner: OfflineAlgorithm, path: str | Path) -> list[str]:
    """Load every module of ``learner`` whose state (parameter names and shapes) matches the same-named
    module of the latest checkpoint under ``path`` (``OfflineConfig.init_from``). Returns the loaded names.

    The VLM must match (an error names the mismatch otherwise: the runs were built from different VLM
    configs); the action expert / critic are loaded only when they are of the same kind and shape (e.g. a
    ``cp-bc`` warm-up initialises the consistency expert of ``bora`` but not the diffusion expert of
    ``diffusion-bc``). A reference copy of the expert (PPO's pi_theta_old) is re-synchronised afterwards."""
    ck = load_checkpoint(path)
    src = ck["modules"]
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


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------- trainer
class OfflineTrainer:
    """Owns data, learner, optimisers, checkpoints and the update loop (see module docstring)."""

    def __init__(
        self,
        cfg: OfflineConfig,
        data_dir: str | Path,
        run_dir: str | Path,
        resume: bool = False,
        dist_info: DistInfo | None = None,
        progress: bool = True,
    ):
        from bora_policy.models.normalizer import Normalizer

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.di = di = dist_info or setup_distributed(cfg.device)
        self.progress = progress and di.is_main
        _seed_all(cfg.seed)
        self.dataset = ChunkDataset(data_dir, cfg.data, episodes=select_episodes(data_dir, cfg.episodes))
        meta = self.dataset.meta
        if cfg.data.camera_names is None:
            cfg.data.camera_names = list(meta.camera_names)
        if cfg.task is None and len(meta.tasks) == 1:  # recorded for `bora eval --run RUN`
            cfg.task = meta.tasks[0]
        cfg.data_dir = str(Path(data_dir).resolve())  # recorded for `bora train online --offline-run RUN`
        self.ckpt = None
        if resume:
            try:
                self.ckpt = load_checkpoint(self.run_dir)
            except Exception as e:  # noqa: BLE001 - re-raised with context
                raise RuntimeError(f"--resume: cannot load a checkpoint from {self.run_dir}: {e}") from e
            self.normalizer = Normalizer.load(self.run_dir / "normalizer.json")
        elif cfg.init_from:
            self.normalizer = Normalizer.load(_run_root(cfg.init_from) / "normalizer.json")
        else:
            states, actions = self.dataset.state_action_arrays()
            self.normalizer = Normalizer.fit(states, actions)
        if self.normalizer.action_dim != meta.action_dim or self.normalizer.state_dim != meta.state_dim:
            raise ValueError(
                f"normalizer dims ({self.normalizer.state_dim}, {self.normalizer.action_dim}) do not "
                f"match the dataset ({meta.state_dim}, {meta.action_dim})"
            )
        self.learner = build_learner(
            cfg, meta.state_dim, meta.action_dim, di.device, n_cameras=len(meta.camera_names)
        )
        if hasattr(self.learner, "attach_dataset"):  # plugin objectives that label the episodes (HABC)
            self.learner.attach_dataset(self.dataset)
        if di.world > 1:
            self.learner.reduce = _all_reduce_sum
        # same initialisation on every rank (seeded above); from here on each rank draws its own noise
        # (consistency / diffusion training noise), otherwise all ranks would reuse one noise pattern
        torch.manual_seed(cfg.seed + 1_000_003 * (di.rank + 1))
        self.step = 0
        self.initialized_from: list[str] = []
        if self.ckpt is not None:
            self._load_modules(self.ckpt["modules"])
        elif cfg.init_from:
            self.initialized_from = init_modules_from(self.learner, cfg.init_from)
        self.model = self._wrap(self.learner)
        self.actor_opt = torch.optim.AdamW(self.learner.actor_param_groups(), weight_decay=cfg.weight_decay)
        cgroups = self.learner.critic_param_groups()
        self.critic_opt = torch.optim.AdamW(cgroups, weight_decay=cfg.weight_decay) if cgroups else None
        self.epoch = 0
        if self.ckpt is not None:
            self._load_trainer_state(self.ckpt["trainer_state"] or {})
        self.sampler = (
            DistributedSampler(
                self.dataset,
                num_replicas=di.world,
                rank=di.rank,
                shuffle=cfg.shuffle,
                seed=cfg.seed,
                drop_last=True,
            )
            if di.world > 1
            else None
        )
        if len(self.dataset) < cfg.batch_size * di.world:
            raise ValueError(
                f"dataset {data_dir} has {len(self.dataset)} chunk samples, fewer than one global "
                f"batch ({di.world} x batch_size {cfg.batch_size})"
            )
        self.loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            shuffle=cfg.shuffle if self.sampler is None else False,
            drop_last=True,
            num_workers=cfg.num_workers,
            persistent_workers=cfg.num_workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        self.logger = RunLogger(self.run_dir, enabled=di.is_main)
        self._it = None
        if di.is_main:
            cfg_dict = to_dict(cfg)
            write_run_files(self.run_dir, config=cfg_dict, normalizer=self.normalizer.to_dict())

    # -- wrapping
    def _wrap(self, learner: OfflineAlgorithm) -> nn.Module:
        di, cfg = self.di, self.cfg
        if di.world == 1:
            return learner
        if cfg.fsdp:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

            mp = (
                MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                if (di.device.type == "cuda" and cfg.model.bf16)
                else MixedPrecisionPolicy()
            )
            for mod in learner.vlm.modules():  # shard every transformer block, then the rest at the root
                if type(mod).__name__.endswith(("DecoderLayer", "EncoderLayer")):
                    fully_shard(mod, mp_policy=mp)
            fully_shard(learner, mp_policy=mp)
            return learner
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(
            learner,
            device_ids=[di.local_rank] if di.device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )

    # -- state
    def _load_modules(self, modules: dict[str, dict]) -> None:
        for name, mod in self.learner.modules_to_save().items():
            if name not in modules:
                raise RuntimeError(f"checkpoint has no {name!r} weights (has {sorted(modules)})")
            mod.load_state_dict(modules[name])

    def _module_states(self) -> dict[str, dict]:
        if self.cfg.fsdp and self.di.world > 1:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return {
                n: get_model_state_dict(m, options=opts) for n, m in self.learner.modules_to_save().items()
            }
        return {n: m.state_dict() for n, m in self.learner.modules_to_save().items()}

    def _optim_states(self) -> dict:
        out = {}
        for name, opt in (("actor_opt", self.actor_opt), ("critic_opt", self.critic_opt)):
            if opt is None:
                continue
            if self.cfg.fsdp and self.di.world > 1:
                from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

                out[name] = get_optimizer_state_dict(
                    self.learner, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
                )
            else:
                out[name] = opt.state_dict()
        return out

    def _load_trainer_state(self, state: dict) -> None:
        self.step = int(state.get("step", self.ckpt["step"]))
        self.epoch = int(state.get("epoch", 0)) + 1  # data order continues with a fresh epoch
        for name, opt in (("actor_opt", self.actor_opt), ("critic_opt", self.critic_opt)):
            if opt is not None and name in state:
                if self.cfg.fsdp and self.di.world > 1:
                    from torch.distributed.checkpoint.state_dict import (
                        StateDictOptions,
                        set_optimizer_state_dict,
                    )

                    set_optimizer_state_dict(
                        self.learner,
                        opt,
                        state[name],
                        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True),
                    )
                else:
                    opt.load_state_dict(state[name])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])  # rank 0's stream: exact for a single process
        if self.di.world > 1:  # other ranks: a fresh per-rank stream (see __init__)
            torch.manual_seed(self.cfg.seed + 1_000_003 * (self.di.rank + 1) + self.step)

    def save(self) -> Path | None:
        modules = self._module_states()  # collective under FSDP: every rank calls it
        optim = self._optim_states()
        path = None
        if self.di.is_main:
            trainer_state = {
                "step": self.step,
                "epoch": self.epoch,
                "torch_rng": torch.get_rng_state(),
                **optim,
            }
            path = save_checkpoint(
                self.run_dir,
                self.step,
                modules,
                trainer_state,
                extra={
                    "algo": self.cfg.algo,
                    "normalizer_version": self.normalizer.version,
                    "world_size": self.di.world,
                },
                keep_last=self.cfg.keep_last,
            )
        if self.di.world > 1:
            dist.barrier()
        return path

    # -- deployable export (docs/interfaces.md "Checkpoints and the run layout")
    def policy_config(self):
        """The ``VLAConfig`` of this run's VLM + action expert (see :func:`policy_config`)."""
        meta = self.dataset.meta
        return policy_config(
            self.cfg,
            registry.offline_learner(self.cfg.algo),
            meta.state_dim,
            meta.action_dim,
            len(meta.camera_names),
            meta.image_size[0],
        )

    def export(self) -> Path | None:
        """Write ``RUN/policy/`` (VLM + expert + normaliser) and ``RUN/critic/`` on rank 0.

        The critic is exported when it is a ``ChunkCritic`` (bora) or a ``DecoupledChunkCritic``
        (cp-decoupled-critic); BC baselines have none, and ALOE's Q ensemble / HABC's heads are not chunk
        critics, so their runs have no ``critic/``. Collective under FSDP: every rank calls it.
        """
        from bora_policy.models.critic import ChunkCritic, DecoupledChunkCritic
        from bora_policy.models.export import export_policy, policy_from_modules

        states = self._module_states()  # unwrapped (FSDP: gathered full state dicts on CPU)
        out = None
        if self.di.is_main:
            policy = policy_from_modules(
                self.policy_config(), self.normalizer, states["vlm"], states["expert"], device="cpu"
            )
            critic = getattr(self.learner, "critic", None)
            exported_critic = None
            if isinstance(critic, (ChunkCritic, DecoupledChunkCritic)):
                cls = ChunkCritic if isinstance(critic, ChunkCritic) else DecoupledChunkCritic  # not FSDP's
                exported_critic = cls(**critic.init_kwargs)
                exported_critic.load_state_dict({k: v.cpu() for k, v in states["critic"].items()})
            out = export_policy(self.run_dir, policy, exported_critic)
        if self.di.world > 1:
            dist.barrier()
        return out

    # -- data
    def _batches(self):
        while True:
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch)
            elif self.cfg.shuffle:
                self.loader.generator.manual_seed(self.cfg.seed + self.epoch)
            yield from self.loader
            self.epoch += 1

    def prepare(self, batch: dict) -> dict:
        dev = self.di.device
        n = self.normalizer
        out = {
            k: (v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
        }
        out["state_n"] = n.normalize_state(out["state"].float())
        out["next_state_n"] = n.normalize_state(out["next_state"].float())
        out["actions_n"] = n.normalize_action(out["actions"].float())
        out["mask"] = out["mask"].float()
        out["dones"] = out["dones"].float()
        if self.cfg.augment_shift > 0:
            for key in ("images", "next_images"):
                if key in out:
                    out[key] = random_shift(out[key], self.cfg.augment_shift)
        return out

    def _lr_scale(self) -> float:
        w = self.cfg.warmup_updates
        return min(1.0, (self.step + 1) / w) if w > 0 else 1.0

    # -- one update
    def train_step(self, batch: dict) -> dict[str, float]:
        """One update on a prepared batch. Returns the metrics (identical on every rank for pooled values)."""
        self.learner.train()
        for opt in (self.actor_opt, self.critic_opt):
            if opt is None:
                continue
            for g in opt.param_groups:
                g.setdefault("base_lr", g["lr"])
                g["lr"] = g["base_lr"] * self._lr_scale()
        out = self.model(batch, self.step)
        actor_loss, critic_loss, actor_open = out["actor_loss"], out["critic_loss"], out["actor_open"]
        # closed gate: keep the graph (every rank runs the same collectives), zero actor gradient
        loss = actor_loss if actor_open else actor_loss * 0.0
        if critic_loss is not None:
            loss = loss + critic_loss
        self.actor_opt.zero_grad(set_to_none=True)
        if self.critic_opt is not None:
            self.critic_opt.zero_grad(set_to_none=True)
        if loss.requires_grad:  # an algorithm may return constant losses in a phase (e.g. actor-only)
            loss.backward()
        metrics = dict(out["metrics"])
        if self.critic_opt is not None:
            metrics["grad/critic_norm"] = self._clip(self.critic_opt)
            self.critic_opt.step()
        if actor_open:
            metrics["grad/actor_norm"] = self._clip(self.actor_opt)
            self.actor_opt.step()
        self.learner.after_step(self.step)
        metrics["loss/actor"] = float(actor_loss.detach())
        if critic_loss is not None:
            metrics["loss/critic"] = float(critic_loss.detach())
        self.step += 1
        return metrics

    def _clip(self, opt) -> float:
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return 0.0
        if self.cfg.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    # -- loop
    def train(self, updates: int | None = None) -> dict[str, float]:
        """Run until ``cfg.total_updates`` (or ``updates`` more). Returns the last logged means."""
        cfg = self.cfg
        end = cfg.total_updates if updates is None else min(cfg.total_updates, self.step + updates)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=end, initial=self.step, desc=f"offline {cfg.algo}", dynamic_ncols=True)
        acc: dict[str, list[float]] = {}
        last: dict[str, float] = {}
        if self._it is None:  # one data stream across train() calls (no restart of a partial epoch)
            self._it = self._batches()
        it = self._it
        t0 = time.perf_counter()
        from bora_trainer.progress import ProgressLog

        # updates/s, losses and ETA in the log at a steady interval (also with --no-progress: bora demo's logs)
        prog = ProgressLog(f"offline {cfg.algo}", end, start=self.step, enabled=self.di.is_main)
        while self.step < end:
            batch = self.prepare(next(it))
            m = self.train_step(batch)
            if bar is None:
                prog.update(self.step, m)
            for k, v in m.items():
                acc.setdefault(k, []).append(v)
            if self.step % cfg.log_every == 0 or self.step == end:
                last = {k: float(np.mean(v)) for k, v in acc.items()}
                last["time/update_s"] = (time.perf_counter() - t0) / max(1, len(acc.get("loss/actor", [1])))
                last["gate/open_frac"] = last.pop("gate/open", 1.0)
                self.logger.scalars(self.step, last)
                if bar is not None:
                    bar.set_postfix(
                        {
                            k.split("/")[-1]: f"{last[k]:.4g}"
                            for k in ("loss/actor", "loss/critic", "gate/open_frac")
                            if k in last
                        }
                    )
                acc, t0 = {}, time.perf_counter()
            if bar is not None:
                bar.update(1)
            if self.step % cfg.ckpt_every == 0 or self.step == end:
                self.save()
        if bar is not None:
            bar.close()
        self.export()
        self.logger.close()
        return last


# ---------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bora train offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--algo",
        choices=registry.offline_names(),
        default=None,
        help="offline algorithm (default: the config's `algo`, else bora)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="episode dataset directory (docs/interfaces.md; with --resume: default the run's data_dir)",
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML file with OfflineConfig fields (default: Table 3; with --resume: RUN/config.yaml)",
    )
    p.add_argument(
        "--out", required=True, help="run directory (checkpoints, tb, config.yaml, normalizer.json)"
    )
    p.add_argument(
        "--updates",
        type=int,
        default=None,
        help="total number of updates (overrides total_updates; PPO start scales with it "
        "unless ppo_start_step is set)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start from the weights of another run (OfflineConfig.init_from: the VLM, and the expert / "
        "critic where they are of the same kind), e.g. a shared cp-bc warm-up; ignored with --resume",
    )
    p.add_argument(
        "--episodes",
        choices=("all", "clean"),
        default=None,
        help="train on all episodes, or only the clean expert demonstrations (OfflineConfig.episodes)",
    )
    p.add_argument(
        "--gate-scope",
        choices=("batch", "ppo_chunk", "off"),
        default=None,
        help="what a closed advantage gate (Eq. 5) withholds: the whole actor step (batch, the paper's "
        "literal gate), the PPO term of each low-advantage chunk with BC always applied (ppo_chunk), "
        "or nothing (off); OfflineConfig.gate_scope",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from RUN/latest (weights, optimisers, step)"
    )
    p.add_argument("--fsdp", action="store_true", help="FSDP2 sharding instead of DDP (multi-process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {}
    if args.algo:
        overrides["algo"] = args.algo
    if args.updates is not None:
        overrides["total_updates"] = args.updates
    if args.fsdp:
        overrides["fsdp"] = True
    if args.episodes:
        overrides["episodes"] = args.episodes
    if args.gate_scope:
        overrides["gate_scope"] = args.gate_scope
    if args.init_from:
        overrides["init_from"] = str(Path(args.init_from).resolve())
    source = args.config
    if source is None and args.resume and (Path(args.out) / "config.yaml").exists():
        source = Path(args.out) / "config.yaml"  # resume with the run's own resolved config
    cfg = load_config(OfflineConfig, source, overrides=overrides)
    data = args.data or cfg.data_dir
    if not data:
        raise SystemExit("bora train offline: --data is required (the config names no data_dir)")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), int(os.environ.get("BORA_NUM_THREADS", "64")))))
    di = setup_distributed(cfg.device)
    try:
        trainer = OfflineTrainer(
            cfg, data, args.out, resume=args.resume, dist_info=di, progress=not args.no_progress
        )
        last = trainer.train()
        if di.is_main:
            summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()) if k.startswith("loss/"))
            print(f"offline {cfg.algo}: {trainer.step} updates -> {args.out} ({summary})", file=sys.stderr)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
