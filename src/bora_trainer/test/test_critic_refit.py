"""The critic refit on the final VLM's tokens (``OfflineConfig.critic_refit_updates``, offline/critic_refit.py).

Two tiny bora runs from the same seed differ only in the refit: their training is identical, so the refit run's
checkpoint holds the same critic as the plain run's export, while its exported critic fits the value targets far
better. With ``critic_mc_weight: 1`` the target is known in closed form: the samples' Monte-Carlo returns.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bora_policy.models.critic import ChunkCritic
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds") / "ds", n_episodes=3, T=10, image_size=(16, 16))


def _train(ds, run, refit, algo="bora"):
    from bora_trainer.offline.trainer import OfflineTrainer

    torch.manual_seed(0)
    over = dict(total_updates=4, batch_size=8, ckpt_every=10_000, log_every=50, algo=algo, critic_mc_weight=1.0,
                critic_refit_updates=refit, critic_refit_batch=64, critic_lr=3e-3)
    cfg = load_config(OfflineConfig, REPO / "config/offline_demo.yaml", overrides=over)
    tr = OfflineTrainer(cfg, ds, run, progress=False)
    tr.train()
    return tr


def _value_error(tr, critic) -> float:
    """Mean |v(z_t, i) - G_{t+i}| over the valid steps of every chunk sample, with the run's final VLM."""
    from bora_trainer.offline.critic_refit import encode_samples

    data = encode_samples(tr.learner, tr.dataset, lambda b: tr.prepare(b, augment=False))
    with torch.no_grad():
        v = critic.v(data["z"])
    m = data["mask"] > 0
    return float((v - data["returns"]).abs()[m].mean())


def test_refit_fits_the_targets_and_leaves_the_checkpoint_alone(ds, tmp_path):
    plain = _train(ds, tmp_path / "plain", 0)
    refit = _train(ds, tmp_path / "refit", 300)
    c_plain = ChunkCritic.load(tmp_path / "plain" / "critic")
    c_refit = ChunkCritic.load(tmp_path / "refit" / "critic")
    err_plain, err_refit = _value_error(plain, c_plain), _value_error(refit, c_refit)
    assert err_refit < 0.5 * err_plain, (err_plain, err_refit)
    # the checkpoint keeps the critic as training left it: the plain run's exported critic
    ckpt = load_file(str(sorted((tmp_path / "refit" / "checkpoints").glob("step_*"))[-1] / "critic.safetensors"))
    for k, v in c_plain.state_dict().items():
        assert torch.equal(ckpt[k], v), k
    assert not all(torch.equal(ckpt[k], v) for k, v in c_refit.state_dict().items())
    # the policy (actor) is not touched by the refit
    a = load_file(str(tmp_path / "plain" / "policy" / "model.safetensors"))
    b = load_file(str(tmp_path / "refit" / "policy" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_refit_needs_a_critic_on_z(ds, tmp_path):
    with pytest.raises(ValueError, match="has no chunk critic on z_t"):
        _train(ds, tmp_path / "cp", 10, algo="cp-bc")
    with pytest.raises(ValueError, match="critic_refit_updates must be >= 0"):
        OfflineConfig(critic_refit_updates=-1)
    with pytest.raises(ValueError, match="not supported with fsdp"):
        OfflineConfig(critic_refit_updates=10, fsdp=True)


def test_the_online_stage_inherits_the_refitted_critic(ds, tmp_path):
    """Found in review: the online stage read the critic from the deployed checkpoint, which keeps the critic as
    training left it, so a refit never reached it. It now inherits RUN/critic (the refitted one); without a refit
    RUN/critic is the checkpoint's critic, so nothing changes there. Both environments: env ros's learner reads
    ``inherited_critic``, env sim's learner ``FrozenVLA.critic`` (found in a later review: it still read the
    checkpoint's critic, so env sim's online stage started from the un-refitted critic)."""
    from bora_trainer.online.checkpoints import inherited_critic
    from bora_trainer.online.vla import FrozenVLA
    from bora_trainer.select import load_deployed

    _train(ds, tmp_path / "plain", 0)
    _train(ds, tmp_path / "refit", 300)
    for name, refit in (("plain", False), ("refit", True)):
        state, _ = inherited_critic(tmp_path / name)
        exported = ChunkCritic.load(tmp_path / name / "critic").state_dict()
        assert all(torch.equal(state[k], v) for k, v in exported.items())
        ckpt = load_deployed(tmp_path / name)["modules"]["critic"]
        assert all(torch.equal(state[k], ckpt[k]) for k in state) is (not refit)
        sim = FrozenVLA(tmp_path / name, torch.device("cpu")).critic.state_dict()  # env sim's learner's critic
        assert set(sim) == set(state) and all(torch.equal(sim[k], state[k]) for k in state), name
