"""``PolicyRunner``: frozen VLA + residual composition + chunk critic behind one ``infer`` call.

Usable without ROS (the policy node calls it on its inference thread; benchmarks call it directly):

    runner = PolicyRunner.from_paths(vla_path, residual_path="", critic_path="")
    res = runner.infer(color [n_cam, H, W, 3] uint8, state [state_dim], instruction)

One inference (paper Sec. 3.2, Algorithm 1 lines 6-15):
  1. s^norm = (s - mu_s) / (sigma_s + eps)                         (line 6)
  2. z_t = VLM(images, instruction, s^norm); A_VLA^norm = expert(z_t, s^norm)
  3. A_base^norm = A_VLA^norm (+ folded frozen residuals, lines 8-12)
  4. A_final^norm = A_base^norm + alpha * pi_res(s^norm, A_base^norm, z_t)   (line 15)
  5. physical = norm * (sigma_a + eps) + mu_a
  6. critic: q_i = q(z_t, A_final^norm, i), v_i = v(z_t, i), advantage_i = q_i - v_i
     (the one-step action advantage; the action-level GAE of Eq. 2 needs rewards the runtime
     does not have, so the runtime publishes this estimate).

The residual actor sits in a ``HotSwapSlot``; ``infer`` takes one snapshot per call, so a hot
reload never changes the residual in the middle of an inference.

VLA directory format (``save_vla`` / ``load_vla``): ``vla_config.json`` (``{"vlm": <named config or
local checkpoint dir>, "state_dim", "action_dim", "chunk_size", "expert": "consistency"|"diffusion",
"expert_cfg": {...}}``), ``vla.safetensors`` (the VLM backbone + expert state dict, keys
``vlm.*``/``expert.*``), ``normalizer.json``. Real PaliGemma weights load from the local directory
named by ``vlm``; nothing is downloaded.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import ResidualChunkActor, ResidualConfig, ResidualPolicy
from bora_policy.runtime.checkpoint_loader import (
    CheckpointRejected,
    HotSwapSlot,
    infer_residual_dims,
    load_module_checked,
    sha256_file,
    verify_checkpoint,
)

VLA_CONFIG = "vla_config.json"
VLA_WEIGHTS = "vla.safetensors"
NORMALIZER = "normalizer.json"


def pick_device(prefer: str = "auto") -> torch.device:
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(prefer)


class VLA(nn.Module):
    """VLM backbone (cognition token) + action expert, as the runtime uses them."""

    def __init__(self, vlm: nn.Module, expert: nn.Module, config: dict[str, Any]):
        super().__init__()
        self.vlm, self.expert, self.config = vlm, expert, dict(config)

    @property
    def chunk_size(self) -> int:
        return int(self.config["chunk_size"])

    @property
    def action_dim(self) -> int:
        return int(self.config["action_dim"])

    @property
    def state_dim(self) -> int:
        return int(self.config["state_dim"])

    @property
    def z_dim(self) -> int:
        return int(self.vlm.z_dim)

    @torch.no_grad()
    def act_norm(
        self,
        images: torch.Tensor,
        instructions: list[str],
        prop_norm: torch.Tensor,
        num_steps: int | None = None,
        deterministic: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z [B, Z], A_VLA^norm [B, k, A])``."""
        vlm_prop = prop_norm if getattr(self.vlm, "proprio_proj", None) is not None else None
        z = self.vlm.encode(images, instructions, vlm_prop)
        ex_prop = prop_norm if self.expert.cfg.state_dim else None
        chunk = (
            self.expert.mean_chunk(z, ex_prop, num_steps)
            if deterministic
            else self.expert.sample(z, ex_prop, num_steps)
        )
        return z, chunk.float()


def build_vla(
    vlm: str = "paligemma-tiny",
    state_dim: int = 31,
    action_dim: int = 31,
    chunk_size: int = 32,
    expert: str = "consistency",
    expert_cfg: dict | None = None,
    device: str | torch.device = "cpu",
    vlm_proprio: bool = True,
) -> VLA:
    """A VLA from a named VLM config (random init) or a local checkpoint directory."""
    from bora_policy.models.action_expert import build_expert
    from bora_policy.models.vlm import build_vlm

    backbone = build_vlm(vlm, state_dim=state_dim if vlm_proprio else None, device=device)
    ecfg = dict(expert_cfg or {})
    ecfg.update(
        action_dim=action_dim,
        chunk_size=chunk_size,
        z_dim=backbone.z_dim,
        state_dim=ecfg.get("state_dim", state_dim),
    )
    ex = build_expert(expert, **ecfg).to(device)
    config = {
        "vlm": vlm,
        "state_dim": state_dim,
        "action_dim": action_dim,
        "chunk_size": chunk_size,
        "expert": expert,
        "expert_cfg": {k: v for k, v in ecfg.items() if k != "sample_sigmas"},
        "vlm_proprio": vlm_proprio,
    }
    return VLA(backbone, ex, config).eval()


