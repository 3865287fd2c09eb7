"""``OfflineConfig.lr_decay``: the learning rate of every optimiser at each update, computed by hand.

total_updates 4, no ramp, cosine to 0: factors 1, (1 + cos(pi/4)) / 2 = 0.853553, 1/2, (1 + cos(3 pi/4)) / 2
= 0.146447; with a 2-update ramp and lr_min_ratio 0.2: 1/2, 1, then 0.2 + 0.8 * 1 = 1 and 0.2 + 0.8 * 1/2 = 0.6."""

from pathlib import Path

import pytest
import torch

from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.trainer import OfflineTrainer

DEMO = Path(__file__).resolve().parents[3] / "config/offline_demo.yaml"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    torch.set_num_threads(1)
    return write_synthetic_dataset(tmp_path_factory.mktemp("lr") / "ds", n_episodes=2, T=10, image_size=(16, 16))


def _lrs(ds, tmp_path, **over):
    cfg = load_config(OfflineConfig, DEMO, overrides=dict(algo="bora", total_updates=4, batch_size=4, k=4,
                                                          ckpt_every=10_000, log_every=1, device="cpu", **over))
    tr = OfflineTrainer(cfg, ds, tmp_path / "run", progress=False)
    seen = []
    for _ in range(4):
        tr.train(updates=1)
        seen.append([(g["lr"], g["base_lr"]) for opt in (tr.actor_opt, tr.critic_opt) for g in opt.param_groups])
    return seen


def test_cosine_decay_by_hand(ds, tmp_path):
    factors = [1.0, 0.853553, 0.5, 0.146447]
    for f, groups in zip(factors, _lrs(ds, tmp_path, lr_decay="cosine")):
        assert groups and all(lr == pytest.approx(f * base, rel=1e-5) for lr, base in groups)


def test_ramp_then_cosine_to_a_floor(ds, tmp_path):
    factors = [0.5, 1.0, 1.0, 0.6]
    for f, groups in zip(factors, _lrs(ds, tmp_path, lr_decay="cosine", warmup_updates=2, lr_min_ratio=0.2)):
        assert all(lr == pytest.approx(f * base, rel=1e-5) for lr, base in groups)


def test_constant_is_the_default_and_bad_values_are_refused(ds, tmp_path):
    assert OfflineConfig().lr_decay == "constant"
    for groups in _lrs(ds, tmp_path):
        assert all(lr == base for lr, base in groups)
    with pytest.raises(ValueError, match="lr_decay"):
        load_config(OfflineConfig, DEMO, overrides={"lr_decay": "linear"})
    with pytest.raises(ValueError, match="lr_min_ratio"):
        load_config(OfflineConfig, DEMO, overrides={"lr_min_ratio": 1.5})
