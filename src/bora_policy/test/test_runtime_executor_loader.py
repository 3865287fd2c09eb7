"""Chunk execution (hand-computed commands), checkpoint verification + atomic swap, PolicyRunner."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from bora_policy.models.normalizer import Normalizer
from bora_policy.models.residual import ResidualChunkActor, ResidualConfig
from bora_policy.runtime.checkpoint_loader import (
    CheckpointRejected,
    HotSwapSlot,
    load_module_checked,
    sha256_file,
    verify_checkpoint,
)
from bora_policy.runtime.chunk_executor import ChunkExecutor, ChunkExecutorConfig


def ramp_chunk(k, A, start, slope):
    return start + slope * np.arange(k)[:, None] * np.ones((1, A))


def test_rows_at_command_rate_and_latency_compensation():
    ex = ChunkExecutor(ChunkExecutorConfig(control_hz=10, chunk_hz=10, blend_steps=0))
    ex.set_chunk(ramp_chunk(5, 2, 1.0, 0.1), t_obs=0.0)
    # observation at t=0, first tick at t=0.2 (inference took 2 periods): rows 2, 3, 4, then hold row 4
    got = [ex.step(t).position[0] for t in (0.2, 0.3, 0.4, 0.5, 0.6)]
    np.testing.assert_allclose(got, [1.2, 1.3, 1.4, 1.4, 1.4])
    assert ex.step(0.25).chunk_index in (2, 3) and ex.chunk_done(0.4)


def test_interpolation_when_commands_are_faster_than_chunk_rows():
    ex = ChunkExecutor(ChunkExecutorConfig(control_hz=30, chunk_hz=10, blend_steps=0))
    ex.set_chunk(ramp_chunk(4, 1, 0.0, 0.3), t_obs=0.0)
    np.testing.assert_allclose(
        [ex.step(t).position[0] for t in (0.0, 1 / 30, 2 / 30, 0.1)], [0.0, 0.1, 0.2, 0.3], atol=1e-12
    )


def test_cross_fade_at_chunk_boundary_has_no_jump():
    ex = ChunkExecutor(ChunkExecutorConfig(control_hz=10, chunk_hz=10, blend_steps=3))
    ex.set_chunk(np.zeros((10, 1)), t_obs=0.0)
    assert ex.step(0.0).position[0] == 0.0
    assert ex.step(0.1).position[0] == 0.0
    ex.set_chunk(np.ones((10, 1)), t_obs=0.1)  # jump of 1.0 in the targets
    got = [ex.step(t).position[0] for t in (0.2, 0.3, 0.4, 0.5, 0.6)]
    # w = (t - t_prev) / ((3 + 1) * 0.1), t_prev = 0.1
    np.testing.assert_allclose(got, [0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-9)
    assert np.max(np.abs(np.diff([0.0] + got))) <= 0.25 + 1e-9


def test_nested_switch_during_fade_stays_continuous_and_hold_start():
    ex = ChunkExecutor(ChunkExecutorConfig(control_hz=10, chunk_hz=10, blend_steps=1))
    ex.hold([2.0], t=0.0)
    assert ex.step(0.0).chunk_id == -1
    ex.set_chunk(np.zeros((10, 1)), t_obs=0.0)
    a = ex.step(0.1).position[0]  # w = 0.5 between hold 2.0 and chunk 0.0
    assert a == pytest.approx(1.0)
    ex.set_chunk(np.full((10, 1), -2.0), t_obs=0.1)
    b = ex.step(0.2).position[0]  # 0.5 * (previous fade at w=1: 0.0) + 0.5 * (-2.0)
    assert b == pytest.approx(-1.0)
    assert ex.step(0.3).position[0] == pytest.approx(-2.0)


def test_max_delta_and_bad_input():
    ex = ChunkExecutor(ChunkExecutorConfig(blend_steps=0, max_delta=0.1))
    ex.hold([0.0, 0.0])
    ex.step(0.0)
    ex.set_chunk(np.ones((3, 2)), 0.1)
    np.testing.assert_allclose(ex.step(0.1).position, [0.1, 0.1])
    with pytest.raises(ValueError, match="action_dim=2"):
        ex.set_chunk(np.ones((3, 3)), 0.2)
    with pytest.raises(ValueError, match="NaN"):
        ex.set_chunk(np.full((3, 2), np.nan), 0.2)
    with pytest.raises(ValueError, match="blend_steps"):
        ChunkExecutorConfig(blend_steps=-1)


def test_a_non_finite_position_is_never_held():
    """Found in review: one NaN in the measured state held at an episode's start made every later command NaN (the
    speed clip keeps a NaN last command NaN). hold refuses it; the node checks first (require_finite) and waits."""
    from bora_policy.runtime.chunk_executor import require_finite

    ex = ChunkExecutor(ChunkExecutorConfig(blend_steps=0, max_delta=0.1))
    with pytest.raises(ValueError, match="NaN or inf"):
        ex.hold([0.0, np.nan])
    assert ex.step(0.0) is None  # nothing was taken
    ex.hold([0.0, 0.5])
    np.testing.assert_allclose(ex.step(0.0).position, [0.0, 0.5])
    assert require_finite([1.0, 2.0], "x") and not require_finite([np.inf], "x", raise_=False)
    with pytest.raises(ValueError, match="the model's chunk has NaN or inf"):
        require_finite(np.full((2, 2), np.nan), "the model's chunk")


@pytest.fixture
def actor_files(tmp_path):
    torch.manual_seed(0)
    a = ResidualChunkActor(4, 3, 2, 5, ResidualConfig(hidden_dims=[8]))
    b = ResidualChunkActor(4, 3, 2, 5, ResidualConfig(hidden_dims=[8], init_scale=0.5))
    pa, pb = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(a.state_dict(), str(pa))
    save_file(b.state_dict(), str(pb))
    return a, b, pa, pb, tmp_path


def test_verify_accepts_good_and_names_every_failure(actor_files):
    a, b, pa, pb, tmp = actor_files
    ref = a.state_dict()
    ck = verify_checkpoint(pb, sha256_file(pb), ref)
    assert ck.version == sha256_file(pb)[:16]
    with pytest.raises(CheckpointRejected, match="sha256"):
        verify_checkpoint(pb, sha256_file(pa), ref)
    trunc = tmp / "t.safetensors"
    trunc.write_bytes(pb.read_bytes()[:50])
    with pytest.raises(CheckpointRejected, match="not a readable safetensors"):
        verify_checkpoint(trunc, "", ref)
    sd = {k: v.clone() for k, v in b.state_dict().items()}
    sd["trunk.0.weight"][0, 0] = float("inf")
    save_file(sd, str(tmp / "inf.safetensors"))
    with pytest.raises(CheckpointRejected, match="NaN or inf"):
        verify_checkpoint(tmp / "inf.safetensors", "", ref)
    other = ResidualChunkActor(4, 3, 2, 5, ResidualConfig(hidden_dims=[6]))
    save_file(other.state_dict(), str(tmp / "shape.safetensors"))
    with pytest.raises(CheckpointRejected, match="shape"):
        verify_checkpoint(tmp / "shape.safetensors", "", ref)
    with pytest.raises(CheckpointRejected, match="does not exist"):
        verify_checkpoint(tmp / "missing.safetensors", "", ref)


def test_load_builds_a_new_module_and_slot_swaps_atomically(actor_files):
    a, b, pa, pb, _ = actor_files
    slot = HotSwapSlot(a, "A")
    mod, ck = load_module_checked(a, pb, sha256_file(pb))
    assert (
        mod is not a
        and torch.equal(mod.head.weight, b.head.weight)
        and not torch.equal(a.head.weight, b.head.weight)
    )
    slot.stage(mod, ck.version)
    assert slot.snapshot() == (a, "A") and slot.pending
    assert slot.commit() and slot.snapshot() == (mod, ck.version) and not slot.commit()
    # readers never see a torn (value, version) pair while another thread swaps
    seen, stop = set(), threading.Event()

    def reader():
        while not stop.is_set():
            seen.add(slot.snapshot())

    th = threading.Thread(target=reader)
    th.start()
    for i in range(200):
        slot.stage(i, f"v{i}")
        slot.commit()
    stop.set()
    th.join()
    assert all(isinstance(v, int) and ver == f"v{v}" for v, ver in seen if ver.startswith("v"))


def test_policy_runner_composes_residual_and_keeps_old_on_bad_file(tmp_path):
    from bora_policy.models.vla import VLAConfig, VLAPolicy
    from bora_policy.runtime.policy_runner import PolicyRunner, load_policy

    torch.manual_seed(0)
    S, A, k = 9, 9, 4
    cfg = VLAConfig(
        action_dim=A,
        state_dim=S,
        chunk_size=k,
        n_cameras=2,
        expert_hidden_dim=32,
        expert_num_blocks=1,
        expert_cond_dim=16,
    )
    rng = np.random.default_rng(0)
    norm = Normalizer(
        rng.normal(size=S), rng.uniform(0.5, 1.5, S), rng.normal(size=A), rng.uniform(0.1, 0.3, A)
    )
    vla = VLAPolicy(cfg, norm)
    vla.save(tmp_path / "vla")
    vla2, version = load_policy(tmp_path / "vla")
    assert vla2.normalizer.version == norm.version and len(version) == 16
    assert version == sha256_file(tmp_path / "vla" / "model.safetensors")[:16]
    runner = PolicyRunner(vla2, policy_version=version)
    color = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    state = rng.normal(size=S)
    r0 = runner.infer(color, state, "pick")
    assert r0.final.shape == (k, A) and r0.residual_scale == 0.0
    np.testing.assert_allclose(r0.final, r0.base, atol=1e-5)
    np.testing.assert_allclose(
        r0.base, r0.base_norm * (norm.action_std + norm.eps) + norm.action_mean, atol=1e-5
    )
    np.testing.assert_allclose(
        r0.proprio_norm, (state - norm.state_mean) / (norm.state_std + norm.eps), atol=1e-5
    )
    act = ResidualChunkActor(S, A, k, vla.z_dim, ResidualConfig(hidden_dims=[16], init_scale=0.5))
    save_file(act.state_dict(), str(tmp_path / "r.safetensors"), metadata={"normalizer_version": norm.version})
    ok, msg = runner.load_residual(str(tmp_path / "r.safetensors"))
    assert ok, msg
    assert runner.infer(color, state, "pick").residual_scale == 0.0  # staged, not yet committed
    runner.residual_slot.commit()
    r1 = runner.infer(color, state, "pick")
    # Algorithm 1 line 15 by hand: final = (base_norm + alpha * A_res) * sigma + mu
    with torch.no_grad():
        a_res = act(
            torch.tensor(r1.proprio_norm)[None], torch.tensor(r1.base_norm)[None], torch.tensor(r1.z)[None]
        )[0]
    expect = (r1.base_norm + 0.2 * a_res.numpy()) * (norm.action_std + norm.eps) + norm.action_mean
    np.testing.assert_allclose(r1.final, expect, atol=1e-4)
    np.testing.assert_allclose(r1.residual, a_res.numpy() * (norm.action_std + norm.eps), atol=1e-5)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    ok, msg = runner.load_residual(str(bad))
    assert not ok and "safetensors" in msg
    assert runner.residual_slot.snapshot()[1] == r1.residual_version
    with pytest.raises(ValueError, match="state_dim=9"):
        runner.infer(color, np.zeros(3), "pick")


def test_executor_reset_forgets_the_previous_episode():
    from bora_policy.runtime.chunk_executor import ChunkExecutor, ChunkExecutorConfig

    ex = ChunkExecutor(ChunkExecutorConfig(control_hz=10.0, chunk_hz=10.0, blend_steps=2))
    ex.set_chunk(np.ones((4, 2)), t_obs=0.0, t_now=0.0)
    assert ex.step(0.1) is not None
    ex.reset()
    assert not ex.has_command and ex.step(0.2) is None
    # the next hold is taken as is: no cross-fade from the previous episode's chunk
    ex.hold([5.0, -5.0], 0.3)
    np.testing.assert_allclose(ex.step(0.3).position, [5.0, -5.0])
