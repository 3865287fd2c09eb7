"""`bora viz`: recordings and episode datasets into a Rerun recording, read back with the Rerun SDK.

Expectations are the closed forms of the sample recording (bora_trainer.viz.sample and
data/synthetic_bag.py), not values taken from the logger.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

import numpy as np
import pytest

from bora_policy.common.episodes import DatasetMeta, write_episode
from bora_trainer.viz.cli import main
from bora_trainer.viz.log import StepClock, image_array
from bora_trainer.viz.readback import rrd_rows, scalar_series, texts
from bora_trainer.viz.sample import CHECKPOINT_PATH, write_sample_bag


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("viz")
    write_sample_bag(d / "bag")
    rrd = d / "sample.rrd"
    assert main(["--bag", str(d / "bag"), "--save", str(rrd)]) == 0
    return d, rrd_rows(rrd)


def test_bag_entities_on_one_step_timeline(sample):
    _, rows = sample
    for cam in ("left", "front", "right"):
        assert len(rows[f"cameras/{cam}/color"]) == 24 + 16
        assert len(rows[f"cameras/{cam}/depth"]) == 24 + 16
    # episode 0 has steps 0..24 (terminal event at 24); episode 1 starts at global step 25
    q = scalar_series(rows["value/q"])
    expect = {t: 0.8 - 0.02 * t for t in range(24)} | {25 + t: 0.8 - 0.02 * t for t in range(16)}
    assert q.keys() == expect.keys()
    assert all(abs(q[k] - expect[k]) < 1e-6 for k in expect)
    v = scalar_series(rows["value/v"])
    assert all(abs(v[k] - (expect[k] - 0.05)) < 1e-6 for k in expect)
    assert np.allclose(list(scalar_series(rows["value/advantage"]).values()), 0.05)
    # v(z_t, 0): one point per chunk of 4 steps
    v0 = scalar_series(rows["value/v0"])
    assert sorted(v0) == [0, 4, 8, 12, 16, 20, 25, 29, 33, 37]
    assert v0[20] == pytest.approx(0.8 - 0.02 * 20 - 0.05)
    bars = [r for r in rows["value/chunk_q"] if r.get("step") == 8]
    assert np.allclose(bars[0]["BarChart:values"][0]["buffer"], 0.8 - 0.02 * np.arange(8, 12), atol=1e-6)


def test_bag_residual_takeover_events(sample):
    _, rows = sample
    # residual = 0.1 in each of 9 joints -> |r_i| = 0.3; alpha = residual_scale = 0.2
    assert np.allclose(list(scalar_series(rows["residual/magnitude"]).values()), 0.3)
    assert len(scalar_series(rows["residual/magnitude"])) == 40
    assert np.allclose(list(scalar_series(rows["residual/alpha"]).values()), 0.2)
    beta = scalar_series(rows["takeover/beta"])
    assert [t for t, b in sorted(beta.items()) if b == 1.0] == list(range(8, 14))
    assert texts(rows["events/takeover"]) == [
        (8, "takeover START (episode 0, step 8): scripted"),
        (12, "takeover RECOVERED (episode 0, step 12): recovered"),
        (14, "takeover END (episode 0, step 14)"),
    ]
    assert scalar_series(rows["episode/outcome"]) == {24: 1.0, 41: 0.0}
    ev = texts(rows["events/episode"])
    assert [e[0] for e in ev] == [0, 24, 25, 41] and "SUCCESS" in ev[1][1] and "FAILURE" in ev[3][1]
    (ck,) = texts(rows["events/checkpoint"])
    assert CHECKPOINT_PATH in ck[1] and "residual round 1 update 500" in ck[1]


def test_bag_camera_pixels(sample):
    _, rows = sample
    from bora_trainer.viz.sample import _picture

    r = next(r for r in rows["cameras/front/depth"] if r["step"] == 30)  # episode 1, step 5
    depth = np.frombuffer(bytes(r["DepthImage:buffer"][0]), np.float32)
    assert np.allclose(depth, 0.5 + 0.01 * 5)
    r = next(r for r in rows["cameras/right/color"] if r["step"] == 3)
    img = np.frombuffer(bytes(r["Image:buffer"][0]), np.uint8).reshape(48, 64, 3)
    assert np.array_equal(img, _picture(48, 64, 3, 2))


def test_dataset_episode(tmp_path):
    meta = DatasetMeta(fps=10.0, camera_names=["front"], image_size=[4, 6],
                       arm_joint_names=["a0", "a1"], hand_joint_names=["h0"], tasks=["t"])
    T = 12
    inter = np.zeros(T, bool)
    inter[3:7] = True
    base = np.zeros((T, 3), np.float32)
    arrays = {
        "color": np.full((T, 1, 4, 6, 3), 7, np.uint8), "depth": np.full((T, 1, 4, 6), 0.4, np.float32),
        "state": np.zeros((T, 3)), "action": np.zeros((T, 3)), "is_intervention": inter,
        "beta": inter.astype(np.float32), "reward": np.zeros(T), "done": np.arange(T) == T - 1,
        "base_action": base, "policy_action": base + np.array([0.3, 0.0, 0.4], np.float32),
        "value": np.linspace(1.0, 0.0, T)[:, None].astype(np.float32),
    }
    write_episode(tmp_path / "ds", 5, arrays, {"outcome": "failure", "task": "t"}, meta)
    rrd = tmp_path / "ds.rrd"
    assert main(["--dataset", str(tmp_path / "ds"), "--episode", "5", "--save", str(rrd)]) == 0
    rows = rrd_rows(rrd)
    assert len(rows["cameras/front/color"]) == T
    assert scalar_series(rows["takeover/beta"]) == {t: float(inter[t]) for t in range(T)}
    assert texts(rows["events/takeover"]) == [(3, "takeover START (episode 5, step 3)"),
                                              (7, "takeover END (episode 5, step 7)")]
    assert np.allclose(list(scalar_series(rows["residual/magnitude"]).values()), 0.5)  # |(0.3, 0, 0.4)|
    v = scalar_series(rows["value/v"])
    assert v[0] == pytest.approx(1.0) and v[T - 1] == pytest.approx(0.0)
    assert scalar_series(rows["episode/outcome"]) == {T: 0.0}


def test_step_clock_blocks():
    c = StepClock()
    assert c.at("s", 0, 0) == 0 and c.at("s", 0, 9) == 9
    assert c.at("s", 1, 0) == 10 and c.at("s", 1, 3) == 13
    assert c.at("s", 0, 4) == 4  # a late message of episode 0 keeps its block
    assert c.at("other", 0, 2) == 16  # another session's episode 0 is a new block after step 13


def _img(enc, h, w, data, step, big=False):
    return SimpleNamespace(height=h, width=w, step=step, encoding=enc, is_bigendian=big, data=data)


def test_image_array_encodings():
    bgr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.concatenate([bgr.reshape(2, 9), np.zeros((2, 3), np.uint8)], 1).ravel()  # step 12 > 9
    out = image_array(_img("bgr8", 2, 3, padded.tobytes(), 12))
    assert np.array_equal(out, bgr[..., ::-1])
    mm = np.array([[1000, 2500]], np.uint16)
    assert np.allclose(image_array(_img("16UC1", 1, 2, mm.tobytes(), 4)), [[1.0, 2.5]])
    with pytest.raises(ValueError, match="yuv422"):
        image_array(_img("yuv422", 1, 2, b"\0" * 4, 4))
    with pytest.raises(ValueError, match="data bytes"):
        image_array(_img("rgb8", 2, 2, b"\0" * 5, 6))


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bora viz: error: "), err
    return err[0]


def test_bad_input_one_line_exit_2(tmp_path, capsys, sample):
    d, _ = sample
    out = str(tmp_path / "x.rrd")
    assert "no-such-bag" in _error(capsys, ["--bag", str(tmp_path / "no-such-bag"), "--save", out])
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "corrupt_0.mcap").write_bytes(b"not an mcap file at all" * 10)
    assert "corrupt" in _error(capsys, ["--bag", str(bad), "--save", out])
    assert "meta.json" in _error(capsys, ["--dataset", str(tmp_path), "--save", out])
    assert "/bora/nothing not recorded" in _error(
        capsys, ["--bag", str(d / "bag"), "--topics", "/bora/nothing", "--save", out])
    assert "nothing to do" in _error(capsys, ["--bag", str(d / "bag")])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert f"--port {port}" in _error(capsys, ["--bag", str(d / "bag"), "--serve", "--port", str(port)])


def test_topic_with_unexpected_type_is_named(tmp_path, capsys):
    from bora_trainer.data import bag_schema as S
    from bora_trainer.data.bag_io import open_writer

    ts = S.build_typestore()
    w = open_writer(tmp_path / "wrong", "mcap")
    c = w.add_connection("/bora/value", "std_msgs/msg/Float32", typestore=ts)
    w.write(c, 1, bytes(ts.serialize_cdr(ts.types["std_msgs/msg/Float32"](data=1.0), "std_msgs/msg/Float32")))
    w.close()
    line = _error(capsys, ["--bag", str(tmp_path / "wrong"), "--save", str(tmp_path / "w.rrd")])
    assert "/bora/value has type std_msgs/msg/Float32, expected bora_msgs/msg/ValueEstimate" in line


def test_report_links_viewer_files_and_tensorboard(tmp_path):
    import json

    from bora_trainer.report import main as report_main

    meta = DatasetMeta(fps=10.0, camera_names=["front"], image_size=[4, 6],
                       arm_joint_names=["a0"], hand_joint_names=["h0"], tasks=["press_button"])
    roll = tmp_path / "runs" / "press_button" / "bora-residual-online" / "rollouts"
    for eid, T in ((0, 5), (1, 7)):
        arrays = {"color": np.zeros((T, 1, 4, 6, 3), np.uint8), "depth": np.zeros((T, 1, 4, 6), np.float32),
                  "state": np.zeros((T, 2)), "action": np.zeros((T, 2)), "is_intervention": np.zeros(T, bool),
                  "beta": np.zeros(T), "reward": np.zeros(T), "done": np.arange(T) == T - 1}
        write_episode(roll, eid, arrays, {"outcome": "success"}, meta)
    (roll.parent / "tb").mkdir()
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "r.json").write_text(json.dumps({
        "method": "BORA-Full", "run": "r", "task": "press_button", "object_set": "standard", "trials": 2,
        "successes": 1, "episodes": [{"seed": 0, "success": True, "steps": 3, "values": [0.1, 0.2, 0.3]},
                                     {"seed": 1, "success": False, "steps": 2, "values": [-0.1, -0.2]}]}))
    out = tmp_path / "report"
    assert report_main([str(ev), "--out", str(out), "--runs", str(tmp_path / "runs")]) == 0
    md = (out / "report.md").read_text()
    rrd = out / "viz" / "press_button-bora-residual-online-last-episode.rrd"
    assert f"online episode 1: [viz/{rrd.name}]" in md and f"--dataset {roll} --episode 1" in md
    assert f"tensorboard --logdir {tmp_path / 'runs'}" in md and "press_button/bora-residual-online" in md
    rows = rrd_rows(rrd)
    assert len(rows["takeover/beta"]) == 7 and scalar_series(rows["episode/outcome"]) == {7: 1.0}  # the last one
    vals = rrd_rows(out / "viz" / "eval_values.rrd")["eval/BORA-Full/press_button/standard/v"]
    got = sorted((r["eval_episode"], r["episode_step"], r["Scalars:scalars"][0]) for r in vals)
    assert [g[:2] for g in got] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert np.allclose([g[2] for g in got], [0.1, 0.2, 0.3, -0.1, -0.2])


def test_demo_names_the_viewer_file_and_tensorboard(tmp_path):
    from bora_trainer.demo.config import load_demo_config
    from bora_trainer.demo.plan import plan
    from bora_trainer.demo.summary import viewer_lines

    assert viewer_lines(tmp_path) == []
    (tmp_path / "report" / "viz").mkdir(parents=True)
    rrd = tmp_path / "report" / "viz" / "press_button-bora-residual-online-last-episode.rrd"
    rrd.write_bytes(b"")
    (tmp_path / "runs" / "press_button" / "bora-residual-online" / "tb").mkdir(parents=True)
    assert viewer_lines(tmp_path) == [f"online episode in the viewer: {rrd}  (open: rerun {rrd})",
                                      f"training curves: tensorboard --logdir {tmp_path / 'runs'}"]
    # an online run through the ROS graph: its rosbag2 recordings (a folder without metadata.yaml is not one)
    recs = tmp_path / "runs" / "press_button" / "bora-residual-online" / "recordings"
    for name in ("live_20261207_151353", "live_20261207_151353_r02", "partial"):
        (recs / name).mkdir(parents=True)
    for name in ("live_20261207_151353", "live_20261207_151353_r02"):
        (recs / name / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    assert viewer_lines(tmp_path)[1] == (f"online recording in the viewer: bora viz --bag "
                                         f"{recs / 'live_20261207_151353_r02'} --serve")
    (job,) = plan(load_demo_config(None, quick=True), tmp_path).stages["report"]
    assert job.argv[-2:] == ["--runs", str(tmp_path / "runs")]
