"""``OfflineConfig.augment_shift``: DrQ random-shift augmentation of the training images."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.data import random_shift
from bora_trainer.offline.trainer import OfflineTrainer

REPO = Path(__file__).resolve().parents[3]


def _shifts(img: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop of the edge-replicated padding of one [C, H, W] image (independent reference)."""
    H, W = img.shape[-2:]
    p = F.pad(img[None].float(), (pad, pad, pad, pad), mode="replicate")[0]
    return [p[:, dy : dy + H, dx : dx + W] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


def test_random_shift_is_a_per_image_crop_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 3, 9, 9), dtype=torch.uint8, generator=g)  # [B, n_cam, 3, H, W]
    y = random_shift(x, 2, generator=g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    seen = set()
    for b in range(4):
        for c in range(3):
            match = [i for i, s in enumerate(_shifts(x[b, c], 2)) if torch.equal(s, y[b, c].float())]
            assert match, (b, c)
            seen.add(match[0])
    assert len(seen) > 1  # offsets are drawn per image, not one for the whole batch
    # the centre crop is the identity; pad 0 returns the input unchanged
    assert torch.equal(_shifts(x[0, 0], 2)[12], x[0, 0].float())
    assert random_shift(x, 0) is x
    with pytest.raises(ValueError, match="images"):
        random_shift(torch.zeros(5, 5), 1)


def test_trainer_augments_only_when_asked(tmp_path):
    torch.set_num_threads(1)
    ds = write_synthetic_dataset(tmp_path / "ds", n_episodes=2, T=10, image_size=(16, 16))
    base = dict(algo="cp-bc", total_updates=2, batch_size=4, k=4, ckpt_every=10_000, device="cpu")
    with pytest.raises(ValueError, match="augment_shift"):
        load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=dict(base, augment_shift=-1))
    raw = next(iter(torch.utils.data.DataLoader(OfflineTrainer(
        load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=base), ds, tmp_path / "a",
        progress=False).dataset, batch_size=4, shuffle=False)))
    for shift, changed in ((0, False), (3, True)):
        cfg = load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=dict(base, augment_shift=shift))
        tr = OfflineTrainer(cfg, ds, tmp_path / f"r{shift}", progress=False)
        b = tr.prepare({k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in raw.items()})
        for key in ("images", "next_images"):
            assert b[key].shape == raw[key].shape and b[key].dtype == raw[key].dtype
            assert (not torch.equal(b[key], raw[key])) == changed, (shift, key)
        tr.train()  # and trains with it
        assert tr.step == 2
