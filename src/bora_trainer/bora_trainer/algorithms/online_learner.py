"""The online learner every online method shares (Sec. 3.2, Appendix B.3-B.4, Table 3 Phase 2).

:class:`OnlineLearner` owns the residual chunk actor, the inherited critic (Q and V, started from the
offline run's weights), their Polyak target copy and a frozen copy of the offline critic. Its
``update(batch)`` runs one step of the method's :class:`OnlineObjective` (``OnlineConfig.algo`` = the CLI's
``--algo``, looked up in ``algorithms/registry.py``). The same ``update`` serves ``bora train online`` in
simulation and the trainer node on recorded bags. Batches come from
:class:`bora_trainer.data.replay.MixedSampler` (1:1 offline/online, ``is_online`` flag); the frozen VLA is
never re-run: z_t and the base chunk are stored per row. BORA's objective is ``bora/online.py``.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from torch import nn

from bora_policy.models.residual import ResidualChunkActor, alpha_schedule
from bora_trainer.algorithms import registry
from bora_trainer.algorithms.bora.config import OnlineConfig
from bora_trainer.algorithms.losses import soft_update

GRAPH_WARMUP = 3  # eager updates on a side stream before the capture (optimiser state, cuBLAS workspaces)


def to_floats(info: dict[str, Any]) -> dict[str, float]:
    """``info`` with every tensor value as a float, read back from the device in ONE transfer."""
    keys = [k for k, v in info.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in info.items() if k not in keys}
    if keys:
        vals = torch.stack([info[k].detach().reshape(()).float() for k in keys]).tolist()
        out.update(zip(keys, vals))
    return {k: out[k] for k in info}


def bc_lambda_schedule(step: int, start: float = 2.0, end: float = 1.0, decay: int = 10000) -> float:
    """Table 3: lambda_BC decays linearly from 2.0 to 1.0 over 10k updates, then stays."""
    frac = 1.0 if decay <= 0 else min(max(step, 0) / decay, 1.0)
    return float(start + (end - start) * frac)


class NormalizerMismatchError(ValueError):
    """Two components were produced with different normalisation statistics."""


def check_normalizer_versions(**versions: str | None) -> str:
    """All given normaliser versions must be equal (None = unknown, skipped); returns the version."""
    known = {k: v for k, v in versions.items() if v}
    if len(set(known.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in known.items())
        raise NormalizerMismatchError(
            f"normaliser versions differ ({detail}): the online phase must use the "
            "offline run's normalisation for the critic, the VLA and the replay data"
        )
    return next(iter(known.values()), "")


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily stop gradients into ``module``'s parameters (they still pass to its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


class OnlineObjective:
    """Base class of pluggable online objectives.

    ``update(batch)`` performs one full update (critic, targets, actor) using the learner's modules
    and optimisers and returns float metrics. Subclasses may create extra modules
    (return them from ``extra_modules`` so they are checkpointed).

    ``graph_safe = True`` declares that ``update`` can be captured as a CUDA graph
    (``OnlineConfig.cuda_graph``): it reads metrics through ``learner.metric``, the schedules through
    ``learner.alpha_now``/``bc_lambda_now`` and ``learner.clip_and_step``'s norm as returned, and it runs no
    operation that waits for the GPU (no ``.item()``, no boolean-mask indexing) when ``learner.graphing``.
    """

    name = "base"
    graph_safe = False

    def __init__(self, learner: OnlineLearner, options: dict[str, Any] | None = None):
        self.learner = learner
        self.options = dict(options or {})

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def extra_modules(self) -> dict[str, nn.Module]:
        return {}

    def observe_episode(self, episode: int, success: bool | None, is_intervention) -> None:
        """A finished online episode (its replay ``episode`` id, outcome, per-step takeover flags).
        Both online loops call it for every episode they add; objectives that label rows by episode
        (HABC) override it, the others ignore it."""


class OnlineLearner:
    """Residual actor + inherited critic (+ target and frozen offline copies) + optimisers.

    ``critic`` is a ``ChunkCritic``-like module with ``q(z, actions_norm) -> [B, k]`` and
    ``v(z) -> [B, k]``; it is deep-copied, so the offline model passed in is not modified. Its own
    target nets (``v_target``/``soft_update_targets``) are used when it has them. ``offline_critic`` (default:
    ``critic``) is the frozen anchor of the critic regulariser; later rounds pass the previous round's
    online critic as ``critic`` and the offline one here.
    ``normalizer_version`` is the run's; ``critic_normalizer_version`` the offline critic's: they
    must agree (critic inheritance keeps the normalisation).
    """

    def __init__(
        self,
        critic: nn.Module,
        state_dim: int,
        action_dim: int,
        chunk_size: int,
        z_dim: int,
        cfg: OnlineConfig | None = None,
        normalizer_version: str = "",
        critic_normalizer_version: str | None = None,
        actor: ResidualChunkActor | None = None,
        device: str | torch.device | None = None,
        offline_critic: nn.Module | None = None,
    ):
        self.cfg = cfg or OnlineConfig()
        self.normalizer_version = check_normalizer_versions(
            run=normalizer_version, offline_critic=critic_normalizer_version
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dims = {
            "state_dim": state_dim,
            "action_dim": action_dim,
            "chunk_size": chunk_size,
            "z_dim": z_dim,
        }
        torch.manual_seed(self.cfg.seed)
        objective_cls = registry.online_objective(self.cfg.algo)
        # one captured CUDA graph per update (OnlineConfig.cuda_graph): needs capturable optimisers
        self.graphing = bool(
            self.cfg.cuda_graph and self.device.type == "cuda" and getattr(objective_cls, "graph_safe", False)
        )
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_info: dict[str, Any] = {}
        self._static: dict[str, torch.Tensor] = {}
        self._sched: dict[str, torch.Tensor] = {}
        self._eager_calls = 0
        self.critic = copy.deepcopy(critic).to(self.device).train()
        self.critic.requires_grad_(True)
        # target nets: the critic's own (ChunkCritic.v_target / soft_update) when it has them, else a copy
        soft = getattr(critic, "soft_update_targets", None) or getattr(critic, "soft_update", None)
        self.internal_target = callable(getattr(critic, "v_target", None)) and callable(soft)
        self.critic_target = (
            None if self.internal_target else copy.deepcopy(self.critic).requires_grad_(False).eval()
        )
        # frozen copy of the critic the online phase starts from (the offline one unless given)
        src = offline_critic if offline_critic is not None else self.critic
        self.critic_offline = copy.deepcopy(src).to(self.device).requires_grad_(False).eval()
        self.actor = actor or ResidualChunkActor(state_dim, action_dim, chunk_size, z_dim, self.cfg.residual)
        self.actor.to(self.device).train()
        # multi-tensor AdamW (the same values as the per-parameter loop). The critic optimiser keeps every
        # critic parameter (target copies get no gradient, so no step) for checkpoint compatibility.
        cap = {"capturable": True} if self.graphing else {}
        self.actor_opt = torch.optim.AdamW(
            self.actor.parameters(), lr=self.cfg.actor_lr, weight_decay=self.cfg.weight_decay, foreach=True, **cap
        )
        self.critic_opt = torch.optim.AdamW(
            self.critic.parameters(), lr=self.cfg.critic_lr, weight_decay=self.cfg.weight_decay, foreach=True, **cap
        )
        self.step = 0
        prec = self.cfg.precision
        if prec == "auto":  # bf16 on CUDA with bf16 support and on CPUs with native bf16 only (cpu_probe)
            from bora_policy.runtime.cpu_probe import auto_precision

            prec = auto_precision(self.device.type)  # BORA_PRECISION, else the CPU/GPU probe
        self.use_bf16 = prec == "bf16"
        self.objective = objective_cls(self, self.cfg.objective_options)

    # ------------------------------------------------------------------------------ schedules
    def alpha(self, step: int | None = None) -> float:
        """alpha_t of the composite A_base + alpha_t A_res (Table 3: 0.2 -> 0.75 over 4000 updates)."""
        r = self.cfg.residual
        return alpha_schedule(
            self.step if step is None else step, r.alpha_start, r.alpha_end, r.alpha_warmup_steps
        )

    def bc_lambda(self, step: int | None = None) -> float:
        c = self.cfg
        return bc_lambda_schedule(
            self.step if step is None else step, c.bc_lambda_start, c.bc_lambda_end, c.bc_decay_steps
        )

    def v_target(self, z: torch.Tensor, steps: list[int] | None = None) -> torch.Tensor:
        """v(z, i) of the target value net, [B, k] (``[B, len(steps)]`` for the positions ``steps`` only;
        a critic with ``v_steps = True`` evaluates just those positions)."""
        if steps is not None and self.internal_target and getattr(self.critic, "v_steps", False):
            return self.critic.v_target(z, steps=steps)
        v = self.critic.v_target(z) if self.internal_target else self.critic_target.v(z)
        return v if steps is None else v[:, steps]

    def alpha_now(self) -> float | torch.Tensor:
        """alpha_t for the update being computed: a float, or when graphing the device scalar the graph reads
        (set from :meth:`alpha` before each replay)."""
        return self._sched["alpha"] if self.graphing else self.alpha()

    def bc_lambda_now(self) -> float | torch.Tensor:
        """lambda_BC(t) for the update being computed (a device scalar when graphing, as :meth:`alpha_now`)."""
        return self._sched["bc_lambda"] if self.graphing else self.bc_lambda()

    def metric(self, t: torch.Tensor) -> float | torch.Tensor:
        """A logged scalar: its float, or when graphing the detached tensor (:func:`to_floats` reads them all
        back in one transfer after the replay)."""
        return t.detach() if self.graphing else t.item()

    def update_targets(self) -> None:
        """Polyak update of the target nets (Table 3 tau_target = 0.005)."""
        if self.internal_target:
            name = "soft_update_targets" if hasattr(self.critic, "soft_update_targets") else "soft_update"
            getattr(self.critic, name)(self.cfg.tau)
        else:
            soft_update(self.critic_target, self.critic, self.cfg.tau)

    def autocast(self):
        if self.graphing:  # a captured graph must not keep autocast's cast cache across replays
            return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_bf16, cache_enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16)

    def check_buffer(self, spec: Any) -> None:
        """A replay buffer's spec must match the learner's shapes and normaliser."""
        for k, v in self.dims.items():
            have = getattr(spec, k)
            if have != v:
                raise ValueError(f"replay buffer {k}={have}, but the learner was built with {k}={v}")
        check_normalizer_versions(run=self.normalizer_version, replay=spec.normalizer_version)

    # ------------------------------------------------------------------------------ update
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update of the configured objective on a mixed batch (Algorithm 1 lines 25-27)."""
        if self.graphing:
            info = to_floats(self._graph_update(batch))
        else:
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            info = self.objective.update(batch)
        self.step += 1
        info["alpha"] = self.alpha()
        return info

    def _graph_update(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """One update through the captured CUDA graph (``OnlineConfig.cuda_graph``). The batch is copied into
        static device tensors and the schedules into device scalars; the first ``GRAPH_WARMUP`` updates run
        eagerly on a side stream (they create the optimiser state), the next one captures the update and every
        update from then on replays it. Each call is one real update."""
        if not self._static:
            self._static = {k: torch.empty_like(v, device=self.device) for k, v in batch.items()}
            self._sched = {n: torch.zeros((), device=self.device) for n in ("alpha", "bc_lambda")}
        if batch.keys() != self._static.keys() or any(v.shape != self._static[k].shape for k, v in batch.items()):
            got = {k: tuple(v.shape) for k, v in batch.items()}
            want = {k: tuple(v.shape) for k, v in self._static.items()}
            raise ValueError(
                f"OnlineLearner batch: expected the keys and shapes of the captured CUDA graph {want}, got {got} "
                "(set OnlineConfig.cuda_graph: false for batches that change shape)"
            )
        for k, v in batch.items():
            self._static[k].copy_(v, non_blocking=True)
        self._sched["alpha"].fill_(self.alpha())
        self._sched["bc_lambda"].fill_(self.bc_lambda())
        if self._graph is None and self._eager_calls < GRAPH_WARMUP:
            self._eager_calls += 1
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                info = self.objective.update(self._static)
            torch.cuda.current_stream(self.device).wait_stream(side)
            return info
        if self._graph is None:
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread of the process (a ROS callback, say) may use CUDA meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._graph_info = self.objective.update(self._static)
            self._graph = graph
        self._graph.replay()
        return dict(self._graph_info)

    def _own_capturable(self, opt: torch.optim.Optimizer) -> None:
        """A loaded optimiser state keeps the SAVED ``capturable`` flag (torch's load_state_dict): a checkpoint of
        a graphed CUDA learner loaded on a CPU, or the other way round, would then fail or bake the step count
        into the graph. Restore this learner's flag and put each ``step`` where that flag wants it."""
        for group in opt.param_groups:
            group["capturable"] = self.graphing
            for p in group["params"]:
                st = opt.state.get(p, {})
                if isinstance(st.get("step"), torch.Tensor):
                    dev = p.device if self.graphing else torch.device("cpu")
                    st["step"] = st["step"].to(dtype=torch.float32, device=dev)

    def clip_and_step(self, opt: torch.optim.Optimizer, params) -> float | torch.Tensor:
        """Clip the global gradient norm (``grad_clip``; 0 = off) and step; returns the norm before clipping
        (a device scalar when graphing)."""
        gn = 0.0
        if self.cfg.grad_clip > 0:
            gn = self.metric(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        opt.step()
        return gn

    # ------------------------------------------------------------------------------ checkpoints
    def modules(self) -> dict[str, nn.Module]:
        mods = {"residual": self.actor, "critic": self.critic}
        if self.critic_target is not None:
            mods["critic_target"] = self.critic_target
        mods.update(self.objective.extra_modules())
        return mods

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        return {k: m.state_dict() for k, m in self.modules().items()}

    def trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }

    def load_state(
        self, modules: dict[str, dict[str, torch.Tensor]], trainer_state: dict | None = None
    ) -> None:
        for k, m in self.modules().items():
            if k in modules:
                m.load_state_dict(modules[k])
        if trainer_state:
            self.step = int(trainer_state["step"])
            self.actor_opt.load_state_dict(trainer_state["actor_opt"])
            self.critic_opt.load_state_dict(trainer_state["critic_opt"])
            for opt in (self.actor_opt, self.critic_opt):
                self._own_capturable(opt)
        # a captured graph holds the old optimiser-state tensors: warm up and capture again
        self._graph, self._graph_info, self._eager_calls = None, {}, 0
