"""bench/random_residual.py: an online checkpoint's residuals replaced by fresh inits of the same config, through the
real checkpoint writer and loader (sha256 verified), the critic and the blend weights kept."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import (
    FrozenResidual,
    ResidualChunkActor,
    ResidualConfig,
    load_residual_checkpoint,
    residual_checkpoint_extra,
)
from bora_trainer.checkpoint import latest_checkpoint, save_checkpoint

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]
S, A, K, Z = 5, 3, 4, 6


def _tool():
    spec = importlib.util.spec_from_file_location("random_residual", REPO / "bench" / "random_residual.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _trained_run(tmp_path):
    rng = np.random.default_rng(0)
    norm = Normalizer.fit(rng.normal(size=(40, S)), rng.normal(1.0, 2.0, size=(40, A)))
    cfg = ResidualConfig(hidden_dims=[16], init_scale=0.001)
    actors = [ResidualChunkActor(S, A, K, Z, cfg) for _ in range(2)]
    for a in actors:  # "trained": heads far from the init
        torch.nn.init.normal_(a.head.weight, std=0.3)
    stack = [FrozenResidual(actors[0], 0.75), FrozenResidual(actors[1], 0.6)]
    critic = {"w": torch.arange(6.0).reshape(2, 3)}
    mods = {"residual_1": actors[0].state_dict(), "residual_2": actors[1].state_dict(),
            "residual": actors[1].state_dict(), "critic": critic}
    run = tmp_path / "online"
    save_checkpoint(run, 800, mods, extra=residual_checkpoint_extra(stack, norm.version),
                    metadata={"residual": {"alpha": "0.6"}})
    norm.save(run / "normalizer.json")
    (run / "recordings").mkdir()
    return run, norm


def test_residuals_are_fresh_inits_and_the_rest_is_kept(tmp_path):
    run, norm = _trained_run(tmp_path)
    before = {p.name: p.read_bytes() for p in latest_checkpoint(run).iterdir()}
    out = _tool().randomise(run, tmp_path / "r0", seed=7)
    pol, alpha = load_residual_checkpoint(out, norm)  # verifies every residual's sha256
    assert alpha == pytest.approx(0.6) and pol.round == 2
    ck = latest_checkpoint(out)
    for name in ("residual_1", "residual_2"):
        w = load_file(ck / f"{name}.safetensors")["head.weight"]
        assert float(w.std()) == pytest.approx(0.001, rel=0.1)  # the config's init_scale, not the trained 0.3
    torch.testing.assert_close(load_file(ck / "residual.safetensors")["head.weight"],
                               load_file(ck / "residual_2.safetensors")["head.weight"])
    torch.testing.assert_close(load_file(ck / "critic.safetensors")["w"], torch.arange(6.0).reshape(2, 3))
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["step"] == 800 and meta["extra"]["residuals"][0]["lambda"] == 0.75
    assert not (out / "recordings").exists() and (out / "normalizer.json").exists()
    # the source run is untouched; another seed draws other weights
    assert {p.name: p.read_bytes() for p in latest_checkpoint(run).iterdir()} == before
    out2 = _tool().randomise(run, tmp_path / "r1", seed=8)
    assert not torch.equal(load_file(latest_checkpoint(out2) / "residual_1.safetensors")["head.weight"],
                           load_file(ck / "residual_1.safetensors")["head.weight"])


def test_bad_inputs_are_refused(tmp_path):
    run, _ = _trained_run(tmp_path)
    tool = _tool()
    with pytest.raises(FileExistsError, match="exists"):
        tool.randomise(run, run, seed=0)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tool.randomise(tmp_path / "recordings_only", tmp_path / "x", seed=0)
