"""Chunk replay: layout of chunk transitions, atomic persistence, the exact 1:1 RLPD sampler."""

import numpy as np
import pytest

from bora_trainer.data.replay import (
    ChunkReplayBuffer,
    MixedSampler,
    ReplayError,
    ReplaySpec,
    chunk_transitions,
)

SPEC = ReplaySpec(z_dim=3, state_dim=2, action_dim=2, chunk_size=4, normalizer_version="abc")


def _episode(T=10, terminal=True):
    acts = np.arange(T * 2, dtype=np.float32).reshape(T, 2)
    rew = np.arange(T, dtype=np.float32) / 10
    done = np.zeros(T, bool)
    done[-1] = terminal
    starts = np.arange(0, T, 4)  # 0, 4, 8
    n = len(starts)
    z = np.stack([np.full(3, s, np.float32) for s in starts])
    prop = np.stack([np.full(2, -s, np.float32) for s in starts])
    vla = np.random.default_rng(0).normal(size=(n, 4, 2)).astype(np.float32)
    is_int = np.zeros(T, bool)
    is_int[5:7] = True
    beta = is_int * 0.5
    return acts, rew, done, starts, z, prop, vla, is_int, beta


def test_chunk_transitions_layout():
    acts, rew, done, starts, z, prop, vla, is_int, beta = _episode()
    tr = chunk_transitions(
        acts, rew, done, starts, z, prop, vla, 4, is_intervention=is_int, beta=beta, episode=7
    )
    assert tr["action"].shape == (3, 4, 2)
    np.testing.assert_array_equal(tr["action"][1], acts[4:8])
    np.testing.assert_allclose(tr["reward"][2], [0.8, 0.9, 0, 0], atol=1e-6)
    # next obs of chunk 0 is the replanning step 4; the last chunk has none
    np.testing.assert_array_equal(tr["next_z"][0], z[1])
    assert tr["next_valid"].tolist() == [True, True, False]
    # masks: full, full, the two real steps (terminal at step 9 included)
    assert tr["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert tr["is_intervention"][1].tolist() == [False, True, True, False]
    np.testing.assert_allclose(tr["beta"][1], [0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(tr["base"], vla)
    assert tr["episode"].tolist() == [7, 7, 7] and tr["step"].tolist() == [0, 4, 8]


def test_time_limit_is_truncation_not_termination():
    # T = 10, timeout: the chunk at 8 has two real steps; nothing terminated, so it bootstraps. Its next
    # state is the episode's final observation when given, else the last replanning observation
    acts, rew, done, starts, z, prop, vla, _, _ = _episode(T=10, terminal=False)
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    assert not tr["done"].any()  # padding is not a terminal (as in the offline chunk dataset)
    assert tr["next_valid"].tolist() == [True, True, True]
    assert tr["n_steps"].tolist() == [4, 4, 2]
    assert tr["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
    np.testing.assert_array_equal(tr["next_z"][2], z[2])  # stand-in: the last replanning observation
    fin = {"z": np.full(3, 99.0), "proprio": np.full(2, 7.0), "vla": np.ones((4, 2))}
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4, final=fin)
    np.testing.assert_array_equal(tr["next_z"][2], fin["z"])
    np.testing.assert_array_equal(tr["next_proprio"][2], fin["proprio"])
    np.testing.assert_array_equal(tr["next_base"][2], fin["vla"])  # base defaults to the VLA chunk
    np.testing.assert_array_equal(tr["next_z"][1], z[2])  # rows with a replanning step keep it
    # T = 8, timeout: the chunk at 4 ends exactly at the limit. With the final observation its last step
    # bootstraps from it; without, the stand-in would be its own start z[1] (v(z_4, 0) for the state at step 8),
    # so its last step is dropped as a gap's is
    acts, rew, done, starts, z, prop, vla, _, _ = _episode(T=8, terminal=False)
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4, final=fin)
    assert tr["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert tr["next_valid"].tolist() == [True, True] and tr["n_steps"].tolist() == [4, 4]
    np.testing.assert_array_equal(tr["next_z"][1], fin["z"])
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    assert tr["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert tr["next_valid"].tolist() == [True, False] and tr["n_steps"].tolist() == [4, 4]
    # T = 7: the chunk at 4 is partial (3 real steps); its last real step bootstraps from v(z_4, 3) inside the
    # chunk (Eq. 1), not from next_z: nothing is dropped
    acts, rew, done, starts, z, prop, vla, _, _ = _episode(T=7, terminal=False)
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    assert tr["mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]] and tr["n_steps"].tolist() == [4, 3]


def test_gap_in_replanning_drops_last_step():
    # replanning at 0 and 6 (not 4): the chunk at 0 has no observation at 4 -> no bootstrap, last step out
    acts, rew, done, _, _, prop, vla, _, _ = _episode(T=12, terminal=True)
    starts = np.array([0, 6])
    z = np.zeros((2, 3), np.float32)
    tr = chunk_transitions(acts, rew, done, starts, z, prop[:2], vla[:2], 4)
    assert tr["next_valid"].tolist() == [False, False]  # neither step 4 nor step 10 is a replanning step
    assert tr["mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 0]]


def test_terminal_inside_chunk_masks_after_it():
    acts, rew, done, starts, z, prop, vla, _, _ = _episode(T=10, terminal=False)
    done[5] = True
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    assert tr["mask"][1].tolist() == [1, 1, 0, 0]


def test_persistence_round_trip_and_crash_safety(tmp_path):
    acts, rew, done, starts, z, prop, vla, is_int, beta = _episode()
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4, is_intervention=is_int, beta=beta)
    buf = ChunkReplayBuffer(SPEC, tmp_path / "rb")
    buf.add(tr)
    buf.flush()
    buf.add({k: v[0] for k, v in tr.items()})  # one unbatched row, not flushed (lost in a "crash")
    # a half-written temporary file from a killed writer is ignored
    (tmp_path / "rb" / ".shard_000001.npz.123.tmp").write_bytes(b"garbage")
    re = ChunkReplayBuffer.open(tmp_path / "rb", expect=SPEC)
    assert len(buf) == 4 and len(re) == 3
    for k, v in tr.items():
        np.testing.assert_array_equal(re.arrays()[k], v)
    re.add(tr)
    assert re.flush().name == "shard_000001.npz"
    assert len(ChunkReplayBuffer.open(tmp_path / "rb")) == 6
    with pytest.raises(ReplayError, match="differs"):
        ChunkReplayBuffer.open(tmp_path / "rb", expect=ReplaySpec(3, 2, 2, 4, "other"))
    with pytest.raises(ReplayError, match="already holds"):
        ChunkReplayBuffer(SPEC, tmp_path / "rb")


def test_bad_rows_name_the_field():
    buf = ChunkReplayBuffer(SPEC)
    acts, rew, done, starts, z, prop, vla, _, _ = _episode()
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    bad = dict(tr, vla=tr["vla"][:, :3])
    with pytest.raises(ReplayError, match="'vla'"):
        buf.add(bad)
    with pytest.raises(ReplayError, match="missing"):
        buf.add({k: v for k, v in tr.items() if k != "reward"})
    bad = dict(tr, reward=tr["reward"] * np.nan)
    with pytest.raises(ReplayError, match="NaN"):
        buf.add(bad)


def test_rebase_recomputes_base_from_vla():
    buf = ChunkReplayBuffer(SPEC)
    acts, rew, done, starts, z, prop, vla, _, _ = _episode()
    buf.add(chunk_transitions(acts, rew, done, starts, z, prop, vla, 4))
    buf.rebase(lambda p, v, zz: v + zz[:, :1, None])
    a = buf.arrays()
    np.testing.assert_allclose(a["base"], a["vla"] + a["z"][:, :1, None])
    np.testing.assert_allclose(a["next_base"], a["next_vla"] + a["next_z"][:, :1, None])


def test_mixed_sampler_exact_one_to_one():
    off, on = ChunkReplayBuffer(SPEC), ChunkReplayBuffer(SPEC)
    acts, rew, done, starts, z, prop, vla, _, _ = _episode()
    tr = chunk_transitions(acts, rew, done, starts, z, prop, vla, 4)
    for _ in range(30):
        off.add(dict(tr, episode=np.zeros(3, np.int64)))
    on.add(dict(tr, episode=np.ones(3, np.int64)))  # online buffer 30x smaller
    s = MixedSampler(off, on, batch_size=64, seed=1)
    for _ in range(5):
        b = s.sample()
        assert b["z"].shape == (64, 3)
        assert int(b["is_online"].sum()) == 32
        # rows really come from the buffer their flag says
        assert (b["episode"][b["is_online"]] == 1).all() and (b["episode"][~b["is_online"]] == 0).all()
    with pytest.raises(ValueError, match="even"):
        MixedSampler(off, on, batch_size=63)
    with pytest.raises(ReplayError, match="empty"):
        MixedSampler(off, ChunkReplayBuffer(SPEC), 4).sample()
    with pytest.raises(ReplayError, match="normaliser"):
        MixedSampler(off, ChunkReplayBuffer(ReplaySpec(3, 2, 2, 4, "zzz")), 4)
