"""Bags -> episodes -> chunk transitions: exact values of scripted episodes (MCAP and sqlite3),
idempotency, duplicates / out-of-order arrival, truncated bags and missing topics.

Expectations are computed here from the closed forms of ``synthetic_bag`` and the reward
definition (terminal success reward, per-step time penalty, r_int at a takeover start, r_rec at
the recovery step), not by calling the converter's reward code.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bora_policy.common.episodes import read_episode, read_meta
from bora_policy.common.rewards import RewardConfig
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import (
    ConvertConfig,
    MissingTopicsError,
    convert,
    main,
    read_transitions,
)
from bora_trainer.data.bag_io import read_bag
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, exec_value, write_scripted_bag

LAY = BagLayout()
K, A = LAY.chunk_size, LAY.action_dim
EPISODES = [
    ScriptedEpisode(1, 10, "success", [(3, 6, 5)]),  # takeover at steps 3..5, recovered at 5
    ScriptedEpisode(2, 8, "failure", [(1, 3, None), (5, None, None)]),  # two takeovers, the second to the end
    ScriptedEpisode(3, 6, "timeout"),
]
# hand-computed with RewardConfig defaults: time penalty 0.002, success 1, failure 0, r_int -0.3, r_rec 0.2
EXPECTED = {
    1: dict(T=10, outcome="success", done_last=True, ints=[3, 4, 5], reward={3: -0.302, 5: 0.198, 9: 0.998}),
    2: dict(T=8, outcome="failure", done_last=True, ints=[1, 2, 5, 6, 7], reward={1: -0.302, 5: -0.302}),
    3: dict(T=6, outcome="timeout", done_last=False, ints=[], reward={}),
}


def expected_rewards(eid):
    e = EXPECTED[eid]
    r = np.full(e["T"], -0.002)
    for s, v in e["reward"].items():
        r[s] = v
    return r


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = {}
    for storage in ("mcap", "sqlite3"):
        root = tmp_path_factory.mktemp(storage)
        write_scripted_bag(root / "bag", EPISODES, LAY, storage=storage)
        rep = convert([root / "bag"], root / "out")
        out[storage] = (root, rep)
    return out


def _by_source(out_dir):
    res = {}
    for js in sorted((out_dir / "transitions").glob("episode_*.json")):
        info = json.loads(js.read_text())
        res[info["source_episode_id"]] = info["episode_id"]
    return res


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_scripted_bag_converts_to_expected_episodes(converted, storage):
    root, rep = converted[storage]
    assert [e.status for e in rep.episodes] == ["written"] * 3
    assert not rep.truncated
    ids = _by_source(root / "out")
    meta = read_meta(root / "out")
    assert meta.camera_names == list(LAY.cameras) and meta.image_size == list(LAY.image_hw)
    assert meta.fps == pytest.approx(30.0, rel=1e-3)
    for ep in EPISODES:
        e = EXPECTED[ep.episode_id]
        arrays, info = read_episode(root / "out", ids[ep.episode_id])
        T = e["T"]
        assert info["num_steps"] == T and info["outcome"] == e["outcome"] and not info["outcome_missing"]
        np.testing.assert_allclose(
            arrays["action"],
            exec_value(ep.episode_id, np.arange(T)[:, None], np.arange(A)[None]),
            rtol=0,
            atol=1e-6,
        )
        want_int = np.zeros(T, bool)
        want_int[e["ints"]] = True
        np.testing.assert_array_equal(arrays["is_intervention"], want_int)
        np.testing.assert_array_equal(arrays["beta"], want_int.astype(np.float32))
        np.testing.assert_allclose(arrays["reward"], expected_rewards(ep.episode_id), atol=1e-6)
        want_done = np.zeros(T, bool)
        want_done[-1] = e["done_last"]
        np.testing.assert_array_equal(arrays["done"], want_done)
        # observations: state = previous command, pixels (t + cam) % 256, depth 0.5 + 0.01 t
        np.testing.assert_allclose(arrays["state"][1:], arrays["action"][:-1], atol=1e-6)
        assert arrays["color"].shape == (T, 2, 4, 6, 3)
        assert (arrays["color"][:, 1] == (np.arange(T) + 1)[:, None, None, None]).all()
        np.testing.assert_allclose(arrays["depth"][:, 0, 0, 0], 0.5 + 0.01 * np.arange(T), atol=1e-6)
        # the policy's final chunk rows, per step: base + 0.2 * 0.1
        i = np.arange(T) % K
        base_norm = 0.001 * np.arange(T)[:, None] - 0.01 * np.arange(A)[None]
        np.testing.assert_allclose(arrays["policy_action"], base_norm * 2 + 0.5 + 0.02, atol=1e-5)
        assert arrays["chunk_start"].tolist() == (i == 0).tolist()
        if ep.episode_id == 1:
            assert info["interventions"] == [{"start": 3, "end": 6, "recovered": 5}]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_scripted_bag_converts_to_expected_chunk_transitions(converted, storage):
    root, _ = converted[storage]
    ids = _by_source(root / "out")
    for ep in EPISODES:
        e = EXPECTED[ep.episode_id]
        T = e["T"]
        tr, info = read_transitions(root / "out", ids[ep.episode_id])
        starts = np.arange(0, T, K)
        assert tr["step"].tolist() == starts.tolist() and info["num_chunks"] == len(starts)
        r = expected_rewards(ep.episode_id)
        for n, t in enumerate(starts):
            steps = t + np.arange(K)
            inside = steps < T
            np.testing.assert_allclose(tr["z"][n], t + 0.5 * np.arange(LAY.z_dim))
            np.testing.assert_allclose(tr["proprio"][n], -t - np.arange(A))
            bn = 0.001 * steps[:, None] - 0.01 * np.arange(A)[None]
            np.testing.assert_allclose(tr["vla"][n], bn, atol=1e-6)
            np.testing.assert_allclose(tr["base"][n], bn, atol=1e-6)
            np.testing.assert_allclose(tr["base_physical"][n], bn * 2 + 0.5, atol=1e-5)
            for i in np.flatnonzero(inside):
                np.testing.assert_allclose(
                    tr["action_physical"][n, i], exec_value(ep.episode_id, t + i, np.arange(A)), atol=1e-6
                )
                assert tr["reward"][n, i] == pytest.approx(r[t + i], abs=1e-6)
                assert tr["is_intervention"][n, i] == (t + i in e["ints"])
                assert tr["beta"][n, i] == float(t + i in e["ints"])
            assert (tr["reward"][n, ~inside] == 0).all()
            # validity: steps inside the episode (the terminal is its last step). A chunk reaching the
            # end without a terminal was truncated: it bootstraps from a stand-in next state (replay.py)
            next_exists = t + K < T
            assert tr["next_valid"][n] == (next_exists or not e["done_last"])
            assert tr["n_steps"][n] == inside.sum()
            want_mask = inside.copy()
            if next_exists:
                np.testing.assert_allclose(tr["next_z"][n], (t + K) + 0.5 * np.arange(LAY.z_dim))
            np.testing.assert_array_equal(tr["mask"][n], want_mask)
            assert tr["done"][n][inside].tolist() == [
                bool(e["done_last"] and s == T - 1) for s in steps[inside]
            ]


def test_both_storages_give_the_same_content_hashes(converted):
    hashes = {s: sorted(e.content_hash for e in converted[s][1].episodes) for s in converted}
    assert hashes["mcap"] == hashes["sqlite3"]


def test_conversion_is_idempotent_and_rewards_follow_the_config(tmp_path):
    write_scripted_bag(tmp_path / "bag", EPISODES[:2], LAY)
    out = tmp_path / "out"
    first = convert([tmp_path / "bag"], out)
    snap = {p.name: p.read_bytes() for p in sorted((out / "episodes").iterdir())}
    again = convert([tmp_path / "bag"], out)
    assert [e.status for e in again.episodes] == ["skipped", "skipped"]
    assert {p.name: p.read_bytes() for p in sorted((out / "episodes").iterdir())} == snap
    # a reward change rewrites the same episodes in place (no new robot time, no duplicates)
    cfg = ConvertConfig(
        rewards=RewardConfig(
            success_reward=10.0, time_penalty=0.0, intervention_penalty=-1.0, recovery_bonus=0.5
        )
    )
    third = convert([tmp_path / "bag"], out, cfg)
    assert [e.status for e in third.episodes] == ["rewritten", "rewritten"]
    assert [e.episode_id for e in third.episodes] == [e.episode_id for e in first.episodes]
    arrays, _ = read_episode(out, first.episodes[0].episode_id, load_images=False)
    want = np.zeros(10)
    want[3], want[5], want[9] = -1.0, 0.5, 10.0
    np.testing.assert_allclose(arrays["reward"], want, atol=1e-6)
    assert len(list((out / "episodes").glob("*.json"))) == 2


def test_duplicated_and_out_of_order_messages_convert_like_a_clean_bag(tmp_path):
    write_scripted_bag(tmp_path / "clean", EPISODES, LAY)
    write_scripted_bag(tmp_path / "messy", EPISODES, LAY, duplicate_every=3, shuffle_seed=7)
    a = convert([tmp_path / "clean"], tmp_path / "a")
    b = convert([tmp_path / "messy"], tmp_path / "b")
    assert [e.content_hash for e in a.episodes] == [e.content_hash for e in b.episodes]
    assert any("duplicated" in w for w in b.warnings)
    for ea, eb in zip(a.episodes, b.episodes):
        ta, _ = read_transitions(tmp_path / "a", ea.episode_id)
        tb, _ = read_transitions(tmp_path / "b", eb.episode_id)
        for k in ta:
            np.testing.assert_array_equal(ta[k], tb[k], err_msg=k)
    # the same bag given twice (e.g. two overlapping recordings) adds nothing
    c = convert([tmp_path / "clean", tmp_path / "messy"], tmp_path / "a")
    assert {e.status for e in c.episodes} == {"skipped"}


def test_truncated_bag_keeps_the_complete_part(tmp_path):
    raws = write_scripted_bag(tmp_path / "bag", EPISODES[:2], LAY)
    full = convert([tmp_path / "bag"], tmp_path / "full")
    f = tmp_path / "bag" / "bag.mcap"
    data = f.read_bytes()
    # cut in the middle of the ExecutedCommand of episode 2, step 5 (as a killed recorder would)
    cmd = next(
        raw
        for topic, _, raw in raws
        if topic == S.T_EXECUTED and _decode(raw).command.episode_id == 2 and _decode(raw).command.step == 5
    )
    pos = data.find(cmd)
    assert pos > 0
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "killed.mcap").write_bytes(data[: pos + len(cmd) // 2])  # no metadata.yaml, no footer
    rep = convert([killed], tmp_path / "cut")
    assert rep.truncated == [str(killed)]
    assert any("truncated" in w for w in rep.warnings) and any("metadata.yaml" in w for w in rep.warnings)
    by = {e.source_episode_id: e for e in rep.episodes}
    # episode 1 complete and identical; episode 2 = steps 0..4, no outcome: kept and flagged
    assert by[1].content_hash == full.episodes[0].content_hash
    assert by[2].num_steps == 5 and by[2].outcome is None
    arrays, info = read_episode(tmp_path / "cut", by[2].episode_id, load_images=False)
    assert info["outcome_missing"] is True and info["success"] is None
    np.testing.assert_allclose(
        arrays["action"], exec_value(2, np.arange(5)[:, None], np.arange(A)[None]), atol=1e-6
    )
    assert not arrays["done"].any()  # not guessed: no terminal flag, no terminal reward
    np.testing.assert_allclose(arrays["reward"], [-0.002, -0.302, -0.002, -0.002, -0.002], atol=1e-6)


def _decode(raw):
    return S.build_typestore().deserialize_cdr(raw, "bora_msgs/msg/ExecutedCommand")


def test_missing_topics_are_listed(tmp_path, capsys):
    write_scripted_bag(tmp_path / "bag", EPISODES[:1], LAY, skip_topics=(S.T_INTERVENTION, S.T_EPISODE))
    with pytest.raises(MissingTopicsError) as ei:
        convert([tmp_path / "bag"], tmp_path / "out")
    assert ei.value.missing == [S.T_INTERVENTION, S.T_EPISODE]
    assert main(["convert", str(tmp_path / "bag"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "/bora/intervention" in err and "/bora/episode" in err
    # without observations: episode files impossible, transitions-only works
    write_scripted_bag(tmp_path / "noobs", EPISODES[:1], LAY, skip_topics=(S.T_OBSERVATION,))
    with pytest.raises(MissingTopicsError, match="/bora/observation"):
        convert([tmp_path / "noobs"], tmp_path / "o2")
    rep = convert([tmp_path / "noobs"], tmp_path / "o2", ConvertConfig(transitions_only=True))
    assert rep.episodes[0].num_chunks == 3 and not (tmp_path / "o2" / "episodes").exists()


def test_cli_convert_and_info(tmp_path, capsys):
    write_scripted_bag(tmp_path / "bag", EPISODES[:1], LAY)
    assert main(["info", str(tmp_path / "bag")]) == 0
    out = capsys.readouterr().out
    assert "/bora/executed_command" in out and "10" in out
    assert main(["convert", str(tmp_path / "bag"), "--out", str(tmp_path / "o")]) == 0
    assert "1 written" in capsys.readouterr().out
    # the MCAP written by our flushing writer is readable by rosbags' own Reader and by mcap-ros2
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "bag") as r:
        assert sum(1 for _ in r.messages()) == len(read_bag(tmp_path / "bag").messages)
    with open(tmp_path / "bag" / "bag.mcap", "rb") as f:
        msgs = list(
            make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(topics=[S.T_EPISODE])
        )
    assert [m[3].kind for m in msgs] == [0, 1]
    shutil.rmtree(tmp_path / "o")