def save_vla(vla: VLA, normalizer: Normalizer, path: str | Path) -> Path:
    from safetensors.torch import save_file

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    (p / VLA_CONFIG).write_text(json.dumps(vla.config, indent=1))
    state = {k: v.detach().cpu().contiguous().clone() for k, v in vla.state_dict().items()}
    save_file(state, str(p / VLA_WEIGHTS), metadata={"format": "bora-vla/1"})
    normalizer.save(p / NORMALIZER)
    return p


def load_vla(path: str | Path, device: str | torch.device = "cpu") -> tuple[VLA, Normalizer, str]:
    """``(vla, normalizer, version)``; version = sha256 prefix of the weights file."""
    from safetensors.torch import load_file

    p = Path(path)
    for name in (VLA_CONFIG, VLA_WEIGHTS, NORMALIZER):
        if not (p / name).is_file():
            raise FileNotFoundError(
                f"vla_path {p}: missing {name} (expected a directory written by save_vla)"
            )
    cfg = json.loads((p / VLA_CONFIG).read_text())
    vla = build_vla(
        cfg["vlm"],
        cfg["state_dim"],
        cfg["action_dim"],
        cfg["chunk_size"],
        cfg.get("expert", "consistency"),
        cfg.get("expert_cfg"),
        device=device,
        vlm_proprio=cfg.get("vlm_proprio", True),
    )
    vla.load_state_dict(load_file(str(p / VLA_WEIGHTS), device=str(device)), strict=True)
    vla.eval().requires_grad_(False)
    return vla, Normalizer.load(p / NORMALIZER), sha256_file(p / VLA_WEIGHTS)[:16]


