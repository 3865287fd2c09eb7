"""``OfflineConfig.policy_ema``: the actor's (VLM + expert) exponential moving average of weights.

Expectations are the EMA recursion computed here from the raw weights after each update
(e_1 = w_1, e_n = d * e_{n-1} + (1 - d) * w_n), not read from the implementation."""

from pathlib import Path

import pytest
import torch

from bora_policy.models.vla import VLAPolicy
from bora_trainer.algorithms.bora.config import OfflineConfig
from bora_trainer.checkpoint import load_checkpoint
from bora_trainer.config_io import load_config
from bora_trainer.data.chunks import write_synthetic_dataset
from bora_trainer.offline.trainer import OfflineTrainer

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "config/offline_demo.yaml"
D = 0.75


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    torch.set_num_threads(1)
    return write_synthetic_dataset(tmp_path_factory.mktemp("ema") / "ds", n_episodes=2, T=10, image_size=(16, 16))


def _cfg(**over):
    base = dict(algo="cp-bc", total_updates=3, batch_size=4, k=4, ckpt_every=10_000, log_every=1, device="cpu",
                policy_ema=D)
    base.update(over)
    return load_config(OfflineConfig, DEMO, overrides=base)


def _raw(tr) -> dict[str, dict[str, torch.Tensor]]:
    mods = tr.learner.modules_to_save()
    return {n: {k: v.detach().clone() for k, v in mods[n].state_dict().items()} for n in ("vlm", "expert")}


def _float_keys(state):
    return [k for k, v in state.items() if v.is_floating_point()]


def test_average_follows_the_recursion_and_is_exported(ds, tmp_path):
    tr = OfflineTrainer(_cfg(), ds, tmp_path / "run", progress=False)
    expected = None
    for _ in range(3):
        tr.train(updates=1)
        w = _raw(tr)
        expected = w if expected is None else {
            n: {k: D * expected[n][k] + (1 - D) * w[n][k] for k in w[n]} for n in w}
    got = tr.ema_states()
    for n in ("vlm", "expert"):
        keys = _float_keys(got[n])
        assert keys and all(torch.allclose(got[n][k], expected[n][k], atol=1e-6) for k in keys)
        assert any(not torch.allclose(got[n][k], w[n][k]) for k in keys)  # the average is not the raw weights
    # the exported policy is the average (tr.train ran to total_updates: it exported RUN/policy)
    policy = VLAPolicy.load(tmp_path / "run" / "policy")
    for n, mod in (("vlm", policy.vlm), ("expert", policy.expert)):
        own = mod.state_dict()
        assert all(torch.allclose(own[k], expected[n][k], atol=1e-6) for k in _float_keys(got[n]))
    # the checkpoint holds both, and the number of averaged updates
    ck = load_checkpoint(tmp_path / "run")
    assert {"vlm", "expert", "vlm_ema", "expert_ema"} <= set(ck["modules"])
    assert ck["trainer_state"]["ema_updates"] == 3


def test_resume_continues_the_average(ds, tmp_path):
    run = tmp_path / "run"
    OfflineTrainer(_cfg(total_updates=2), ds, run, progress=False).train()
    saved = {n: load_checkpoint(run)["modules"][f"{n}_ema"] for n in ("vlm", "expert")}
    tr = OfflineTrainer(_cfg(total_updates=3), ds, run, resume=True, progress=False)
    assert int(tr.ema["vlm"].n_averaged) == 2
    for n in ("vlm", "expert"):
        st = tr.ema_states()[n]
        assert all(torch.equal(st[k], saved[n][k]) for k in _float_keys(st))
    tr.train()
    w = _raw(tr)
    for n in ("vlm", "expert"):
        st = tr.ema_states()[n]
        assert all(torch.allclose(st[k], D * saved[n][k] + (1 - D) * w[n][k], atol=1e-6) for k in _float_keys(st))


def test_init_from_starts_from_the_sources_average(ds, tmp_path):
    src = tmp_path / "warm"
    OfflineTrainer(_cfg(), ds, src, progress=False).train()
    ck = load_checkpoint(src)["modules"]
    tr = OfflineTrainer(_cfg(algo="bora", policy_ema=0.0, init_from=str(src)), ds, tmp_path / "row",
                        progress=False)
    assert tr.initialized_from == ["vlm", "expert"]
    for n in ("vlm", "expert"):
        own = tr.learner.modules_to_save()[n].state_dict()
        keys = _float_keys(own)
        assert all(torch.equal(own[k], ck[f"{n}_ema"][k]) for k in keys)
        assert not all(torch.equal(own[k], ck[n][k]) for k in keys)


def test_off_exports_the_raw_weights(ds, tmp_path):
    tr = OfflineTrainer(_cfg(policy_ema=0.0), ds, tmp_path / "run", progress=False)
    tr.train()
    assert tr.ema == {}
    ck = load_checkpoint(tmp_path / "run")
    assert not any(n.endswith("_ema") for n in ck["modules"]) and "ema_updates" not in ck["trainer_state"]
    own = VLAPolicy.load(tmp_path / "run" / "policy").expert.state_dict()
    assert all(torch.equal(own[k], ck["modules"]["expert"][k]) for k in _float_keys(own))


@pytest.mark.parametrize("over, msg", [(dict(policy_ema=1.0), "policy_ema must be in"),
                                       (dict(policy_ema=0.9, fsdp=True), "not supported with fsdp")])
def test_bad_settings_are_one_line_errors(over, msg):
    with pytest.raises(ValueError, match=msg):
        _cfg(**over)


def test_with_a_critic_only_the_expert_is_averaged(ds, tmp_path):
    # the critic learns on the raw VLM's z_t: RUN/policy exports that VLM, and the expert's average
    tr = OfflineTrainer(_cfg(algo="bora"), ds, tmp_path / "run", progress=False)
    expected = None
    for _ in range(3):
        tr.train(updates=1)
        w = _raw(tr)["expert"]
        expected = w if expected is None else {k: D * expected[k] + (1 - D) * w[k] for k in w}
    assert set(tr.ema_states()) == {"expert"}
    raw_vlm = _raw(tr)["vlm"]
    policy = VLAPolicy.load(tmp_path / "run" / "policy")
    own = policy.vlm.state_dict()
    assert all(torch.equal(own[k], raw_vlm[k]) for k in _float_keys(raw_vlm))  # the raw VLM
    own = policy.expert.state_dict()
    keys = _float_keys(w)
    assert all(torch.allclose(own[k], expected[k], atol=1e-6) for k in keys)
    assert any(not torch.allclose(own[k], w[k]) for k in keys)  # the average, not the raw expert
    ck = load_checkpoint(tmp_path / "run")
    assert "expert_ema" in ck["modules"] and "vlm_ema" not in ck["modules"]
