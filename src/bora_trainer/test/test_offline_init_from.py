"""``OfflineConfig.init_from``: every offline row fine-tunes one shared warm-up run (the paper's common
pretrained VLA). Same-kind modules are copied exactly, other kinds keep their fresh initialisation, the
warm-up's normaliser is reused, the step counter and optimisers start fresh."""

from pathlib import Path

import pytest
import torch
import yaml

from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.checkpoint import load_checkpoint
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.cli import main
from bora_trainer.offline.trainer import OfflineTrainer

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "config/offline_demo.yaml"


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A 3-update cp-bc warm-up run on a synthetic dataset."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("init")
    ds = write_synthetic_dataset(root / "ds", n_episodes=2, T=10, image_size=(16, 16))
    tr = OfflineTrainer(_cfg("cp-bc"), ds, root / "warm", progress=False)
    tr.train()
    return ds, root / "warm", load_checkpoint(root / "warm")["modules"]


def _cfg(algo, **over):
    base = dict(algo=algo, total_updates=3, batch_size=4, k=4, ckpt_every=10_000, log_every=1, device="cpu")
    base.update(over)
    return load_config(OfflineConfig, DEMO, overrides=base)


def _equal(state, mod):
    own = mod.state_dict()
    return set(own) == set(state) and all(torch.equal(own[k], state[k]) for k in own)


@pytest.mark.parametrize("algo", ["bora", "cp-decoupled-critic", "diffusion-bc"])
def test_rows_start_from_the_warm_up(warm, tmp_path, algo):
    ds, wrun, src = warm
    tr = OfflineTrainer(_cfg(algo, init_from=str(wrun)), ds, tmp_path / "run", progress=False)
    lr = tr.learner
    assert _equal(src["vlm"], lr.vlm)  # the shared pretrained VLM, bit for bit
    if algo == "diffusion-bc":  # a different expert kind: fresh, not loaded
        assert tr.initialized_from == ["vlm"]
    else:
        assert tr.initialized_from == ["vlm", "expert"]
        assert _equal(src["expert"], lr.expert)
        assert _equal(src["expert"], lr.expert_ref)  # pi_theta_old re-synchronised with the loaded expert
        assert "critic" not in tr.initialized_from  # cp-bc has no critic: the critic stays fresh
    assert tr.normalizer.to_dict() == OfflineTrainer(_cfg("cp-bc"), ds, tmp_path / "r2", progress=False) \
        .normalizer.to_dict()
    assert (tmp_path / "run" / "normalizer.json").read_text() == (wrun / "normalizer.json").read_text()
    assert tr.step == 0
    tr.train()
    assert tr.step == 3 and not _equal(src["vlm"], lr.vlm)  # it then trains on


def test_init_from_a_run_that_does_not_match_is_an_error(warm, tmp_path):
    ds, wrun, _ = warm
    with pytest.raises(FileNotFoundError, match="init_from"):
        OfflineTrainer(_cfg("cp-bc", init_from=str(tmp_path / "nowhere")), ds, tmp_path / "a", progress=False)
    bad = _cfg("cp-bc", init_from=str(wrun))
    bad.model.use_proprio = False  # no proprio token: a different VLM
    with pytest.raises(ValueError, match="VLM does not match"):
        OfflineTrainer(bad, ds, tmp_path / "b", progress=False)


def test_cli_records_init_from_and_resume_ignores_it(warm, tmp_path):
    ds, wrun, src = warm
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    over = dict(yaml.safe_load(DEMO.read_text()), init_from=str(wrun), k=4, batch_size=4, ckpt_every=2,
                log_every=1, device="cpu")
    cfg.write_text(yaml.safe_dump(over))
    assert main(["--algo", "cp-bc", "--data", str(ds), "--config", str(cfg), "--out", str(run), "--updates", "2",
                 "--no-progress"]) == 0
    assert f"init_from: {wrun}" in (run / "config.yaml").read_text()
    after2 = load_checkpoint(run)["modules"]
    assert not all(torch.equal(after2["vlm"][k], src["vlm"][k]) for k in src["vlm"])  # trained on from the warm-up
    # --resume continues the run's own checkpoint (step 2), not the warm-up
    try:  # --threads sets torch's CPU threads for the run
        assert main(["--data", str(ds), "--out", str(run), "--updates", "3", "--resume", "--no-progress",
                     "--threads", "2"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    tr = OfflineTrainer(_cfg("cp-bc", init_from=str(wrun), total_updates=3), ds, run, resume=True, progress=False)
    assert tr.step == 3 and tr.initialized_from == []


def test_clean_and_successful_episode_selection(tmp_path):
    """``episodes: clean`` keeps successful expert demonstrations whose quality knobs are all 0;
    ``episodes: successful`` keeps every successful episode, whatever its quality."""
    import json

    ds = write_synthetic_dataset(tmp_path / "ds", n_episodes=6, T=10, image_size=(16, 16))
    infos = {e: json.loads((ds / "episodes" / f"episode_{e:06d}.json").read_text()) for e in range(6)}
    ok = [e for e, i in infos.items() if i["success"]]
    assert 2 <= len(ok) < 6  # the synthetic data has failures (every 3rd episode)
    for e, knobs in ((ok[0], {"noise": 0.7, "hesitation": 0.0}), (ok[1], {"noise": 0.0, "hesitation": 0.0})):
        infos[e]["quality"] = knobs  # a noisy demonstration, and an explicitly clean one
        (ds / "episodes" / f"episode_{e:06d}.json").write_text(json.dumps(infos[e]))
    tr = OfflineTrainer(_cfg("cp-bc", episodes="clean", batch_size=2), ds, tmp_path / "run", progress=False)
    assert tr.dataset.episode_ids == ok[1:]
    assert len(tr.dataset) == 10 * len(ok[1:])
    assert OfflineTrainer(_cfg("cp-bc"), ds, tmp_path / "all", progress=False).dataset.episode_ids == list(range(6))
    succ = OfflineTrainer(_cfg("cp-bc", episodes="successful", batch_size=2), ds, tmp_path / "s", progress=False)
    assert succ.dataset.episode_ids == ok  # the noisy success stays, the failures go
    for e in ok[1:]:  # no clean episode left: a clear error
        infos[e]["quality"] = {"noise": 1.0}
        (ds / "episodes" / f"episode_{e:06d}.json").write_text(json.dumps(infos[e]))
    with pytest.raises(ValueError, match="'clean'.*has no such episodes"):
        OfflineTrainer(_cfg("cp-bc", episodes="clean"), ds, tmp_path / "none", progress=False)
    with pytest.raises(ValueError, match="episodes"):
        _cfg("cp-bc", episodes="good")
