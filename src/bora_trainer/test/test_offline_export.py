"""End-of-training export (docs/interfaces.md "Checkpoints and the run layout"): RUN/policy + RUN/critic
rebuild exactly the trainer's in-memory VLM, expert and critic; the run config records task and data_dir."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.cli import main
from bora_trainer.offline.trainer import OfflineTrainer

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "config/offline_demo.yaml"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    torch.set_num_threads(1)
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds") / "ds", n_episodes=2, T=10, image_size=(16, 16))


def _train(algo, ds, run, **over):
    torch.manual_seed(0)
    base = dict(algo=algo, total_updates=3, batch_size=4, k=4, ckpt_every=10_000, log_every=1, device="cpu")
    base.update(over)
    cfg = load_config(OfflineConfig, DEMO, overrides=base)
    tr = OfflineTrainer(cfg, ds, run, progress=False)
    tr.train(updates=3)
    assert tr.step == 3
    return tr


def _batch(tr):
    b = tr.prepare(next(iter(torch.utils.data.DataLoader(tr.dataset, batch_size=3, shuffle=False))))
    return b


def _learner_chunk(tr, b):
    """The trainer-side deterministic chunk: mean_chunk with the trainer's own sampling step count."""
    lr = tr.learner.eval()
    with torch.no_grad():
        z = lr.encode(b["images"], b["instruction"], b["state_n"])
        steps = tr.cfg.model.expert_sample_steps or None
        return z, lr.expert.mean_chunk(z, lr.expert_proprio(b["state_n"]), steps)


@pytest.mark.parametrize("algo", ["bora", "cp-bc", "cp-decoupled-critic", "diffusion-bc"])
def test_exported_policy_and_critic_match_the_learner(ds, tmp_path, algo):
    from bora_policy.models.critic import ChunkCritic, load_critic
    from bora_policy.models.vla import VLAPolicy

    run = tmp_path / "run"
    tr = _train(algo, ds, run)
    assert sorted(p.name for p in (run / "policy").iterdir()) == [
        "config.json",
        "model.safetensors",
        "normalizer.json",
    ]
    policy = VLAPolicy.load(run / "policy")
    # expert_sample_steps 0 (the default): the expert's own step count, diffusion's 10 DDIM steps, consistency's 1
    assert tr.cfg.model.expert_sample_steps == 0
    assert policy.cfg.num_inference_steps == (10 if algo == "diffusion-bc" else 1)
    assert policy.cfg.expert == ("diffusion" if algo == "diffusion-bc" else "consistency")
    assert policy.cfg.expert_hidden_dim == 128 and policy.cfg.chunk_size == 4 and policy.cfg.n_cameras == 1
    assert policy.normalizer.version == tr.normalizer.version
    b = _batch(tr)
    z_ref, chunk_ref = _learner_chunk(tr, b)
    obs = {"images": b["images"], "instructions": b["instruction"], "state": b["state"]}
    z, chunk_n, chunk_phys = policy.act(obs, deterministic=True)
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk_n, chunk_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk_phys, tr.normalizer.denormalize_action(chunk_ref), rtol=1e-5, atol=1e-5)
    if algo == "bora":
        critic = load_critic(run)
        assert isinstance(critic, ChunkCritic)
        a = b["actions_n"]
        with torch.no_grad():
            torch.testing.assert_close(critic.q(z, a), tr.learner.critic.q(z_ref, a), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(critic.v(z), tr.learner.critic.v(z_ref), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(critic.v_target(z), tr.learner.critic.v_target(z_ref))
    elif algo == "cp-decoupled-critic":
        from bora_policy.models.critic import DecoupledChunkCritic

        critic = load_critic(run / "critic")
        assert isinstance(critic, DecoupledChunkCritic)
        img, a, prop = b["images"], b["actions_n"], b["state_n"] if critic.state_dim else None
        with torch.no_grad():
            torch.testing.assert_close(critic.q(img, a, prop), tr.learner.critic.q(img, a, prop))
            torch.testing.assert_close(critic.v(img, prop), tr.learner.critic.v(img, prop))
    else:
        assert not (run / "critic").exists()


def test_export_follows_training_and_runner_loads_the_run(ds, tmp_path):
    """The export is rewritten by every train() call (the trained weights, not the initial ones), and
    ``PolicyRunner.from_paths(RUN)`` runs one inference with the exported critic."""
    from bora_policy.runtime.policy_runner import PolicyRunner

    run = tmp_path / "run"
    tr = _train("bora", ds, run, total_updates=5)
    before = (run / "policy" / "model.safetensors").read_bytes()
    tr.train(updates=2)
    assert tr.step == 5
    assert (run / "policy" / "model.safetensors").read_bytes() != before
    b = _batch(tr)
    _, chunk_ref = _learner_chunk(tr, b)
    runner = PolicyRunner.from_paths(str(run), critic_path=str(run))
    color = b["images"][0].permute(0, 2, 3, 1).numpy()
    res = runner.infer(color, b["state"][0].numpy(), b["instruction"][0])
    assert res.q is not None and np.asarray(res.v).shape == (4,)
    np.testing.assert_allclose(np.asarray(res.base_norm).reshape(4, -1), chunk_ref[0].numpy(), rtol=1e-4,
                               atol=1e-4)


def test_run_config_records_task_and_data_dir(ds, tmp_path):
    tr = _train("cp-bc", ds, tmp_path / "run")
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["task"] == "reach"  # the dataset's only task
    assert cfg["data_dir"] == str(Path(ds).resolve()) and Path(cfg["data_dir"]).is_absolute()
    assert cfg["algo_options"] == {}
    assert tr.cfg.task == "reach"
    # an explicit task wins over the dataset's
    tr2 = _train("cp-bc", ds, tmp_path / "run2", task="press_button")
    assert yaml.safe_load((tmp_path / "run2" / "config.yaml").read_text())["task"] == "press_button"
    assert tr2.cfg.task == "press_button"


def test_cli_habc_runs_and_resumes_without_data(ds, tmp_path):
    """--algo habc from the CLI (plugin loaded, the dataset attached by the trainer); --resume finds the
    dataset through the recorded data_dir. HABC's heads are not a chunk critic: no RUN/critic."""
    run = tmp_path / "habc"
    args = ["--algo", "habc", "--config", str(DEMO), "--out", str(run), "--no-progress"]
    assert main(args + ["--data", str(ds), "--updates", "4"]) == 0
    assert (run / "latest").read_text().strip().endswith("0000004")
    assert (run / "policy" / "model.safetensors").is_file() and not (run / "critic").exists()
    assert main(["--algo", "habc", "--out", str(run), "--resume", "--updates", "5", "--no-progress"]) == 0
    assert (run / "latest").read_text().strip().endswith("0000005")
