"""The offline training loop: :class:`OfflineTrainer` (one run of ``bora train offline``).

Data parallel under torchrun: each process reads ``batch_size`` samples per update through a
``DistributedSampler`` (so the global batch is ``world_size * batch_size``), gradients are averaged by DDP
(or FSDP2 with ``fsdp: true``), and only rank 0 writes checkpoints, TensorBoard logs and the progress bar.
Pooled batch statistics (advantage normalisation, the gate) are all-reduced so every rank takes the same
decision. Two AdamW optimisers (actor: VLM + expert; critic) step the learner's losses
(``algorithms/offline_learner.py``); at the end the run exports ``RUN/policy`` (+ ``RUN/critic``): the
actor's weights, or their moving average with ``policy_ema`` > 0 (``OfflineConfig.policy_ema``; the action expert's
only when a critic reads the VLM's z_t).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler

from bora_policy.runtime.processor import ActionProcessor, ObservationProcessor
from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.algorithms.offline_learner import OfflineAlgorithm
from bora_trainer.checkpoint import (
    RunLogger,
    load_checkpoint,
    save_checkpoint,
    write_run_files,
)
from bora_trainer.config_io import to_dict
from bora_trainer.data.chunks import ChunkDataset, MultiChunkDataset
from bora_trainer.offline.build import build_learner, init_modules_from, policy_config, run_root
from bora_trainer.offline.data import random_shift, select_episodes
from bora_trainer.offline.distributed import DistInfo, all_reduce_sum, seed_all, setup_distributed
from bora_trainer.offline.run_dir import keep_selection, refuse_finished_run

EMA_MODULES = ("vlm", "expert")  # the actor: what ``RUN/policy`` exports (OfflineConfig.policy_ema)


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
        if not resume:
            refuse_finished_run(self.run_dir)
        self.di = di = dist_info or setup_distributed(cfg.device)
        self.progress = progress and di.is_main
        seed_all(cfg.seed)
        episodes = select_episodes(data_dir, cfg.episodes)
        if cfg.rollout_data:  # demonstrations + recorded autonomous rollouts (OfflineConfig.rollout_data)
            self.dataset = MultiChunkDataset([data_dir, *cfg.rollout_data], cfg.data, episodes=episodes)
        else:
            self.dataset = ChunkDataset(data_dir, cfg.data, episodes=episodes)
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
            self.normalizer = Normalizer.load(run_root(cfg.init_from) / "normalizer.json")
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
        # the averaged modules: the actor's VLM and expert; with a critic on z_t (bora, cp-decoupled-critic, aloe,
        # habc) the expert only, so RUN/policy's VLM gives the z_t that critic learned on (ours)
        self.ema_modules = ("expert",) if self.learner.critic_param_groups() else EMA_MODULES
        if cfg.critic_refit_updates:
            from bora_trainer.offline.critic_refit import supports_refit

            if not supports_refit(self.learner):
                raise ValueError(f"OfflineConfig.critic_refit_updates: algo {cfg.algo!r} has no chunk critic on z_t "
                                 "(the refit is for bora's critic); set it to 0")
        if hasattr(self.learner, "attach_dataset"):  # plugin objectives that label the episodes (HABC)
            self.learner.attach_dataset(self.dataset)
        if di.world > 1:
            self.learner.reduce = all_reduce_sum
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
        # the actor's weight average (OfflineConfig.policy_ema); the first update copies the weights
        self.ema: dict[str, AveragedModel] = {}
        if cfg.policy_ema > 0:
            mods = self.learner.modules_to_save()
            avg = get_ema_multi_avg_fn(cfg.policy_ema)
            self.ema = {n: AveragedModel(mods[n], multi_avg_fn=avg) for n in self.ema_modules}
            if self.ckpt is not None:
                self._load_ema(self.ckpt)
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
            from torch.distributed.fsdp import fully_shard

            from bora_trainer.offline.distributed import fsdp_mixed_precision

            mp = fsdp_mixed_precision()
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

    def _load_ema(self, ckpt: dict) -> None:
        """Resume the weight average from a checkpoint; one written without it starts the average anew."""
        updates = int((ckpt["trainer_state"] or {}).get("ema_updates", 0))
        if updates == 0 or not all(f"{n}_ema" in ckpt["modules"] for n in self.ema_modules):
            return
        for n, avg in self.ema.items():
            avg.module.load_state_dict(ckpt["modules"][f"{n}_ema"])
            avg.n_averaged.fill_(updates)

    def ema_states(self) -> dict[str, dict]:
        """``{"vlm": ..., "expert": ...}`` (``{"expert": ...}`` with a critic): the averaged actor (empty without
        ``policy_ema``)."""
        return {n: avg.module.state_dict() for n, avg in self.ema.items()}

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
            if self.ema:
                trainer_state["ema_updates"] = int(next(iter(self.ema.values())).n_averaged)
            path = save_checkpoint(
                self.run_dir,
                self.step,
                {**modules, **{f"{n}_ema": st for n, st in self.ema_states().items()}},
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
        states.update(self.ema_states())  # the deployed actor is the average when there is one
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

    def prepare(self, batch: dict, augment: bool = True) -> dict:
        """The batch on the device with normalised state/actions (Algorithm 1 line 6), augmented when
        ``augment_shift`` > 0 and ``augment`` (the critic refit encodes without augmentation)."""
        dev = self.di.device
        obs_p, act_p = ObservationProcessor(self.normalizer), ActionProcessor(self.normalizer)
        out = {
            k: (v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
        }
        out["state_n"] = obs_p.normalize_state(out["state"].float())  # Algorithm 1 line 6
        out["next_state_n"] = obs_p.normalize_state(out["next_state"].float())
        out["actions_n"] = act_p.normalize(out["actions"].float())
        out["mask"] = out["mask"].float()
        out["bc_mask"] = out["bc_mask"].float() if "bc_mask" in out else out["mask"]
        out["dones"] = out["dones"].float()
        if augment and self.cfg.augment_shift > 0:
            for key in ("images", "next_images"):
                if key in out:
                    out[key] = random_shift(out[key], self.cfg.augment_shift)
        return out

    def _lr_scale(self) -> float:
        """Learning-rate factor of update ``self.step`` (0-based): a linear ramp over ``warmup_updates``, then
        constant or, with ``lr_decay: cosine``, ``m + (1 - m) (1 + cos(pi p)) / 2`` with ``p`` the fraction of
        the updates after the ramp done so far and ``m = lr_min_ratio``."""
        c = self.cfg
        w = c.warmup_updates
        scale = min(1.0, (self.step + 1) / w) if w > 0 else 1.0
        if c.lr_decay == "cosine":
            p = min(1.0, max(0, self.step - w) / max(1, c.total_updates - w))
            scale *= c.lr_min_ratio + (1.0 - c.lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
        return scale

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
        mods = self.learner.modules_to_save()
        for n, avg in self.ema.items():
            avg.update_parameters(mods[n])
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

    def _say(self, msg: str) -> None:
        if self.di.is_main:
            print(msg, file=sys.stderr, flush=True)

    # -- loop
    def train(self, updates: int | None = None) -> dict[str, float]:
        """Run until ``cfg.total_updates`` (or ``updates`` more). Returns the last logged means."""
        cfg = self.cfg
        end = cfg.total_updates if updates is None else min(cfg.total_updates, self.step + updates)
        start = self.step
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
        if keep_selection(self.run_dir, cfg.algo, start, self.step, self._say):
            self.logger.close()
            return last
        if cfg.critic_refit_updates and self.step >= cfg.total_updates:  # OfflineConfig.critic_refit_updates
            from bora_trainer.offline.critic_refit import refit_critic

            prep = lambda b: self.prepare(b, augment=False)  # noqa: E731
            last.update(refit_critic(cfg, self.learner, self.dataset, prep, self.logger, self.step, log=self._say,
                                     enabled=self.di.is_main))
        self.export()
        self.logger.close()
        return last

