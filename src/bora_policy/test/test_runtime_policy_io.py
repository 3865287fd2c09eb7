"""Run layout (RUN/policy, RUN/critic), critic persistence, the runner's critic outputs and the
multi-round residual folding of Algorithm 1 lines 8-15 checked against a hand composition."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from bora_policy.models.critic import ChunkCritic, DecoupledChunkCritic, load_critic
from bora_policy.models.export import (
    choose_critic,
    export_policy,
    find_critic_dir,
    policy_from_modules,
    resolve_critic_dir,
    resolve_policy_dir,
)
from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import ResidualChunkActor, ResidualConfig
from bora_policy.models.vla import VLAConfig, VLAPolicy
from bora_policy.runtime.checkpoint_loader import CheckpointRejected
from bora_policy.runtime.policy_runner import PolicyRunner, PolicyRunnerConfig, make_demo_vla

torch.set_num_threads(1)
S, A, K, NCAM = 6, 5, 4, 2


def _policy(seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = Normalizer(
        rng.normal(size=S), rng.uniform(0.5, 1.5, S), rng.normal(size=A), rng.uniform(0.1, 0.3, A)
    )
    cfg = VLAConfig(
        action_dim=A,
        state_dim=S,
        chunk_size=K,
        n_cameras=NCAM,
        expert_hidden_dim=32,
        expert_num_blocks=1,
        expert_cond_dim=16,
    )
    return VLAPolicy(cfg, norm)


def _obs(seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (NCAM, 32, 32, 3), dtype=np.uint8), rng.normal(size=S).astype(np.float32)


@pytest.mark.parametrize("kind", ["chunk", "decoupled"])
def test_critic_save_load_round_trip_and_dispatch(tmp_path, kind):
    torch.manual_seed(0)
    if kind == "chunk":
        c = ChunkCritic(z_dim=7, action_dim=A, chunk_size=K, hidden_dim=16, pos_dim=4, num_q=3)
        x = (torch.randn(2, 7),)
    else:
        c = DecoupledChunkCritic(NCAM, A, K, hidden_dim=16, num_q=2, head="vector", state_dim=S)
        x = (torch.rand(2, NCAM, 3, 32, 32),)
    kw = {} if kind == "chunk" else {"proprio": torch.randn(2, S)}
    a = torch.randn(2, K, A)
    c.soft_update_targets(0.3)  # targets differ from the online nets: they must round-trip too
    c.save(tmp_path / "c")
    cfg = json.loads((tmp_path / "c" / "critic_config.json").read_text())
    assert cfg["format"] == "bora-critic/1" and cfg["class"] == type(c).__name__
    for loaded in (type(c).load(tmp_path / "c"), load_critic(tmp_path / "c")):
        assert type(loaded) is type(c)
        torch.testing.assert_close(loaded.q_all(*x, a, **kw), c.q_all(*x, a, **kw))
        torch.testing.assert_close(loaded.v(*x, **kw), c.v(*x, **kw))
        torch.testing.assert_close(loaded.q_target(*x, a, **kw), c.q_target(*x, a, **kw))
    other = DecoupledChunkCritic if kind == "chunk" else ChunkCritic
    with pytest.raises(ValueError, match="use load_critic"):
        other.load(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="critic_config.json"):
        load_critic(tmp_path)


def test_export_and_resolve_run_layout(tmp_path):
    pol = _policy()
    crit = ChunkCritic(pol.z_dim, A, K, hidden_dim=16, pos_dim=4)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no exported policy/"):
        resolve_policy_dir(run)
    export_policy(run, pol, crit)
    assert resolve_policy_dir(run) == run / "policy" and resolve_policy_dir(run / "policy") == run / "policy"
    assert resolve_critic_dir(run) == run / "critic" and find_critic_dir(run / "policy") == run / "critic"
    # an online run resolves to its offline run's policy and critic
    online = tmp_path / "online"
    online.mkdir()
    (online / "config.yaml").write_text(f"offline_run: {run}\nonline_run: {{}}\n")
    assert resolve_policy_dir(online) == run / "policy" and resolve_critic_dir(online) == run / "critic"
    # the policy node's critic: "" = the VLA run's own (issue 18), "none" = none, else the given path
    assert choose_critic(str(run / "policy"))[0] == str(run / "critic")
    assert choose_critic(str(online))[0] == str(run / "critic")
    assert choose_critic(str(run / "policy"), "none") == ("", "critic_path: none")
    assert choose_critic(str(run / "policy"), "/x/critic") == ("/x/critic", "critic_path")
    # re-export without a critic removes the stale one
    export_policy(run, pol)
    assert find_critic_dir(run) is None and not any(p.name.startswith(".") for p in run.iterdir())
    path, why = choose_critic(str(run / "policy"))
    assert path == "" and "has no critic/" in why
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_policy_dir(tmp_path / "nope")
    # policy_from_modules rebuilds the same function from separate state dicts
    p2 = policy_from_modules(pol.cfg, pol.normalizer, pol.vlm.state_dict(), pol.expert.state_dict())
    color, state = _obs()
    obs = {"color": color[None], "instruction": "pick", "state": state[None]}
    torch.testing.assert_close(p2.act(obs, deterministic=True)[2], pol.act(obs, deterministic=True)[2])
    with pytest.raises(ValueError, match="does not fit"):
        policy_from_modules(pol.cfg, pol.normalizer, {"x": torch.zeros(1)}, pol.expert.state_dict())


def test_runner_critic_outputs_match_the_critic(tmp_path):
    pol = _policy()
    crit = ChunkCritic(pol.z_dim, A, K, hidden_dim=16, pos_dim=4)
    export_policy(tmp_path / "run", pol, crit)
    runner = PolicyRunner.from_paths(str(tmp_path / "run"), critic_path=str(tmp_path / "run"))
    assert len(runner.critic_version) == 16 and len(runner.policy_version) == 16
    color, state = _obs()
    r = runner.infer(color, state, "pick")
    z, fin = (
        torch.tensor(r.z)[None],
        torch.tensor(
            (r.final - runner.normalizer.action_mean) / (runner.normalizer.action_std + runner.normalizer.eps)
        )[None].float(),
    )
    np.testing.assert_allclose(r.q, crit.q(z, fin)[0].detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(r.v, crit.v(z)[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(r.advantage, r.q - r.v, atol=1e-6)
    np.testing.assert_allclose(runner.value(color, state, "pick"), r.v, atol=1e-5)
    # the decoupled baseline critic gets the raw images and the normalised state instead of z_t
    dec = DecoupledChunkCritic(NCAM, A, K, hidden_dim=16, state_dim=S)
    dec.save(tmp_path / "dec")
    runner = PolicyRunner.from_paths(str(tmp_path / "run"), critic_path=str(tmp_path / "dec"))
    r = runner.infer(color, state, "pick")
    img = torch.from_numpy(color).permute(0, 3, 1, 2)[None]
    prop = torch.tensor(r.proprio_norm)[None]
    np.testing.assert_allclose(r.v, dec.v(img, proprio=prop)[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(r.q, dec.q(img, fin, proprio=prop)[0].detach().numpy(), atol=1e-4)
    # a critic of another policy's z is refused with the mismatching field named
    ChunkCritic(pol.z_dim + 1, A, K, hidden_dim=8, pos_dim=2).save(tmp_path / "bad")
    with pytest.raises(ValueError, match="z_dim"):
        PolicyRunner.from_paths(str(tmp_path / "run"), critic_path=str(tmp_path / "bad"))


def _actor(seed, z_dim, hidden=(16,)):
    torch.manual_seed(seed)
    return ResidualChunkActor(S, A, K, z_dim, ResidualConfig(hidden_dims=list(hidden), init_scale=0.5))


def _write_stack(path, actors_lams, norm_version):
    """A multi-round residual checkpoint as `bora train online` writes it (residual_1..R + meta.json)."""
    path.mkdir(parents=True)
    files = {}
    for i, (a, _) in enumerate(actors_lams):
        f = path / f"residual_{i + 1}.safetensors"
        save_file({k: v.contiguous() for k, v in a.state_dict().items()}, str(f))
        files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    a = actors_lams[-1][0]
    extra = {
        "kind": "residual",
        "normalizer_version": norm_version,
        "dims": a.dims(),
        "residual_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(a.cfg).items()},
        "residuals": [{"name": f"residual_{i + 1}", "lambda": lam} for i, (_, lam) in enumerate(actors_lams)],
    }
    (path / "meta.json").write_text(json.dumps({"step": 1, "files": files, "extra": extra}))


def test_multi_round_folding_matches_algorithm_1(tmp_path):
    pol = _policy()
    pol.save(tmp_path / "vla")
    Z = pol.z_dim
    norm = pol.normalizer
    color, state = _obs()
    plain = PolicyRunner.from_paths(str(tmp_path / "vla"))
    a_vla = plain.infer(color, state, "pick").base_norm  # no residual: the VLA chunk itself
    r1, r2, r3 = _actor(1, Z), _actor(2, Z, (8, 8)), _actor(3, Z)
    f1 = tmp_path / "round1.safetensors"
    nv = norm.version  # every residual stores the normaliser it was trained with
    save_file({k: v.contiguous() for k, v in r1.state_dict().items()}, str(f1),
              metadata={"lambda": "0.5", "normalizer_version": nv})
    _write_stack(tmp_path / "online_ck", [(r1, 0.5), (r2, 0.6)], norm.version)
    f3 = tmp_path / "current.safetensors"
    save_file({k: v.contiguous() for k, v in r3.state_dict().items()}, str(f3),
              metadata={"alpha": "0.3", "normalizer_version": nv})

    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)[None]

    def by_hand(res, frozen, current=None, alpha=0.0):
        z, p = t(res.z), t(res.proprio_norm)
        with torch.no_grad():
            b = t(a_vla)
            for actor, lam in frozen:  # B_{r+1} = B_r + lambda_r pi_r(s, B_r, z)
                b = b + lam * actor(p, b, z)
            fin = b if current is None else b + alpha * current(p, b, z)
        std = torch.as_tensor(norm.action_std + norm.eps, dtype=torch.float32)
        return b[0].numpy(), (fin * std + torch.as_tensor(norm.action_mean, dtype=torch.float32))[0].numpy()

    # 1. frozen rounds only (file with stored lambda, file with @lambda override)
    run = PolicyRunner.from_paths(str(tmp_path / "vla"), frozen_residual_paths=[str(f1), f"{f1}@0.25"])
    res = run.infer(color, state, "pick")
    base, fin = by_hand(res, [(r1, 0.5), (r1, 0.25)])
    np.testing.assert_allclose(res.base_norm, base, atol=1e-5)
    np.testing.assert_allclose(res.final, fin, atol=1e-4)
    assert res.residual_scale == 0.0 and len(run.frozen) == 2
    # 2. frozen round 1 + a current single-file residual with alpha in its metadata (line 15)
    run = PolicyRunner.from_paths(str(tmp_path / "vla"), str(f3), frozen_residual_paths=[str(f1)])
    res = run.infer(color, state, "pick")
    base, fin = by_hand(res, [(r1, 0.5)], r3, 0.3)
    np.testing.assert_allclose(res.base_norm, base, atol=1e-5)
    np.testing.assert_allclose(res.final, fin, atol=1e-4)
    assert res.residual_scale == pytest.approx(0.3)
    # 3. a multi-round checkpoint as the current residual: round 1 folded, round 2 current with its lambda
    run = PolicyRunner.from_paths(str(tmp_path / "vla"), str(tmp_path / "online_ck"))
    res = run.infer(color, state, "pick")
    base, fin = by_hand(res, [(r1, 0.5)], r2, 0.6)
    np.testing.assert_allclose(res.base_norm, base, atol=1e-5)
    np.testing.assert_allclose(res.final, fin, atol=1e-4)
    # 4. the same checkpoint folded entirely as frozen rounds, then r3 on top
    run = PolicyRunner.from_paths(
        str(tmp_path / "vla"), str(f3), frozen_residual_paths=[str(tmp_path / "online_ck")]
    )
    res = run.infer(color, state, "pick")
    base, fin = by_hand(res, [(r1, 0.5), (r2, 0.6)], r3, 0.3)
    np.testing.assert_allclose(res.final, fin, atol=1e-4)
    # errors: a single file without a lambda; a stack trained with another normaliser (hot reload keeps old)
    f0 = tmp_path / "nolam.safetensors"
    save_file({k: v.contiguous() for k, v in r1.state_dict().items()}, str(f0), metadata={"normalizer_version": nv})
    with pytest.raises(CheckpointRejected, match="@LAMBDA"):
        PolicyRunner.from_paths(str(tmp_path / "vla"), frozen_residual_paths=[str(f0)])
    _write_stack(tmp_path / "other_norm", [(r2, 0.6)], "0" * 16)
    ok, msg = run.load_residual(str(tmp_path / "other_norm"))
    assert not ok and "normaliser" in msg and not run.residual_slot.pending
    with pytest.raises(RuntimeError, match="before a residual"):
        run.set_frozen([])
    # single files: the normaliser version in the safetensors metadata, or in the meta.json of the
    # checkpoint directory holding the file (the trainer's round-1 announcement): another one is rejected
    sd = {k: v.contiguous() for k, v in r1.state_dict().items()}
    other = tmp_path / "other_meta.safetensors"
    save_file(sd, str(other), metadata={"alpha": "0.3", "normalizer_version": "f" * 16})
    before = run.residual_slot.snapshot()[1]
    ok, msg = run.load_residual(str(other))
    assert not ok and "normaliser" in msg and not run.residual_slot.pending
    assert run.residual_slot.snapshot()[1] == before
    with pytest.raises(CheckpointRejected, match="normaliser"):
        PolicyRunner.from_paths(str(tmp_path / "vla"), frozen_residual_paths=[f"{other}@0.5"])
    ck_dir = tmp_path / "trainer_ck"
    ck_dir.mkdir()
    save_file(sd, str(ck_dir / "residual.safetensors"), metadata={"alpha": "0.3"})
    (ck_dir / "meta.json").write_text(json.dumps({"extra": {"normalizer_version": "e" * 16}}))
    ok, msg = run.load_residual(str(ck_dir / "residual.safetensors"))
    assert not ok and "normaliser" in msg
    (ck_dir / "meta.json").write_text(json.dumps({"extra": {"normalizer_version": norm.version}}))
    ok, msg = run.load_residual(str(ck_dir / "residual.safetensors"))
    assert ok, msg



def test_residual_blend_weights_are_range_checked_and_the_normaliser_version_is_required(tmp_path):
    pol = _policy()
    pol.save(tmp_path / "vla")
    nv = pol.normalizer.version
    run = PolicyRunner.from_paths(str(tmp_path / "vla"))
    r1, r2 = _actor(1, pol.z_dim), _actor(2, pol.z_dim)
    sd = {k: v.contiguous() for k, v in r1.state_dict().items()}

    def single(name, **meta):
        f = tmp_path / f"{name}.safetensors"
        save_file(sd, str(f), metadata=meta)
        return str(f)

    def refused(result, text):
        ok, msg = result
        assert not ok and text in msg and "\n" not in msg, msg
        assert not run.residual_slot.pending and run.residual_slot.snapshot()[0] is None

    refused(run.load_residual(single("nover", alpha="0.3")), f"no normalizer_version stored: expected {nv}")
    refused(run.load_residual(single("big", alpha="1.5", normalizer_version=nv)),
            "alpha = '1.5' is out of range: expected a number in [0, 1]")
    refused(run.load_residual(single("nan", alpha="nan", normalizer_version=nv)), "alpha = 'nan' is out of range")
    refused(run.load_residual(single("word", alpha="high", normalizer_version=nv)), "alpha = 'high' is out of range")
    _write_stack(tmp_path / "stack_nover", [(r1, 0.5)], "")
    refused(run.load_residual(str(tmp_path / "stack_nover")), "no normalizer_version stored")
    _write_stack(tmp_path / "stack_big", [(r1, 0.5), (r2, 2.0)], nv)
    refused(run.load_residual(str(tmp_path / "stack_big")), "residuals[1].lambda = 2.0 is out of range")
    for bad, text in (({"lambda": 0.5}, "residuals[0].name = None"), ("x", "residuals[0].name = None"),
                      ({"name": "../x", "lambda": 0.5}, "residuals[0].name = '../x'")):
        _write_stack(tmp_path / f"stack_{len(text)}_{type(bad).__name__}", [(r1, 0.5)], nv)
        mp = tmp_path / f"stack_{len(text)}_{type(bad).__name__}" / "meta.json"
        meta = json.loads(mp.read_text())
        meta["extra"]["residuals"] = [bad]
        mp.write_text(json.dumps(meta))
        refused(run.load_residual(str(mp.parent)), text)
    ok, msg = run.load_residual(single("edge", alpha="1", normalizer_version=nv))  # the bound itself is in range
    assert ok, msg
    run.residual_slot.commit()
    assert run.infer(*_obs(), "pick").residual_scale == 1.0
    vla = str(tmp_path / "vla")
    with pytest.raises(CheckpointRejected, match=r"@LAMBDA = 1\.5 is out of range"):
        PolicyRunner.from_paths(vla, frozen_residual_paths=[single("fr", normalizer_version=nv) + "@1.5"])
    with pytest.raises(CheckpointRejected, match="lambda = '-0.2' is out of range"):
        PolicyRunner.from_paths(vla, frozen_residual_paths=[single("neg", normalizer_version=nv, **{"lambda": "-0.2"})])
    with pytest.raises(CheckpointRejected, match="no normalizer_version stored"):
        PolicyRunner.from_paths(vla, frozen_residual_paths=[single("fr_nover", **{"lambda": "0.5"})])

def test_demo_vla_is_a_vla_policy_and_is_reused(tmp_path):
    home = np.linspace(-0.5, 0.5, A)
    d = make_demo_vla(tmp_path / "demo", home, chunk_size=K, n_cameras=NCAM)
    pol = VLAPolicy.load(d)
    assert pol.cfg.chunk_size == K and pol.cfg.action_dim == A
    mtime = (d / "model.safetensors").stat().st_mtime_ns
    assert make_demo_vla(tmp_path / "demo", home, chunk_size=K, n_cameras=NCAM) == d
    assert (d / "model.safetensors").stat().st_mtime_ns == mtime
    r = PolicyRunner.from_paths(str(d), cfg=PolicyRunnerConfig(device="cpu"))
    color, _ = _obs()
    res = r.infer(color, home, "pick")
    # untrained chunks stay near home: the normaliser's action std is 0.05
    assert np.abs(res.final - home).max() < 0.05 * 10