def load_critic(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, str]:
    """A ``bora_policy.models.critic.ChunkCritic`` saved by its own ``save``; (critic, version)."""
    from bora_policy.models import critic as critic_mod  # lands with the models package

    loader = getattr(critic_mod, "load_critic", None) or critic_mod.ChunkCritic.load
    crit = loader(path, device=device) if loader is not None else None
    f = Path(path)
    version = sha256_file(f)[:16] if f.is_file() else sha256_file(next(f.glob("*.safetensors")))[:16]
    return crit.eval(), version


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
    num_inference_steps: expert sampling steps (consistency: 1-3). deterministic: use the expert's
    mean chunk (zero injected noise) instead of a sample."""

    residual_scale: float = 0.2
    num_inference_steps: int | None = None
    deterministic: bool = True
    device: str = "auto"


class PolicyRunner:
    """See the module docstring."""

    def __init__(
        self,
        vla: VLA,
        normalizer: Normalizer,
        cfg: PolicyRunnerConfig | None = None,
        critic: nn.Module | None = None,
        policy_version: str = "",
        critic_version: str = "",
    ):
        self.cfg = cfg or PolicyRunnerConfig()
        self.device = pick_device(self.cfg.device)
        self.vla = vla.to(self.device).eval()
        self.normalizer = normalizer
        if normalizer.state_dim != vla.state_dim or normalizer.action_dim != vla.action_dim:
            raise ValueError(
                f"PolicyRunner: normalizer dims (state {normalizer.state_dim}, action "
                f"{normalizer.action_dim}) differ from the VLA's ({vla.state_dim}, {vla.action_dim})"
            )
        self.critic = critic.to(self.device).eval() if critic is not None else None
        self.policy_version, self.critic_version = policy_version, critic_version
        self.residual_policy = ResidualPolicy.from_normalizer(normalizer).to(self.device)
        self.residual_slot: HotSwapSlot[ResidualChunkActor] = HotSwapSlot(None, "")
        self._template: ResidualChunkActor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_paths(
        cls,
        vla_path: str,
        residual_path: str = "",
        critic_path: str = "",
        cfg: PolicyRunnerConfig | None = None,
    ) -> PolicyRunner:
        cfg = cfg or PolicyRunnerConfig()
        dev = pick_device(cfg.device)
        vla, norm, version = load_vla(vla_path, device=dev)
        critic, cver = load_critic(critic_path, dev) if critic_path else (None, "")
        runner = cls(vla, norm, cfg, critic=critic, policy_version=version, critic_version=cver)
        if residual_path:
            ok, msg = runner.load_residual(residual_path)
            if not ok:
                raise CheckpointRejected(msg)
            runner.residual_slot.commit()
        return runner

    def residual_template(self, state: dict[str, torch.Tensor] | None = None) -> ResidualChunkActor:
        """The residual architecture in use (fixed by the first checkpoint's shapes)."""
        if self._template is None:
            if state is None:
                raise CheckpointRejected("no residual architecture known yet (load a first checkpoint)")
            dims = infer_residual_dims(state)
            v = self.vla
            want_in = v.state_dim + v.chunk_size * v.action_dim + v.z_dim
            if dims["in_dim"] != want_in or dims["out_dim"] != v.chunk_size * v.action_dim:
                raise CheckpointRejected(
                    f"residual checkpoint: input/output sizes {dims['in_dim']}/{dims['out_dim']} "
                    "do not fit the VLA "
                    f"(state {v.state_dim} + k*A {v.chunk_size * v.action_dim} + z {v.z_dim} = {want_in} in, "
                    f"{v.chunk_size * v.action_dim} out)"
                )
            rc = ResidualConfig(hidden_dims=dims["hidden_dims"], layer_norm=dims["layer_norm"])
            self._template = ResidualChunkActor(v.state_dim, v.action_dim, v.chunk_size, v.z_dim, rc)
        return self._template

    def load_residual(self, path: str, sha256: str = "") -> tuple[bool, str]:
        """Verify and STAGE a residual checkpoint (``residual_slot.commit()`` makes it current).

        Never raises for a bad file: returns ``(False, reason)`` and the current residual stays.
        """
        try:
            if self._template is None:
                self.residual_template(verify_checkpoint(path, sha256).state)
            module, ck = load_module_checked(self.residual_template(), path, sha256)
        except (CheckpointRejected, FileNotFoundError, RuntimeError) as e:
            return False, str(e)
        alpha = ck.metadata.get("alpha")
        self.residual_slot.stage((module.to(self.device), float(alpha) if alpha else None), ck.version)
        return True, f"verified {ck.path.name} sha256 {ck.version}"

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(self, color: np.ndarray, state: np.ndarray, instruction: str) -> ChunkResult:
        t0 = time.perf_counter()
        color = np.asarray(color)
        if color.ndim != 4 or color.shape[-1] != 3 or color.dtype != np.uint8:
            raise ValueError(
                f"PolicyRunner.infer: color must be [n_cam, H, W, 3] uint8, got {color.shape} {color.dtype}"
            )
        s = np.asarray(state, dtype=np.float32).reshape(-1)
        if s.shape[0] != self.vla.state_dim:
            raise ValueError(
                f"PolicyRunner.infer: state has {s.shape[0]} dims, expected state_dim={self.vla.state_dim}"
            )
        dev = self.device
        images = torch.from_numpy(np.ascontiguousarray(color)).to(dev).permute(0, 3, 1, 2).unsqueeze(0)
        prop = torch.from_numpy(self.normalizer.normalize_state(s)).to(dev).unsqueeze(0)
        z, a_vla = self.vla.act_norm(
            images, [instruction], prop, self.cfg.num_inference_steps, self.cfg.deterministic
        )
        t1 = time.perf_counter()
        (current, version) = self.residual_slot.snapshot()
        actor, alpha_ck = current if current is not None else (None, None)
        alpha = float(alpha_ck) if alpha_ck is not None else self.cfg.residual_scale
        self.residual_policy.current = actor
        out = self.residual_policy.compose(z, prop, a_vla, alpha if actor is not None else 0.0)
        std = self.residual_policy.action_std
        res_phys = out.residual * std
        q = v = adv = None
        t2 = time.perf_counter()
        if self.critic is not None:
            q = self.critic.q(z, out.final_norm).float()[0].cpu().numpy()
            v = self.critic.v(z).float()[0].cpu().numpy()
            adv = q - v
        t3 = time.perf_counter()

        def np0(x: torch.Tensor) -> np.ndarray:
            return x[0].detach().float().cpu().numpy()

        return ChunkResult(
            base=np0(self.residual_policy.to_physical(out.base_norm)),
            residual=np0(res_phys),
            final=np0(out.final_physical),
            residual_scale=float(out.alpha) if actor is not None else 0.0,
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


def make_demo_vla(
    path: str | Path,
    home_action,
    state_dim: int | None = None,
    chunk_size: int = 16,
    action_std: float = 0.05,
    seed: int = 0,
) -> Path:
    """A tiny random-init VLA (``paligemma-tiny``) whose normaliser centres actions on ``home_action``
    with a small std, so its (untrained) chunks stay near the home pose. For demos and tests only:
    it does not solve any task. Re-used when ``path`` already holds one with the same shapes."""
    home = np.asarray(home_action, dtype=np.float64).reshape(-1)
    A = int(home.shape[0])
    S = int(state_dim or A)
    p = Path(path)
    if (p / VLA_CONFIG).is_file() and (p / VLA_WEIGHTS).is_file() and (p / NORMALIZER).is_file():
        cfg = json.loads((p / VLA_CONFIG).read_text())
        if (cfg.get("action_dim"), cfg.get("state_dim"), cfg.get("chunk_size")) == (A, S, chunk_size):
            return p
    torch.manual_seed(seed)
    vla = build_vla(
        "paligemma-tiny", S, A, chunk_size, expert_cfg=dict(hidden_dim=128, num_blocks=2, cond_dim=64)
    )
    state_mean = home if S == A else np.zeros(S)
    norm = Normalizer(state_mean, np.full(S, 0.5), home, np.full(A, action_std))
    return save_vla(vla, norm, p)
