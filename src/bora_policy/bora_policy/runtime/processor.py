"""Observation and action processors: raw robot data <-> the policy's (normalised) tensors, in one place.

In the manner of LeRobot's policy processors, two small objects sit between a robot (simulated, ROS
or a recording) and the networks:

``ObservationProcessor`` (raw arm q + hand q + colour images per camera -> policy inputs)
  1. state ``s_t = [arm q (7), hand q (n_hand)]`` float32: ``bora_policy.common.state`` (the one
     definition of the layout, torch-free so that the simulated robot shares it);
  2. ``s^norm = (s - mu_s) / (sigma_s + eps)`` (Algorithm 1, line 6) with the run's ``Normalizer``;
  3. colour images ``[n_cam, H, W, 3] uint8`` stacked in camera order, converted to the VLM's layout
     ``[..., n_cam, 3, H, W]`` (uint8, or float in [0, 1] = ``/ 255``, docs/interfaces.md).
``ActionProcessor`` (joint-space actions <-> normalised actions)
  ``a^norm = (a - mu_a) / (sigma_a + eps)`` and back ``a = a^norm (sigma_a + eps) + mu_a`` (Algorithm 1
  lines 6 and 15); ``normalize(a, clip)`` optionally clips to +-clip normalised units (our choice,
  ``OnlineRunConfig.action_clip``: dimensions the demonstrations never moved have a tiny sigma).

Both name the normaliser statistics they use by ``version`` (sha256 of the statistics, published with
every chunk and stored with every checkpoint). The formula itself lives in
``bora_policy.models.normalizer.Normalizer``; processors only route data through it, so a state or an
action is normalised the same way in the policy node, ``bora eval``, both online trainers and the
conversion of recordings. Where the paper is silent (camera order, float32 state, clipping) the
choice is ours and stated above.

Building the state (``state``, ``state_of``, ``check_state``) and stacking cameras need numpy only, so
data collection uses the processor without importing torch; torch is imported by the methods that make
tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bora_policy.common.state import ARM_DOF, split_state, state_of, state_vector

if TYPE_CHECKING:  # torch is imported where tensors are made: building states needs numpy only
    import torch

    from bora_policy.models.normalizer import Normalizer


@dataclass(frozen=True)
class ProcessorConfig:
    """What the processors check and produce.

    arm_dim: arm joints at the front of the state (7, Franka). hand_dim: hand joints (None: the rest of
    the normaliser's state_dim, or unchecked without a normaliser). camera_names: the stacking order of
    the cameras (empty: as given). action_clip: |normalised action| bound of ``ActionProcessor.normalize``
    (0 = off)."""

    arm_dim: int = ARM_DOF
    hand_dim: int | None = None
    camera_names: tuple[str, ...] = ()
    action_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.arm_dim < 1:
            raise ValueError(f"ProcessorConfig.arm_dim must be >= 1, got {self.arm_dim}")
        if self.hand_dim is not None and self.hand_dim < 0:
            raise ValueError(f"ProcessorConfig.hand_dim must be >= 0, got {self.hand_dim}")
        if len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"ProcessorConfig.camera_names has duplicates: {list(self.camera_names)}")
        if not self.action_clip >= 0:
            raise ValueError(f"ProcessorConfig.action_clip must be >= 0, got {self.action_clip}")


@dataclass
class ProcessedObservation:
    """One observation ready for the policy: ``state [S]`` physical float32, ``state_norm [S]`` (a tensor
    on the processor's device, or None without a normaliser) and ``images [n_cam, 3, H, W]`` uint8."""

    state: np.ndarray
    state_norm: torch.Tensor | None
    images: torch.Tensor


class ObservationProcessor:
    """Raw arm q + hand q + colour images -> state, normalised state and image tensors (module docstring)."""

    def __init__(
        self,
        normalizer: Normalizer | None = None,
        cfg: ProcessorConfig | None = None,
        device: str | torch.device = "cpu",
    ):
        self.normalizer = normalizer
        self.cfg = cfg or ProcessorConfig()
        self.device = device
        arm, hand = self.cfg.arm_dim, self.cfg.hand_dim
        self.state_dim: int | None = None if hand is None else arm + hand
        if normalizer is not None:
            if self.state_dim is not None and self.state_dim != normalizer.state_dim:
                raise ValueError(
                    f"ObservationProcessor: arm_dim {arm} + hand_dim {hand} != the normaliser's "
                    f"state_dim {normalizer.state_dim}"
                )
            self.state_dim = normalizer.state_dim
            if hand is None and self.state_dim >= arm:
                hand = self.state_dim - arm
        self.hand_dim = hand

    @property
    def version(self) -> str:
        """The normaliser's version ('' without one)."""
        return "" if self.normalizer is None else self.normalizer.version

    # ------------------------------------------------------------------ state
    def state(self, arm_q, hand_q) -> np.ndarray:
        """``[arm_q, hand_q]`` float32, checked against ``arm_dim`` / ``hand_dim``."""
        s = state_vector(arm_q, hand_q)
        n_arm = np.asarray(arm_q).reshape(-1).shape[0]
        if n_arm != self.cfg.arm_dim:
            raise ValueError(f"ObservationProcessor: arm positions have {n_arm} joints, expected {self.cfg.arm_dim}")
        if self.hand_dim is not None and s.shape[0] - n_arm != self.hand_dim:
            raise ValueError(
                f"ObservationProcessor: hand positions have {s.shape[0] - n_arm} joints, expected {self.hand_dim}"
            )
        return s

    def state_of(self, obs: Mapping) -> np.ndarray:
        """The state of a simulated-robot observation dict (``arm_qpos``, ``hand_qpos``)."""
        s = state_of(obs)
        arm, hand = split_state(s, self.cfg.arm_dim)
        return self.state(arm, hand)

    def check_state(self, state, where: str = "ObservationProcessor") -> np.ndarray:
        """A physical state vector ``[S]`` as float32, its length checked against ``state_dim``."""
        s = np.asarray(state, dtype=np.float32).reshape(-1)
        if self.state_dim is not None and s.shape[0] != self.state_dim:
            raise ValueError(f"{where}: state has {s.shape[0]} dims, expected state_dim={self.state_dim}")
        return s

    def normalize_state(self, state: Any) -> Any:
        """``s^norm`` (Algorithm 1 line 6): a numpy array stays numpy, a tensor stays a tensor (its device)."""
        return self._norm().normalize_state(state)

    def normalize_state_tensor(self, state: np.ndarray) -> torch.Tensor:
        """numpy state ``[..., S]`` (cast to float32) -> normalised float32 tensor on the processor's device."""
        import torch

        s = np.ascontiguousarray(state, dtype=np.float32)
        return self._norm().normalize_state(torch.from_numpy(s).to(self.device))

    def denormalize_state(self, state_norm: Any) -> Any:
        return self._norm().denormalize_state(state_norm)

    def _norm(self) -> Normalizer:
        if self.normalizer is None:
            raise RuntimeError("ObservationProcessor: built without a normaliser (normalizer=None)")
        return self.normalizer

    # ------------------------------------------------------------------ images
    def stack_cameras(self, images: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> np.ndarray:
        """Colour images -> ``[n_cam, H, W, 3] uint8`` in ``camera_names`` order.

        A mapping is ordered by ``camera_names`` (every configured camera must be present); a sequence is
        taken in the given order (its length must match ``camera_names`` when configured)."""
        names = self.cfg.camera_names
        if isinstance(images, Mapping):
            order = list(names) if names else list(images)
            missing = [n for n in order if n not in images]
            if missing:
                raise ValueError(f"ObservationProcessor: no image for camera(s) {missing} (have {sorted(images)})")
            seq = [images[n] for n in order]
        else:
            seq = list(images)
            if names and len(seq) != len(names):
                raise ValueError(
                    f"ObservationProcessor: {len(seq)} colour images for {len(names)} cameras {list(names)}"
                )
        if not seq:
            return np.zeros((0, 0, 0, 3), np.uint8)
        return self.check_color(np.stack([np.asarray(c) for c in seq]))

    def check_color(self, color, where: str = "ObservationProcessor") -> np.ndarray:
        """``color [n_cam, H, W, 3] uint8`` (and ``n_cam == len(camera_names)`` when configured)."""
        color = np.asarray(color)
        if color.ndim != 4 or color.shape[-1] != 3 or color.dtype != np.uint8:
            raise ValueError(f"{where}: color must be [n_cam, H, W, 3] uint8, got {color.shape} {color.dtype}")
        names = self.cfg.camera_names
        if names and color.shape[0] != len(names):
            raise ValueError(f"{where}: color has {color.shape[0]} cameras, expected {len(names)} {list(names)}")
        return color

    def images(self, color: np.ndarray) -> torch.Tensor:
        """``[..., n_cam, H, W, 3] uint8`` -> ``[..., n_cam, 3, H, W]`` uint8 tensor on the device."""
        import torch

        t = torch.from_numpy(np.ascontiguousarray(color)).to(self.device)
        if t.ndim < 4 or t.shape[-1] != 3:
            raise ValueError(f"ObservationProcessor.images: expected [..., n_cam, H, W, 3], got {tuple(t.shape)}")
        return t.movedim(-1, -3)

    def images_float(self, color: np.ndarray) -> torch.Tensor:
        """As ``images``, as float32 in [0, 1] (``/ 255``)."""
        return self.images(color).float() / 255.0

    # ------------------------------------------------------------------ all at once
    def __call__(self, arm_q, hand_q, color) -> ProcessedObservation:
        """Raw parts -> ``ProcessedObservation`` (``color``: per-camera images, a mapping or a sequence)."""
        s = self.state(arm_q, hand_q)
        stacked = self.stack_cameras(color)
        s_n = self.normalize_state_tensor(s) if self.normalizer is not None else None
        return ProcessedObservation(s, s_n, self.images(stacked))


class ActionProcessor:
    """Joint-space actions <-> normalised actions with the run's normaliser (module docstring)."""

    def __init__(self, normalizer: Normalizer, cfg: ProcessorConfig | None = None):
        from bora_policy.models.normalizer import Normalizer

        if not isinstance(normalizer, Normalizer):
            raise TypeError(f"ActionProcessor: normalizer must be a Normalizer, got {type(normalizer).__name__}")
        self.normalizer = normalizer
        self.cfg = cfg or ProcessorConfig()

    @property
    def version(self) -> str:
        return self.normalizer.version

    @property
    def action_dim(self) -> int:
        return self.normalizer.action_dim

    def normalize(self, actions: Any, clip: float | None = None) -> Any:
        """``a^norm`` for actions ``[..., A]`` (numpy or tensor); clipped to +-clip when clip > 0
        (None: ``cfg.action_clip``)."""
        a = self.normalizer.normalize_action(actions)
        c = self.cfg.action_clip if clip is None else float(clip)
        if c > 0:
            return np.clip(a, -c, c) if isinstance(a, np.ndarray) else a.clamp(-c, c)
        return a

    def denormalize(self, actions_norm: Any) -> Any:
        """Joint-space actions from normalised ones (Algorithm 1 line 15's last step)."""
        return self.normalizer.denormalize_action(actions_norm)
