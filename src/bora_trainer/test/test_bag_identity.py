"""Issue 16, points 1-3 and 5: episode identity across sessions, gaps as data, per-episode idempotent
re-conversion, types from the recording's connections, intervention flags without events.

Real rosbag2 files written with ``rosbags`` (``synthetic_bag``); expectations computed here from the
closed forms (exec value ``ep + 0.01 t + 0.1 j``) and the reward definition (time penalty 0.002,
success 1, r_int -0.3 at a takeover start, r_rec 0.2 at the recovery step).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bora_policy.common.episodes import read_episode
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import ConversionError, convert, read_transitions
from bora_trainer.data.bag_io import open_writer
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, exec_value, write_scripted_bag

LAY = BagLayout()
A = LAY.action_dim
SA = "11111111-1111-4111-8111-111111111111"
SB = "22222222-2222-4222-8222-222222222222"


def _by_key(out):
    res = {}
    for js in sorted((out / "transitions").glob("episode_*.json")):
        d = json.loads(js.read_text())
        res[(d["session_id"], d["source_episode_id"])] = d
    return res


def _rewards(T, penalties: dict[int, float]):
    r = np.full(T, -0.002)
    for s, v in penalties.items():
        r[s] += v
    return r


@pytest.mark.parametrize("legacy", [False, True])
def test_two_sessions_whose_episode_ids_restart_stay_apart(tmp_path, legacy):
    # session A: episode 1 (10 steps, takeover 3..5 recovered at 5, success), episode 2 (8 steps, failure)
    # session B (a restarted teleop/bridge): episode 1 again (12 steps, takeover 2..4 not recovered, success)
    a = [ScriptedEpisode(1, 10, "success", [(3, 6, 5)], session_id=SA), ScriptedEpisode(2, 8, "failure", session_id=SA)]
    b = [ScriptedEpisode(1, 12, "success", [(2, 5, None)], session_id=SB)]
    write_scripted_bag(tmp_path / "a", a, LAY, legacy=legacy)
    write_scripted_bag(tmp_path / "b", b, LAY, legacy=legacy, t0_ns=1_800_000_000 * 10**9)
    rep = convert([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    assert [e.status for e in rep.episodes] == ["written"] * 3
    got = _by_key(tmp_path / "out")
    if legacy:  # no session_id recorded: each bag (its name and first log time) stands in for the session
        sa, sb = f"bag:a@{1_700_000_000 * 10**9}", f"bag:b@{1_800_000_000 * 10**9}"
    else:
        sa, sb = SA, SB
    assert sorted(got) == sorted([(sa, 1), (sa, 2), (sb, 1)])
    for key, T, outcome, ints, pen in [
        ((sa, 1), 10, "success", [3, 4, 5], {3: -0.3, 5: 0.2, 9: 1.0}),
        ((sa, 2), 8, "failure", [], {}),
        ((sb, 1), 12, "success", [2, 3, 4], {2: -0.3, 11: 1.0}),
    ]:
        info = got[key]
        assert info["num_steps"] == T and info["outcome"] == outcome
        arrays, einfo = read_episode(tmp_path / "out", info["episode_id"], load_images=False)
        assert np.flatnonzero(arrays["is_intervention"]).tolist() == ints
        np.testing.assert_allclose(arrays["reward"], _rewards(T, pen), atol=1e-6)
        ep = key[1]
        np.testing.assert_allclose(
            arrays["action"], exec_value(ep, np.arange(T)[:, None], np.arange(A)[None]), atol=1e-6
        )
        assert einfo["session_id"] == key[0]
    # session B's takeover is its own: session A's episode 1 has exactly its one takeover
    tk = read_episode(tmp_path / "out", got[(sa, 1)]["episode_id"], load_images=False)[1]["interventions"]
    assert tk == [{"start": 3, "end": 6, "recovered": 5}]
    # converting again adds nothing
    again = convert([tmp_path / "b", tmp_path / "a"], tmp_path / "out")
    assert {e.status for e in again.episodes} == {"skipped"}
    assert len(list((tmp_path / "out" / "episodes").glob("*.json"))) == 3


def test_a_missing_step_is_masked_everywhere_and_keeps_its_takeover(tmp_path):
    # takeover 3..6 (END at 7); steps 4 (inside the takeover) and 8 have no ExecutedCommand
    ep = ScriptedEpisode(1, 12, "success", [(3, 7, None)], session_id=SA, drop_steps=(4, 8))
    write_scripted_bag(tmp_path / "bag", [ep], LAY)
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    eid = rep.episodes[0].episode_id
    arrays, info = read_episode(tmp_path / "out", eid, load_images=False)
    valid = np.ones(12, bool)
    valid[[4, 8]] = False
    np.testing.assert_array_equal(arrays["valid"], valid)
    assert info["missing_steps"] == [4, 8] and info["num_valid_steps"] == 10
    # the gap inside the takeover keeps the takeover's flags (is_intervention, beta = 1 of its neighbours)
    assert np.flatnonzero(arrays["is_intervention"]).tolist() == [3, 4, 5, 6]
    assert arrays["beta"][4] == 1.0 and arrays["beta"][8] == 0.0
    assert any("(steps 4, 8)" in w for w in rep.episodes[0].warnings)
    # transitions: chunk starts 0, 4, 8 (k=4); step 4 = chunk 1 index 0, step 8 = chunk 2 index 0
    tr, _ = read_transitions(tmp_path / "out", eid)
    assert not tr["mask"][1, 0] and not tr["mask"][2, 0]
    assert tr["mask"][1, 1:].all() and tr["is_intervention"][1].tolist() == [True, True, True, False]
    # offline chunks: no sample starts at a gap, the gap is masked in the samples that contain it
    from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig

    ds = ChunkDataset(tmp_path / "out", ChunkDatasetConfig(k=4, stride=1, cache="all"))
    starts = [t for _, t in ds.index]
    assert 4 not in starts and 8 not in starts and len(starts) == 10
    s2 = ds[starts.index(2)]  # steps 2..5: step 4 masked
    assert s2["mask"].tolist() == [1.0, 1.0, 0.0, 1.0]
    # LeRobot export and import keep the mask
    from bora_trainer.data.lerobot import export_episodes, import_dataset
    from bora_trainer.data.lerobot_v3 import read_lerobot

    export_episodes(tmp_path / "out", tmp_path / "lr")
    fr = read_lerobot(tmp_path / "lr")["frames"]
    np.testing.assert_array_equal(np.asarray(fr["bora.valid"]).ravel(), valid)
    import_dataset(tmp_path / "lr", tmp_path / "back")
    back, _ = read_episode(tmp_path / "back", eid, load_images=False)
    np.testing.assert_array_equal(back["valid"], valid)


def test_a_complete_version_replaces_an_incomplete_one_with_a_ledger_entry(tmp_path):
    full = ScriptedEpisode(1, 10, "success", [(3, 6, 5)], session_id=SA)
    part = ScriptedEpisode(1, 6, None, [(3, None, 5)], session_id=SA)  # the same episode, recording stopped at 6
    write_scripted_bag(tmp_path / "live", [part], LAY)
    write_scripted_bag(tmp_path / "done", [full], LAY)
    out = tmp_path / "out"
    r1 = convert([tmp_path / "live"], out)
    assert r1.episodes[0].status == "written" and r1.episodes[0].outcome is None
    old_hash = r1.episodes[0].content_hash
    r2 = convert([tmp_path / "done"], out)
    assert r2.episodes[0].status == "replaced" and r2.episodes[0].episode_id == r1.episodes[0].episode_id
    assert len(list((out / "episodes").glob("episode_*.json"))) == 1
    assert len(list((out / "transitions").glob("episode_*.json"))) == 1
    arrays, info = read_episode(out, r2.episodes[0].episode_id, load_images=False)
    assert info["outcome"] == "success" and len(arrays["action"]) == 10
    ledger = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == 1
    assert ledger[0]["replaced_hash"] == old_hash and ledger[0]["by_hash"] == r2.episodes[0].content_hash
    kept = out / "replaced" / old_hash[:12]
    assert json.loads((kept / "transitions" / "episode_000000.json").read_text())["outcome"] is None
    # the incomplete recording again: it is read together with the bag the episode came from (their union
    # is the complete version): nothing changes
    snap = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r3 = convert([tmp_path / "live"], out)
    assert r3.episodes[0].status == "skipped"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snap
    # and if that bag is gone, the less complete version does not replace the complete one
    import shutil

    shutil.move(tmp_path / "done", tmp_path / "moved")
    r3 = convert([tmp_path / "live"], out)
    assert r3.episodes[0].status == "kept-previous"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snap
    shutil.move(tmp_path / "moved", tmp_path / "done")
    # a re-run reports the chunks it has, not 0
    r4 = convert([tmp_path / "done"], out)
    assert r4.episodes[0].status == "skipped" and r4.episodes[0].num_chunks == 3


def _bag_with_wrong_type(path, topic, msgtype):
    ts = S.build_typestore()
    w = open_writer(path, "mcap")
    for t, mt in S.TOPIC_TYPES.items():
        w.add_connection(t, msgtype if t == topic else mt, typestore=ts)
    w.close()


def test_a_required_topic_with_the_wrong_type_is_an_error_even_without_messages(tmp_path):
    _bag_with_wrong_type(tmp_path / "bag", S.T_INTERVENTION, "std_msgs/msg/String")
    with pytest.raises(
        ConversionError,
        match=r"/bora/intervention is recorded with type std_msgs/msg/String, "
        r"expected bora_msgs/msg/InterventionEvent",
    ):
        convert([tmp_path / "bag"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_intervention_flags_without_events_and_a_missing_start_are_reported(tmp_path):
    ep = ScriptedEpisode(1, 10, "success", [(2, 4, None)], session_id=SA, extra_flags=(6, 7), start_recorded=False)
    write_scripted_bag(tmp_path / "bag", [ep], LAY, duplicate_every=5)
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    w = rep.episodes[0].warnings
    assert any("2 step(s) with is_intervention true but no takeover event (steps 6-7)" in x for x in w)
    assert any("START event was not recorded" in x for x in w)
    # the duplicate warning is kept in the episode's JSON
    _, info = read_episode(tmp_path / "out", rep.episodes[0].episode_id, load_images=False)
    assert any("duplicated message(s) dropped" in x for x in info["warnings"])


def _write_part(path, msgs, keep):
    ts = S.build_typestore()
    w = open_writer(path, "mcap")
    conns = {t: w.add_connection(t, mt, typestore=ts) for t, mt in S.TOPIC_TYPES.items()}
    for topic, t, m in msgs:
        step = int(m.command.step) if topic == S.T_EXECUTED else int(m.step)
        if keep(topic, step, m):
            w.write(conns[topic], t, bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[topic])))
    w.close()


def test_an_episode_split_over_two_bags_is_converted_from_both_parts(tmp_path):
    # the recorder was killed at step 6 and restarted: bag 1 has START and steps 0-5, bag 2 steps 6-9 and
    # SUCCESS. Converted one bag at a time (as the trainer does), the episode ends up whole, under one id.
    from bora_trainer.data.synthetic_bag import scripted_messages

    msgs = scripted_messages([ScriptedEpisode(1, 10, "success", [(3, 8, 7)], session_id=SA)], LAY)
    first = lambda topic, step, m: step < 6 and not (topic == S.T_INTERVENTION and m.kind != 0)  # noqa: E731
    _write_part(tmp_path / "part1", msgs, first)
    _write_part(tmp_path / "part2", msgs, lambda *a: not first(*a))
    out = tmp_path / "out"
    r1 = convert([tmp_path / "part1"], out)
    assert r1.episodes[0].status == "written" and r1.episodes[0].num_steps == 6 and r1.episodes[0].outcome is None
    r2 = convert([tmp_path / "part2"], out)
    assert [e.status for e in r2.episodes] == ["replaced"]
    assert any("also read from" in w for w in r2.warnings)
    arrays, info = read_episode(out, r2.episodes[0].episode_id, load_images=False)
    assert info["num_steps"] == 10 and info["outcome"] == "success" and info["start_recorded"] is True
    assert info["interventions"] == [{"start": 3, "end": 8, "recovered": 7}]
    np.testing.assert_allclose(arrays["reward"], _rewards(10, {3: -0.3, 7: 0.2, 9: 1.0}), atol=1e-6)
    np.testing.assert_allclose(arrays["action"], exec_value(1, np.arange(10)[:, None], np.arange(A)[None]), atol=1e-6)
    assert arrays["valid"].all()
    tinfo = json.loads((out / "transitions" / "episode_000000.json").read_text())
    assert tinfo["bags"] == sorted([str((tmp_path / "part1").resolve()), str((tmp_path / "part2").resolve())])
    assert len((out / "ledger.jsonl").read_text().splitlines()) == 1


def test_missing_observations_are_flagged_and_leading_ones_filled_from_the_first_recorded(tmp_path):
    ep = ScriptedEpisode(1, 12, "success", session_id=SA, drop_obs=(0, 1, 7))
    write_scripted_bag(tmp_path / "bag", [ep], LAY)
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    arrays, info = read_episode(tmp_path / "out", rep.episodes[0].episode_id, load_images=False)
    want = np.ones(12, bool)
    want[[0, 1, 7]] = False
    np.testing.assert_array_equal(arrays["obs_valid"], want)
    assert arrays["valid"].all()
    # state[t] = exec_value(t - 1): steps 0, 1 take step 2's (the first recorded), step 7 takes step 6's
    for t, src in ((0, 2), (1, 2), (7, 6), (8, 8)):
        np.testing.assert_allclose(arrays["state"][t], exec_value(1, src - 1, np.arange(A)), atol=1e-6)
    w = [x for x in rep.episodes[0].warnings if "without an Observation" in x]
    assert len(w) == 1 and "(steps 0-1, 7)" in w[0] and "the 2 leading one(s) from the first recorded, step 2" in w[0]
    from bora_trainer.data.chunks import ChunkDataset, ChunkDatasetConfig

    ds = ChunkDataset(tmp_path / "out", ChunkDatasetConfig(k=4, stride=1, cache="all"))
    starts = [t for _, t in ds.index]
    assert starts == [2, 3, 4, 5, 6, 8, 9, 10, 11]
    s = ds[starts.index(2)]  # steps 2..5, observation 6 recorded: a normal sample
    assert bool(s["next_valid"]) and s["mask"].tolist() == [1.0] * 4
    assert not bool(s["next_missing"])
    s = ds[starts.index(3)]  # steps 3..6: observation 7 was not recorded, no bootstrap from a filler
    assert not bool(s["next_valid"]) and s["mask"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert bool(s["next_missing"])  # what a chunk-level target (ALOE) needs to tell it from the episode's end
    s = ds[starts.index(8)]  # steps 8..11 end the episode: no observation 12 either, but nothing is missing
    assert not bool(s["next_valid"]) and not bool(s["next_missing"]) and s["mask"].tolist() == [1.0] * 4
