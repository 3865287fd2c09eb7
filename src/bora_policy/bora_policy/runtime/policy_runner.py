"""``PolicyRunner``: frozen ``VLAPolicy`` + residual composition + chunk critic behind one ``infer`` call.

Usable without ROS (the policy node calls it on its inference thread; ``bora eval`` and benchmarks call
it directly):

    runner = PolicyRunner.from_paths(vla_path, residual_path="", critic_path="", frozen_residual_paths=())
    res = runner.infer(color [n_cam, H, W, 3] uint8, state [state_dim], instruction)

``vla_path`` is a ``VLAPolicy`` directory (``VLAPolicy.save``) or a run directory holding ``policy/``
(``bora_policy.models.export``); ``critic_path`` likewise a critic directory or a run with ``critic/``.

One inference (paper Sec. 3.2, Algorithm 1 lines 6-15):
  1. s^norm = (s - mu_s) / (sigma_s + eps)                         (line 6)
  2. z_t = VLM(images, instruction, s^norm); A_VLA^norm = expert(z_t, s^norm)   (``VLAPolicy.act``)
  3. A_base^norm = A_VLA^norm + folded frozen residuals, in round order (lines 8-12):
     first the ``frozen_residual_paths`` given at start-up, then the frozen rounds stored in a
     multi-round residual checkpoint (``bora train online``: ``residual_1 .. residual_R``)
  4. A_final^norm = A_base^norm + alpha * pi_res(s^norm, A_base^norm, z_t)   (line 15)
  5. physical = norm * (sigma_a + eps) + mu_a
  6. critic: q_i = q(z_t, A_final^norm, i), v_i = v(z_t, i), advantage_i = q_i - v_i
     (the one-step action advantage; the action-level GAE of Eq. 2 needs rewards the runtime
     does not have, so the runtime publishes this estimate). A ``DecoupledChunkCritic`` gets the
     raw images (and the normalised state when it was built with one) instead of z_t.

Residual checkpoints (``load_residual``): a single ``ResidualChunkActor`` state dict (a ``.safetensors``
file, or a directory with ``residual.safetensors``; alpha from its metadata ``alpha``, else
``residual_scale``), or a multi-round checkpoint directory / online run directory (``meta.json`` with
``extra.kind == "residual"``; the last residual is current with its stored lambda as alpha, the others
are folded). The composition sits in a ``HotSwapSlot``; ``infer`` takes one snapshot per call, so a hot
reload never changes the residual in the middle of an inference.

Frozen residual paths: ``PATH`` or ``PATH@LAMBDA``; a multi-round checkpoint folds ALL its residuals
(the last with ``LAMBDA`` when given), a single file needs ``@LAMBDA`` or a ``lambda``/``alpha`` metadata
entry.

Every checkpoint must store the normaliser version it was trained with (the policy's), and every alpha and
lambda must lie in [0, 1]; otherwise it is refused in one line naming the field (runtime/residual_meta.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bora_policy.common.graph_params import graph_default
from bora_policy.models.export import resolve_critic_dir, resolve_policy_dir
from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import (
    FrozenResidual,
    ResidualChunkActor,
    ResidualConfig,
    ResidualPolicy,
)
from bora_policy.models.vla import VLAConfig, VLAPolicy
from bora_policy.runtime.checkpoint_loader import (
    CheckpointRejected,
    HotSwapSlot,
    infer_residual_dims,
    load_module_checked,
    sha256_file,
    verify_checkpoint,
)
from bora_policy.runtime.processor import ObservationProcessor
from bora_policy.runtime.residual_meta import (
    blend_weight,
    check_normalizer_version,
    single_file_normalizer_version,
    split_lambda,
    stack_checkpoint_dir,
    stack_entries,
)


def pick_device(prefer: str = "auto") -> torch.device:
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(prefer)


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[VLAPolicy, str]:
    """``(policy, version)`` from a VLAPolicy directory or a run directory; version = sha256[:16] of the
    weights file."""
    d = resolve_policy_dir(path)
    policy = VLAPolicy.load(d, device=device).eval().requires_grad_(False)
    return policy, sha256_file(d / "model.safetensors")[:16]


def load_critic(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """``(critic, version)`` from a critic directory or a run directory holding ``critic/``."""
    from bora_policy.models.critic import CRITIC_WEIGHTS
    from bora_policy.models.critic import load_critic as _load

    d = resolve_critic_dir(path)
    crit = _load(d, device=device).eval().requires_grad_(False)
    return crit, sha256_file(d / CRITIC_WEIGHTS)[:16]


@dataclass
class ChunkResult:
    """One inference: physical chunks [k, A], normalised quantities and critic outputs."""

    base: np.ndarray
    residual: np.ndarray
    final: np.ndarray
    residual_scale: float
    z: np.ndarray
    proprio_norm: np.ndarray
    base_norm: np.ndarray
    q: np.ndarray | None = None
    v: np.ndarray | None = None
    advantage: np.ndarray | None = None
    residual_version: str = ""
    timing_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class PolicyRunnerConfig:
    """Inference options. residual_scale: alpha of Algorithm 1 line 15 used at deployment
    (the trainer's schedule value at checkpoint time when its metadata carries ``alpha``).
    alpha_override: the current residual's alpha whatever its checkpoint stores (ours: ``bora eval --alpha``).
    num_inference_steps: expert sampling steps (consistency: 1-3; None: the policy's config).
    deterministic: use the expert's mean chunk (zero injected noise) instead of a sample."""

    residual_scale: float = field(default_factory=lambda: graph_default("residual_scale"))  # config/graph.yaml
    alpha_override: float | None = None
    num_inference_steps: int | None = None
    deterministic: bool = True
    device: str = "auto"


class PolicyRunner:
    """See the module docstring."""

    def __init__(
        self,
        policy: VLAPolicy,
        cfg: PolicyRunnerConfig | None = None,
        critic: nn.Module | None = None,
        policy_version: str = "",
        critic_version: str = "",
        frozen: Sequence[FrozenResidual] = (),
    ):
        if not isinstance(policy, VLAPolicy):
            raise TypeError(f"PolicyRunner: policy must be a VLAPolicy, got {type(policy).__name__}")
        self.cfg = cfg or PolicyRunnerConfig()
        self.device = pick_device(self.cfg.device)
        self.policy = policy.to(self.device).eval().requires_grad_(False)
        self.normalizer: Normalizer = policy.normalizer
        # raw state + images -> checked inputs, s^norm and image tensors (runtime/processor.py)
        self.processor = ObservationProcessor(self.normalizer, device=self.device)
        pc: VLAConfig = policy.cfg
        self.state_dim, self.action_dim, self.chunk_size = pc.state_dim, pc.action_dim, pc.chunk_size
        self.z_dim = int(policy.z_dim)
        self.critic = critic.to(self.device).eval() if critic is not None else None
        if self.critic is not None:
            self._check_critic(self.critic)
        self.policy_version, self.critic_version = policy_version, critic_version
        for f in frozen:
            self._check_actor_dims(f.actor, "frozen residual")
        self.frozen = [FrozenResidual(f.actor.to(self.device), float(f.lam)) for f in frozen]
        # the composition with no current residual: the VLA + the start-up frozen rounds
        self.base_policy = ResidualPolicy.from_normalizer(self.normalizer, self.frozen).to(self.device)
        # (ResidualPolicy with the current residual, alpha from the checkpoint or None)
        self.residual_slot: HotSwapSlot[tuple[ResidualPolicy, float | None]] = HotSwapSlot(None, "")
        self._template: ResidualChunkActor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_paths(
        cls,
        vla_path: str,
        residual_path: str = "",
        critic_path: str = "",
        cfg: PolicyRunnerConfig | None = None,
        frozen_residual_paths: Sequence[str] = (),
    ) -> PolicyRunner:
        cfg = cfg or PolicyRunnerConfig()
        dev = pick_device(cfg.device)
        policy, version = load_policy(vla_path, device=dev)
        critic, cver = load_critic(critic_path, dev) if critic_path else (None, "")
        runner = cls(policy, cfg, critic=critic, policy_version=version, critic_version=cver)
        paths = [p for p in frozen_residual_paths if str(p).strip()]
        if paths:
            runner.set_frozen(runner.load_frozen_residuals(paths))
        if residual_path:
            ok, msg = runner.load_residual(residual_path)
            if not ok:
                raise CheckpointRejected(msg)
            runner.residual_slot.commit()
        return runner

    def _check_critic(self, critic: nn.Module) -> None:
        kind = getattr(critic, "input_kind", "z")
        want = {"action_dim": self.action_dim, "chunk_size": self.chunk_size}
        if kind == "z":
            want["z_dim"] = self.z_dim
        elif kind == "images" and getattr(critic, "state_dim", 0) not in (0, self.state_dim):
            want["state_dim"] = self.state_dim
        bad = {k: (getattr(critic, k, None), v) for k, v in want.items() if getattr(critic, k, None) != v}
        if bad:
            raise ValueError(
                "PolicyRunner: the critic does not fit the policy: "
                + ", ".join(f"{k} {got} (policy {exp})" for k, (got, exp) in bad.items())
            )

    def _check_actor_dims(self, actor: ResidualChunkActor, what: str) -> None:
        want = {
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_size": self.chunk_size,
            "z_dim": self.z_dim,
        }
        got = actor.dims()
        if got != want:
            raise CheckpointRejected(f"{what}: dims {got} do not fit the VLA {want}")

    def set_frozen(self, frozen: Sequence[FrozenResidual]) -> None:
        """Set the start-up frozen rounds (Algorithm 1 lines 8-12); call before any ``load_residual``."""
        if self.residual_slot.snapshot()[0] is not None or self.residual_slot.pending:
            raise RuntimeError("PolicyRunner.set_frozen: call it before a residual is loaded")
        for f in frozen:
            self._check_actor_dims(f.actor, "frozen residual")
        self.frozen = [FrozenResidual(f.actor.to(self.device), float(f.lam)) for f in frozen]
        self.base_policy = ResidualPolicy.from_normalizer(self.normalizer, self.frozen).to(self.device)

    def _compose_policy(
        self, current: ResidualChunkActor | None, extra_frozen: Sequence[FrozenResidual] = ()
    ) -> ResidualPolicy:
        """Start-up frozen rounds, then a checkpoint's own frozen rounds, then ``current``."""
        frozen = list(self.frozen) + list(extra_frozen)
        return ResidualPolicy.from_normalizer(self.normalizer, frozen, current).to(self.device)

    def residual_template(self, state: dict[str, torch.Tensor] | None = None) -> ResidualChunkActor:
        """The single-file residual architecture in use (fixed by the first checkpoint's shapes)."""
        if self._template is None:
            if state is None:
                raise CheckpointRejected("no residual architecture known yet (load a first checkpoint)")
            self._template = self._actor_from_state(state)
        return self._template

    def _actor_from_state(self, state: dict[str, torch.Tensor]) -> ResidualChunkActor:
        dims = infer_residual_dims(state)
        S, A, k, Z = self.state_dim, self.action_dim, self.chunk_size, self.z_dim
        want_in = S + k * A + Z
        if dims["in_dim"] != want_in or dims["out_dim"] != k * A:
            raise CheckpointRejected(
                f"residual checkpoint: input/output sizes {dims['in_dim']}/{dims['out_dim']} "
                "do not fit the VLA "
                f"(state {S} + k*A {k * A} + z {Z} = {want_in} in, {k * A} out)"
            )
        rc = ResidualConfig(hidden_dims=dims["hidden_dims"], layer_norm=dims["layer_norm"])
        return ResidualChunkActor(S, A, k, Z, rc)

    def _check_single_file_normalizer(self, path: Path, metadata: dict) -> None:
        """The file's normaliser version (runtime/residual_meta.py) must be this VLA's; none is refused."""
        check_normalizer_version(single_file_normalizer_version(path, metadata), self.normalizer.version, str(path))

    def _load_stack(self, ck_dir: Path, sha256: str = "") -> tuple[list[FrozenResidual], str]:
        """All residuals of a multi-round checkpoint, verified; version = sha256[:16] of the last file."""
        meta = json.loads((ck_dir / "meta.json").read_text())
        extra = meta.get("extra") if isinstance(meta, dict) else None
        if not isinstance(extra, dict):
            raise CheckpointRejected(f"{ck_dir}/meta.json: no 'extra' object (expected bora train online's)")
        check_normalizer_version(extra.get("normalizer_version"), self.normalizer.version, f"{ck_dir}/meta.json")
        try:
            rc_fields = dict(extra["residual_config"])
            dims = dict(extra["dims"])
            self._check_actor_dims(ResidualChunkActor(cfg=ResidualConfig(**rc_fields), **dims), str(ck_dir))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointRejected(f"{ck_dir}/meta.json: bad residual description ({e})") from e
        out, version = [], ""
        entries = stack_entries(extra, f"{ck_dir}/meta.json")
        for i, (name, lam) in enumerate(entries):
            f = ck_dir / f"{name}.safetensors"
            want = sha256 if (sha256 and i == len(entries) - 1) else ""
            # each round's widths come from its own tensors (rounds may differ); max_residual etc. from meta
            arch = infer_residual_dims(verify_checkpoint(f, want).state)
            rc = ResidualConfig(
                **{**rc_fields, "hidden_dims": arch["hidden_dims"], "layer_norm": arch["layer_norm"]}
            )
            module, ck = load_module_checked(ResidualChunkActor(cfg=rc, **dims), f, want)
            out.append(FrozenResidual(module.to(self.device), lam))
            version = ck.version
        return out, version

    def load_residual(self, path: str, sha256: str = "") -> tuple[bool, str]:
        """Verify and STAGE a residual checkpoint (``residual_slot.commit()`` makes it current).

        Never raises for a bad file: returns ``(False, reason)`` and the current residual stays.
        """
        try:
            p = Path(path)
            stack_dir = stack_checkpoint_dir(p)
            if stack_dir is not None:
                stack, version = self._load_stack(stack_dir, sha256)
                current = stack[-1]
                rp = self._compose_policy(current.actor, stack[:-1])
                self.residual_slot.stage((rp, current.lam), version)
                return True, f"verified {stack_dir.name} ({len(stack)} residual(s)) sha256 {version}"
            if self._template is None:
                self.residual_template(verify_checkpoint(p, sha256).state)
            module, ck = load_module_checked(self.residual_template(), p, sha256)
            self._check_single_file_normalizer(p, ck.metadata)
            alpha = ck.metadata.get("alpha")  # none stored: residual_scale (deployed_alpha)
            alpha = blend_weight(alpha, "alpha", f"{ck.path} (safetensors metadata)") if alpha else None
        except (CheckpointRejected, FileNotFoundError, RuntimeError, OSError, ValueError) as e:
            return False, str(e)
        rp = self._compose_policy(module.to(self.device))
        self.residual_slot.stage((rp, alpha), ck.version)
        return True, f"verified {ck.path.name} sha256 {ck.version}"

    def load_frozen_residuals(self, specs: Sequence[str]) -> list[FrozenResidual]:
        """Earlier rounds' residuals from ``PATH`` / ``PATH@LAMBDA`` specs, in round order (raises)."""
        out: list[FrozenResidual] = []
        for spec in specs:
            path, lam = split_lambda(spec)
            lam = None if lam is None else blend_weight(lam, "@LAMBDA", f"frozen residual {spec}")
            p = Path(path)
            if not p.exists():
                raise FileNotFoundError(f"frozen residual {p} does not exist")
            stack_dir = stack_checkpoint_dir(p)
            if stack_dir is not None:
                stack, _ = self._load_stack(stack_dir)
                if lam is not None:
                    stack[-1] = FrozenResidual(stack[-1].actor, lam)
                out.extend(stack)
                continue
            ck = verify_checkpoint(p)
            self._check_single_file_normalizer(p, ck.metadata)
            module, ck = load_module_checked(self._actor_from_state(ck.state), p)
            if lam is None:
                key = "lambda" if ck.metadata.get("lambda") else "alpha"
                if not ck.metadata.get(key):
                    raise CheckpointRejected(
                        f"frozen residual {p}: no blend weight (give it as {p}@LAMBDA, "
                        "or store 'lambda' in the safetensors metadata)"
                    )
                lam = blend_weight(ck.metadata[key], key, f"frozen residual {p} (safetensors metadata)")
            out.append(FrozenResidual(module.to(self.device), float(lam)))
        return out

    # ------------------------------------------------------------------ inference
    def _check_inputs(self, color: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        where = "PolicyRunner.infer"
        return self.processor.check_color(color, where), self.processor.check_state(state, where)

    def _critic_args(self, z: torch.Tensor, color: np.ndarray, prop: torch.Tensor) -> tuple[tuple, dict]:
        if getattr(self.critic, "input_kind", "z") == "images":
            images = self.processor.images(color[None])
            kw = {"proprio": prop} if getattr(self.critic, "state_dim", 0) else {}
            return (images,), kw
        return (z.float(),), {}

    def deployed_alpha(self, stored: float | None) -> float:
        """Alpha of the current residual (Algorithm 1 line 15): ``alpha_override``, else the stored one, else
        ``residual_scale``."""
        a = next(x for x in (self.cfg.alpha_override, stored, self.cfg.residual_scale) if x is not None)
        return float(a)

    @torch.no_grad()
    def infer(
        self, color: np.ndarray, state: np.ndarray, instruction: str, generator: torch.Generator | None = None
    ) -> ChunkResult:
        """One chunk (module docstring); ``generator`` seeds the expert's noise when not deterministic."""
        t0 = time.perf_counter()
        color, s = self._check_inputs(color, state)
        obs = {"color": color[None], "instruction": str(instruction), "state": s[None]}
        z, a_vla, _ = self.policy.act(
            obs, self.cfg.num_inference_steps, generator=generator, deterministic=self.cfg.deterministic
        )
        z, a_vla = z.float(), a_vla.float()
        prop = self.processor.normalize_state_tensor(s)[None].float()
        t1 = time.perf_counter()
        current, version = self.residual_slot.snapshot()
        rp, alpha_ck = current if current is not None else (self.base_policy, None)
        has_res = rp.current is not None
        alpha = self.deployed_alpha(alpha_ck) if has_res else 0.0
        out = rp.compose(z, prop, a_vla, alpha)
        res_phys = out.residual * rp.action_std
        q = v = adv = None
        t2 = time.perf_counter()
        if self.critic is not None:
            args, kw = self._critic_args(z, color, prop)
            q = self.critic.q(*args, out.final_norm, **kw).float()[0].cpu().numpy()
            v = self.critic.v(*args, **kw).float()[0].cpu().numpy()
            adv = q - v
        t3 = time.perf_counter()

        def np0(x: torch.Tensor) -> np.ndarray:
            return x[0].detach().float().cpu().numpy()

        return ChunkResult(
            base=np0(rp.to_physical(out.base_norm)),
            residual=np0(res_phys),
            final=np0(out.final_physical),
            residual_scale=float(out.alpha) if has_res else 0.0,
            z=np0(z),
            proprio_norm=np0(prop),
            base_norm=np0(out.base_norm),
            q=q,
            v=v,
            advantage=adv,
            residual_version=version,
            timing_ms={
                "vla": (t1 - t0) * 1e3,
                "residual": (t2 - t1) * 1e3,
                "critic": (t3 - t2) * 1e3,
                "total": (t3 - t0) * 1e3,
            },
        )

    @torch.no_grad()
    def value(self, color: np.ndarray, state: np.ndarray, instruction: str) -> np.ndarray:
        """The critic's ``[v(z_t, i)]_i`` (k values) at this observation; needs a critic."""
        if self.critic is None:
            raise RuntimeError("PolicyRunner.value: no critic loaded (critic_path)")
        color, s = self._check_inputs(color, state)
        obs = {"color": color[None], "instruction": str(instruction), "state": s[None]}
        z, prop = self.policy.encode_with_state(obs)
        args, kw = self._critic_args(z, color, prop.float())
        return self.critic.v(*args, **kw).float()[0].cpu().numpy()


def make_demo_vla(
    path: str | Path,
    home_action,
    state_dim: int | None = None,
    chunk_size: int = 16,
    action_std: float = 0.05,
    seed: int = 0,
    n_cameras: int = 3,
) -> Path:
    """A tiny random-init ``VLAPolicy`` (``paligemma-tiny``) saved with ``VLAPolicy.save``, whose normaliser
    centres actions on ``home_action`` with a small std, so its (untrained) chunks stay near the home pose.
    For demos and tests only: it does not solve any task. Re-used when ``path`` already holds one with the
    same shapes."""
    home = np.asarray(home_action, dtype=np.float64).reshape(-1)
    A = int(home.shape[0])
    S = int(state_dim or A)
    p = Path(path)
    cfg = VLAConfig(
        vlm="paligemma-tiny",
        action_dim=A,
        state_dim=S,
        chunk_size=chunk_size,
        n_cameras=n_cameras,
        expert_hidden_dim=128,
        expert_num_blocks=2,
        expert_cond_dim=64,
    )
    if (
        (p / "config.json").is_file()
        and (p / "model.safetensors").is_file()
        and (p / "normalizer.json").is_file()
    ):
        try:
            old = VLAConfig.from_dict(json.loads((p / "config.json").read_text()))
        except (ValueError, TypeError):
            old = None
        if old == cfg:
            return p
    torch.manual_seed(seed)
    state_mean = home if S == A else np.zeros(S)
    norm = Normalizer(state_mean, np.full(S, 0.5), home, np.full(A, action_std))
    return VLAPolicy(cfg, norm).save(p)
