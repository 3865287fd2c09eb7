"""VLA policy = VLM backbone (cognition token z_t) + action expert + normaliser (paper Sec. 3.1, Alg. 1).

``VLAPolicy.encode(obs) -> z`` and ``VLAPolicy.act(obs) -> (z, chunk_norm, chunk_physical)``; the state
is normalised with the normaliser before it enters the VLM proprio token and the expert (Alg. 1
line 6), the expert's chunk is mapped back to physical units with the action statistics (line 15).

Observation batch (a dict):
  ``images``: ``[B, n_cam, 3, H, W]`` float in [0, 1] or uint8, or ``color``: ``[B, n_cam, H, W, 3]``
  uint8 (the episode-file layout, numpy or torch); ``instructions``: list of B strings (or
  ``instruction``: one string for the whole batch); ``state``: ``[B, state_dim]`` physical units.

Checkpoint directory (``save`` / ``load``): ``config.json`` (``VLAConfig``), ``model.safetensors``
(VLM incl. cognition token and proprio projection + expert), ``normalizer.json``. ``load`` builds
the architecture from the config without weights and raises a ``ValueError`` that lists the
mismatching tensors when the checkpoint does not fit the config.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .action_expert import ActionExpert, build_expert
from .normalizer import Normalizer
from .vlm import VLMBackbone, build_vlm

FORMAT = "bora-vla/1"


@dataclass
class VLAConfig:
    """VLA architecture. Defaults: the simulated robot (3 x 96 px cameras, 7 arm + 20 hand joints), k = 32."""

    vlm: str = "paligemma-tiny"  # named config (vlm.NAMED_CONFIGS) or a local checkpoint directory
    expert: str = "consistency"  # "consistency" | "diffusion"
    action_dim: int = 27
    state_dim: int = 27
    chunk_size: int = 32  # k (Table 3)
    num_inference_steps: int = 1  # consistency: 1-3; diffusion: 10-100
    n_cameras: int = 3
    image_size: int = 96  # camera image side (the VLM resizes to its own input size)
    proprio_token: bool = True  # project the normalised state into an extra VLM token
    expert_proprio: bool = True  # condition the expert on the normalised state too
    expert_hidden_dim: int = 512
    expert_num_blocks: int = 3
    expert_cond_dim: int = 256
    expert_kwargs: dict = field(default_factory=dict)  # extra ConsistencyConfig / DiffusionConfig fields
    padding_side: str = "right"
    bf16: bool = True  # autocast on CUDA
    gradient_checkpointing: bool = False
    vlm_dtype: str = "float32"  # dtype of the VLM weights ("bfloat16" for large models on GPU)

    def __post_init__(self) -> None:
        if self.expert not in ("consistency", "diffusion"):
            raise ValueError(f"VLAConfig.expert must be 'consistency' or 'diffusion', got {self.expert!r}")
        if self.expert == "consistency" and not 1 <= self.num_inference_steps <= 3:
            raise ValueError(
                f"VLAConfig.num_inference_steps must be 1-3 for the consistency expert, "
                f"got {self.num_inference_steps}"
            )
        for f in ("action_dim", "state_dim", "chunk_size", "n_cameras", "image_size", "num_inference_steps"):
            if getattr(self, f) <= 0:
                raise ValueError(f"VLAConfig.{f} must be > 0, got {getattr(self, f)}")
        if self.vlm_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"VLAConfig.vlm_dtype must be 'float32' or 'bfloat16', got {self.vlm_dtype!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VLAConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"format"})
        if unknown:
            raise ValueError(f"VLAConfig: unknown fields {unknown}")
        return cls(**{k: v for k, v in d.items() if k in names})


def _to_tensor(x: Any, device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(x).__name__}")
    return x.to(device)


class VLAPolicy(nn.Module):
    """VLM + action expert + normaliser. See the module docstring for the observation format."""

    def __init__(
        self,
        cfg: VLAConfig,
        normalizer: Normalizer | None = None,
        device: str | torch.device | None = None,
        load_vlm_weights: bool = True,
    ):
        super().__init__()
        self.cfg = cfg
        dev = torch.device(device) if device is not None else torch.device("cpu")
        dtype = torch.bfloat16 if cfg.vlm_dtype == "bfloat16" else None
        self.vlm: VLMBackbone = build_vlm(
            cfg.vlm,
            state_dim=cfg.state_dim if cfg.proprio_token else None,
            device=dev,
            dtype=dtype,
            padding_side=cfg.padding_side,
            bf16=cfg.bf16,
            gradient_checkpointing=cfg.gradient_checkpointing,
            load_weights=load_vlm_weights,
        )
        self.vlm.to(dev)
        kw = dict(
            action_dim=cfg.action_dim,
            z_dim=self.vlm.z_dim,
            state_dim=cfg.state_dim if cfg.expert_proprio else 0,
            chunk_size=cfg.chunk_size,
            hidden_dim=cfg.expert_hidden_dim,
            num_blocks=cfg.expert_num_blocks,
            cond_dim=cfg.expert_cond_dim,
            num_inference_steps=cfg.num_inference_steps,
        )
        kw.update(cfg.expert_kwargs)
        self.expert: ActionExpert = build_expert(cfg.expert, **kw).to(dev)
        self.normalizer = normalizer or Normalizer.identity(cfg.state_dim, cfg.action_dim)
        self._check_normalizer(self.normalizer)

    def _check_normalizer(self, n: Normalizer) -> None:
        if n.state_dim != self.cfg.state_dim or n.action_dim != self.cfg.action_dim:
            raise ValueError(
                f"VLAPolicy: normaliser dims (state {n.state_dim}, action {n.action_dim}) do not match "
                f"the config (state_dim {self.cfg.state_dim}, action_dim {self.cfg.action_dim})"
            )

    @property
    def device(self) -> torch.device:
        return self.vlm.device

    @property
    def z_dim(self) -> int:
        return self.vlm.z_dim

    # ------------------------------------------------------------------ observation handling
    def prepare(self, obs: dict) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        """``obs`` -> (images [B, n_cam, 3, H, W], instructions, normalised state [B, state_dim])."""
        dev = self.device
        if "images" in obs:
            images = _to_tensor(obs["images"], dev)
        elif "color" in obs:
            color = _to_tensor(obs["color"], dev)
            if color.ndim != 5 or color.shape[-1] != 3:
                raise ValueError(f"obs['color'] must be [B, n_cam, H, W, 3], got {tuple(color.shape)}")
            images = color.permute(0, 1, 4, 2, 3)
        else:
            raise KeyError("obs needs 'images' [B, n_cam, 3, H, W] or 'color' [B, n_cam, H, W, 3]")
        if images.ndim != 5 or images.shape[1] != self.cfg.n_cameras or images.shape[2] != 3:
            raise ValueError(
                f"obs images must be [B, n_cam={self.cfg.n_cameras}, 3, H, W], got {tuple(images.shape)}"
            )
        B = images.shape[0]
        if "instructions" in obs:
            instructions = list(obs["instructions"])
        elif "instruction" in obs:
            instructions = [str(obs["instruction"])] * B
        else:
            raise KeyError("obs needs 'instructions' (list of B strings) or 'instruction' (str)")
        if "state" not in obs:
            raise KeyError("obs needs 'state' [B, state_dim] (physical units)")
        state = _to_tensor(obs["state"], dev).float()
        if state.shape != (B, self.cfg.state_dim):
            raise ValueError(
                f"obs['state'] must be [B={B}, state_dim={self.cfg.state_dim}], got {tuple(state.shape)}"
            )
        return images, instructions, self.normalizer.normalize_state(state)

    def encode(self, obs: dict) -> torch.Tensor:
        """z_t ``[B, z_dim]`` (differentiable)."""
        images, instructions, state_n = self.prepare(obs)
        return self.vlm.encode(images, instructions, state_n if self.cfg.proprio_token else None)

    def encode_with_state(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_t, normalised state) in one pass, for training code that also needs the expert's proprio."""
        images, instructions, state_n = self.prepare(obs)
        return self.vlm.encode(images, instructions, state_n if self.cfg.proprio_token else None), state_n

    def expert_proprio(self, state_norm: torch.Tensor) -> torch.Tensor | None:
        return state_norm if self.cfg.expert_proprio else None

    @torch.no_grad()
    def act(
        self,
        obs: dict,
        num_steps: int | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z [B, z_dim], chunk_norm [B, k, A], chunk_physical [B, k, A]); no gradients.

        ``deterministic=True`` returns ``mean_chunk`` (the Gaussian head's mean).
        """
        z, state_n = self.encode_with_state(obs)
        prop = self.expert_proprio(state_n)
        if deterministic:
            chunk = self.expert.mean_chunk(z, prop, num_steps)
        else:
            chunk = self.expert.sample(z, prop, num_steps, generator=generator)
        return z, chunk, self.normalizer.denormalize_action(chunk)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({"format": FORMAT, **self.cfg.to_dict()}, indent=1))
        self.normalizer.save(d / "normalizer.json")
        sd = {k: v.detach().contiguous().cpu().clone() for k, v in self.state_dict().items()}
        save_file(
            sd,
            str(d / "model.safetensors"),
            metadata={"format": FORMAT, "normalizer_version": self.normalizer.version},
        )
        return d

    @classmethod
    def load(
        cls, directory: str | Path, device: str | torch.device | None = None, cfg: VLAConfig | None = None
    ) -> VLAPolicy:
        """Load a directory written by ``save``. ``cfg`` overrides the stored config (shape-checked)."""
        from safetensors.torch import load_file

        d = Path(directory)
        for f in ("config.json", "model.safetensors", "normalizer.json"):
            if not (d / f).is_file():
                raise FileNotFoundError(f"VLAPolicy.load: {d / f} is missing")
        if cfg is None:
            cfg = VLAConfig.from_dict(json.loads((d / "config.json").read_text()))
        norm = Normalizer.load(d / "normalizer.json")
        policy = cls(cfg, norm, device=device, load_vlm_weights=False)
        sd = load_file(str(d / "model.safetensors"), device="cpu")
        own = policy.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        bad = [
            f"{k}: checkpoint {tuple(sd[k].shape)} vs config {tuple(own[k].shape)}"
            for k in own
            if k in sd and sd[k].shape != own[k].shape
        ]
        if missing or unexpected or bad:
            lines = (
                bad[:10]
                + [f"missing: {k}" for k in missing[:5]]
                + [f"unexpected: {k}" for k in unexpected[:5]]
            )
            raise ValueError(
                f"VLAPolicy.load: checkpoint {d} does not match the config ({len(bad)} shape mismatches, "
                f"{len(missing)} missing, {len(unexpected)} unexpected):\n  " + "\n  ".join(lines)
            )
        policy.load_state_dict(sd, strict=True)
        return policy
