"""``bora record`` as a real process over DDS: what it records converts exactly like a bag written
directly (same content hashes), after a clean stop and after SIGKILL (no footer, no metadata.yaml).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from bora_trainer.data import bag_schema as S  # noqa: E402
from bora_trainer.data.bag_convert import convert  # noqa: E402
from bora_trainer.data.bag_io import read_bag  # noqa: E402
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, scripted_messages, write_scripted_bag  # noqa: E402
from bora_trainer.nodes.msg_types import import_msg_class  # noqa: E402

LAY = BagLayout()
EPS = [ScriptedEpisode(1, 9, "success", [(2, 5, 4)]), ScriptedEpisode(2, 6, "failure")]


def test_print_topics_lists_the_preset():
    from bora_trainer.nodes.recorder_node import main

    specs = S.load_preset(groups=["bora", "raw"])
    topics = [s.topic for s in specs]
    assert set(S.TOPIC_TYPES) <= set(topics) and "/cameras/front/color/image_raw" in topics
    assert main(["--print-topics", "--groups", "bora"]) == 0


def _start(out):
    cmd = [
        sys.executable,
        "-c",
        "import sys; from bora_trainer.nodes.recorder_node import main; sys.exit(main())",
        "-o",
        str(out),
        "--groups",
        "bora",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ)
    )
    line = proc.stdout.readline()
    assert "ready" in line, line + (proc.stdout.read() if proc.poll() is not None else "")
    return proc


def _publish_all(node, out_dir, msgs):
    ts = S.build_typestore()
    qos = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {t: node.create_publisher(import_msg_class(ty), t, qos) for t, ty in S.TOPIC_TYPES.items()}
    deadline = time.monotonic() + 20
    while any(p.get_subscription_count() == 0 for p in pubs.values()):
        assert time.monotonic() < deadline, "recorder subscriptions not discovered"
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)
    for topic, _, m in msgs:
        pubs[topic].publish(bytes(ts.serialize_cdr(m, S.TOPIC_TYPES[topic])))  # raw CDR, as recorded
        time.sleep(0.002)
    deadline = time.monotonic() + 20
    while len(read_bag(out_dir).messages) < len(msgs):  # the live file is readable while being written
        assert time.monotonic() < deadline, f"recorded {len(read_bag(out_dir).messages)} of {len(msgs)}"
        time.sleep(0.1)
    for p in pubs.values():
        node.destroy_publisher(p)


def _messages():
    return scripted_messages(EPS, LAY)


@pytest.mark.parametrize("stop", ["sigint", "sigkill"])
def test_recorded_bag_converts_like_a_directly_written_one(node, tmp_path, stop):
    write_scripted_bag(tmp_path / "direct", EPS, LAY)
    want = convert([tmp_path / "direct"], tmp_path / "want")
    proc = _start(tmp_path / "rec")
    try:
        _publish_all(node, tmp_path / "rec", _messages())
    finally:
        if stop == "sigkill":
            proc.send_signal(signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    if stop == "sigint":
        assert proc.returncode == 0
        assert (tmp_path / "rec" / "metadata.yaml").exists()
        from rosbags.rosbag2 import Reader

        with Reader(tmp_path / "rec") as r:  # a cleanly closed recording is a standard rosbag2
            assert {c.topic for c in r.connections} >= set(S.TOPIC_TYPES)
    else:
        assert not (tmp_path / "rec" / "metadata.yaml").exists()
    got = convert([tmp_path / "rec"], tmp_path / "got")
    assert [e.content_hash for e in got.episodes] == [e.content_hash for e in want.episodes]
    assert [e.outcome for e in got.episodes] == ["success", "failure"]


def test_a_rolled_recording_splits_at_the_roll_and_converts_like_one_bag(tmp_path):
    """BagRecorder.roll (the trainer node's live recording at each round start): the first bag is closed (its
    metadata.yaml written) and holds what came before the roll, the second what came after, every message once;
    converted together they give the same episodes (content hashes) as one bag written directly."""
    from bora_trainer.data.bag_convert import ConvertConfig
    from bora_trainer.nodes.recorder_node import BagRecorder

    raws = write_scripted_bag(tmp_path / "direct", EPS, LAY)
    specs = [s for s in S.load_preset(groups=["bora"]) if s.topic in S.TOPIC_TYPES]
    rec = BagRecorder(tmp_path / "rec" / "live", specs)
    split = next(i for i, (topic, t, raw) in enumerate(raws) if i > 0 and t >= _episode_start(raws, 2))
    for topic, t, raw in raws[:split]:
        rec.write(topic, raw, t)
    assert not (tmp_path / "rec" / "live" / "metadata.yaml").exists()
    rec.roll(tmp_path / "rec" / "live_r02")
    assert (tmp_path / "rec" / "live" / "metadata.yaml").exists() and rec.path.name == "live_r02"
    for topic, t, raw in raws[split:]:
        rec.write(topic, raw, t)
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.roll(tmp_path / "rec" / "live_r03")
    counts = [sum(1 for _ in read_bag(tmp_path / "rec" / name).messages) for name in ("live", "live_r02")]
    assert counts == [split, len(raws) - split]
    cfg = ConvertConfig(transitions_only=True)
    want = {e.source_episode_id: e.content_hash for e in convert([tmp_path / "direct"], tmp_path / "w", cfg).episodes}
    got = convert([tmp_path / "rec" / "live", tmp_path / "rec" / "live_r02"], tmp_path / "g", cfg).episodes
    assert {e.source_episode_id: e.content_hash for e in got} == want and len(want) == 2


def _episode_start(raws, episode_id):
    """Log time of the START event of ``episode_id`` among written ``(topic, t, raw)``."""
    ts = S.build_typestore()
    for topic, t, raw in raws:
        if topic == S.T_EPISODE:
            m = ts.deserialize_cdr(raw, S.TOPIC_TYPES[topic])
            if int(m.episode_id) == episode_id:
                return t
    raise AssertionError(f"no event of episode {episode_id}")
