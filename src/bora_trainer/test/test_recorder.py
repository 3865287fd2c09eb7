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
