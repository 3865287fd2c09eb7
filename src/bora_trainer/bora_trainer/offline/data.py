"""Which episodes the offline trainer reads (``OfflineConfig.episodes``) and its image augmentation
(``OfflineConfig.augment_shift``)."""

from __future__ import annotations

from pathlib import Path

import torch


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


def is_successful_episode(info: dict) -> bool:
    """An episode that ended in success, whatever its source and quality (filtered BC on the outcome)."""
    return bool(info.get("success", False))


# OfflineConfig.episodes -> which episodes a run reads (None: all)
EPISODE_FILTERS = {"all": None, "clean": is_clean_episode, "successful": is_successful_episode}


def select_episodes(data_dir: str | Path, which: str, field: str = "OfflineConfig.episodes") -> list[int] | None:
    """Episode ids for ``OfflineConfig.episodes`` (``EPISODE_FILTERS``; ``field`` names the setting in errors, e.g.
    ``OnlineRunConfig.offline_episodes``): None (all), or the ids the filter keeps (an error when it keeps none)."""
    if which not in EPISODE_FILTERS:
        raise ValueError(f"{field} must be one of {list(EPISODE_FILTERS)}, got {which!r}")
    keep = EPISODE_FILTERS[which]
    if keep is None:
        return None
    from bora_policy.common.episodes import episode_ids, read_info

    root = Path(data_dir)
    ids = [e for e in episode_ids(root) if keep(read_info(root, e))]
    if not ids:
        raise ValueError(f"{field} = {which!r}: {root} has no such episodes")
    return ids
