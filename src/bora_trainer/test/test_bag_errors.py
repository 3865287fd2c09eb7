"""Issue 16, points 4 and 7: errors of ``bora bag`` are one line naming the path and what was expected,
exit 2 (input) or 3 (output), no traceback without ``--debug``, and the output left exactly as it was
(0 stray files). Real rosbag2 files written with ``rosbags``.
"""

from __future__ import annotations

import json

import pytest

from bora_trainer.data.bag_convert import main
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, write_scripted_bag

LAY = BagLayout()
EPS = [ScriptedEpisode(1, 6, "success"), ScriptedEpisode(2, 5, "failure")]


def _tree(root):
    """Every path under root (files with their bytes): what 'left exactly as it was' compares."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _run(capsys, *args):
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.err


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def bag(tmp_path):
    write_scripted_bag(tmp_path / "bag", EPS, LAY)
    return tmp_path / "bag"


def test_output_path_is_a_file(tmp_path, bag, capsys):
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    out.write_text("not a directory")
    before = _tree(tmp_path / "work")
    rc, err = _run(capsys, "convert", str(bag), "--out", str(out))
    assert rc == 3
    line = _one_line(err)
    assert str(out) in line and "not a directory" in line and "expected an output directory" in line
    assert _tree(tmp_path / "work") == before


def test_unreadable_meta_json(tmp_path, bag, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "meta.json").write_text("{not json")
    before = _tree(tmp_path)
    rc, err = _run(capsys, "convert", str(bag), "--out", str(out))
    assert rc == 3
    line = _one_line(err)
    assert str(out / "meta.json") in line and "expected a bora-episodes/1 meta.json" in line
    assert _tree(tmp_path) == before


def test_meta_naming_other_cameras_leaves_no_stray_file(tmp_path, bag, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(bag), "--out", str(out)]) == 0
    capsys.readouterr()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["camera_names"] == ["left", "front"]
    # a new session of the same rig (staged first: it was recorded earlier) and another rig with one
    # wrist camera: the second fails after the first was staged
    write_scripted_bag(
        tmp_path / "more", [ScriptedEpisode(1, 6, "success", session_id="44444444-4444-4444-8444-444444444444")], LAY
    )
    other = BagLayout(cameras=("wrist",))
    write_scripted_bag(
        tmp_path / "wrist",
        [ScriptedEpisode(1, 6, "success", session_id="33333333-3333-4333-8333-333333333333")],
        other,
        t0_ns=1_800_000_000 * 10**9,
    )
    before = _tree(tmp_path)
    rc, err = _run(capsys, "convert", str(tmp_path / "more"), str(tmp_path / "wrist"), "--out", str(out))
    assert rc == 3
    line = _one_line(err)
    assert str(out / "meta.json") in line and "camera_names" in line and "'wrist'" in line
    assert _tree(tmp_path) == before  # nothing staged is left, nothing replaced


def test_output_not_writable(tmp_path, bag, capsys):
    # a path under a regular file cannot be created (root ignores permission bits, so not chmod)
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" / "out"
    before = _tree(tmp_path)
    rc, err = _run(capsys, "convert", str(bag), "--out", str(out))
    assert rc == 3
    line = _one_line(err)
    assert "expected a writable directory" in line and str(tmp_path / "plain") in line
    assert _tree(tmp_path) == before


def test_input_errors_exit_2_and_a_traceback_only_with_debug(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "empty.mcap").write_bytes(b"")
    rc, err = _run(capsys, "convert", str(empty), "--out", str(tmp_path / "out"))
    assert rc == 2
    line = _one_line(err)
    assert str(empty) in line and "empty (0 bytes)" in line and "missing topic" not in line
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    # `bag info` on it: the same one line
    rc, err = _run(capsys, "info", str(empty))
    assert rc == 2 and "empty (0 bytes)" in _one_line(err)
    # --debug: the traceback (the exception propagates)
    from bora_trainer.data.bag_io import BagReadError

    with pytest.raises(BagReadError):
        main(["--debug", "convert", str(empty), "--out", str(tmp_path / "out")])
    with pytest.raises(BagReadError):
        main(["convert", str(empty), "--out", str(tmp_path / "out"), "--debug"])
    rc, err = _run(capsys, "convert", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert rc == 2 and "no such bag directory or file" in _one_line(err)


def test_a_bad_rewards_file_is_an_input_error(tmp_path, bag, capsys):
    rc, err = _run(capsys, "convert", str(bag), "--out", str(tmp_path / "out"), "--rewards", str(tmp_path / "r.yaml"))
    assert rc == 2 and str(tmp_path / "r.yaml") in _one_line(err)
    assert not (tmp_path / "out").exists()


def _write_msgs(path, msgs):
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_io import open_writer

    ts = S.build_typestore()
    w = open_writer(path, "mcap")
    conns = {t: w.add_connection(t, mt, typestore=ts) for t, mt in S.TOPIC_TYPES.items()}
    for topic, t, m in msgs:
        w.write(conns[topic], t, bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[topic])))
    w.close()


def test_one_unusable_message_is_dropped_and_one_unusable_episode_fails_alone(tmp_path, capsys):
    import numpy as np

    from bora_policy.common.episodes import read_episode
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_convert import ConversionError, convert
    from bora_trainer.data.synthetic_bag import scripted_messages

    msgs = scripted_messages([ScriptedEpisode(1, 10, "success"), ScriptedEpisode(2, 8, "failure")], LAY)
    for topic, _, m in msgs:
        if topic == S.T_OBSERVATION and (m.episode_id == 2 or m.step == 4):
            for img in m.depth:
                img.encoding = "yuv422"  # episode 2: every depth image unusable; episode 1: step 4's
        if topic == S.T_EXECUTED and m.command.episode_id == 1 and m.command.step == 6:
            m.command.position = m.command.position[:3]  # 3 joint values instead of 9
    _write_msgs(tmp_path / "bag", msgs)
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    assert [(e.source_episode_id, e.status) for e in rep.episodes] == [(1, "written"), (2, "failed")]
    assert "image encoding 'yuv422' not supported" in rep.episodes[1].warnings[0]
    arrays, info = read_episode(tmp_path / "out", rep.episodes[0].episode_id, load_images=False)
    assert np.flatnonzero(~arrays["obs_valid"]).tolist() == [4] and np.flatnonzero(~arrays["valid"]).tolist() == [6]
    w = info["warnings"]
    assert any("1 unusable Observation(s) (step 4)" in x for x in w)
    assert any("1 unusable ExecutedCommand(s) (step 6) dropped (step 6: 3 joint values, expected 9)" in x for x in w)
    # the CLI: exit 0, the failure said on stderr
    rc, err = _run(capsys, "convert", str(tmp_path / "bag"), "--out", str(tmp_path / "out2"))
    assert rc == 0 and "not supported" in err and "Traceback" not in err
    # a bag with only the unusable episode: nothing convertible = an input error, one line, exit 2
    _write_msgs(tmp_path / "bad", [x for x in msgs if (x[2].command if x[0] == S.T_EXECUTED else x[2]).episode_id == 2])
    with pytest.raises(ConversionError, match="not supported"):
        convert([tmp_path / "bad"], tmp_path / "out3")
    rc, err = _run(capsys, "convert", str(tmp_path / "bad"), "--out", str(tmp_path / "out3"))
    assert rc == 2 and "yuv422" in _one_line(err) and not (tmp_path / "out3").exists()


def test_an_observation_whose_positions_do_not_fit_its_joint_names_is_dropped(tmp_path):
    """The state is built by the ObservationProcessor, which checks the joint counts: an Observation with
    one hand position missing becomes obs_valid = false with the reason, the other steps keep their
    [arm q, hand q] states exactly as recorded."""
    import numpy as np

    from bora_policy.common.episodes import read_episode
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_convert import convert
    from bora_trainer.data.synthetic_bag import scripted_messages

    msgs = scripted_messages([ScriptedEpisode(1, 6, "success")], LAY)
    want = {}
    for topic, _, m in msgs:
        if topic == S.T_OBSERVATION:
            want[m.step] = np.float32(list(m.arm.position) + list(m.hand.position))
            if m.step == 2:
                m.hand.position = m.hand.position[:1]  # 1 value for 2 hand joint names
    _write_msgs(tmp_path / "bag", msgs)
    rep = convert([tmp_path / "bag"], tmp_path / "out")
    arrays, info = read_episode(tmp_path / "out", rep.episodes[0].episode_id, load_images=False)
    assert np.flatnonzero(~arrays["obs_valid"]).tolist() == [2]
    assert any("hand positions have 1 joints, expected 2" in x for x in info["warnings"])
    for s in (0, 1, 3, 4, 5):
        np.testing.assert_array_equal(arrays["state"][s], want[s])
