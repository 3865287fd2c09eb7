"""`bora viz --live` as a real process over DDS: best-effort subscriptions, the graph's messages in the .rrd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import rclpy  # noqa: E402  (installed by make setup; a missing rclpy is a failure, not a skip)
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bora_trainer.data import bag_schema as S  # noqa: E402
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode  # noqa: E402
from bora_trainer.nodes.msg_types import import_msg_class  # noqa: E402
from bora_trainer.viz.readback import rrd_rows, scalar_series, texts  # noqa: E402
from bora_trainer.viz.sample import write_sample_bag  # noqa: E402

TYPES = dict(S.TOPIC_TYPES, **{"/bora/value": "bora_msgs/msg/ValueEstimate",
                               "/bora/checkpoint": "bora_msgs/msg/CheckpointInfo"})


def test_live_node_logs_the_graph_best_effort(tmp_path):
    msgs = write_sample_bag(tmp_path / "bag", BagLayout(cameras=("front",), image_hw=(8, 10)),
                            [ScriptedEpisode(0, 8, "success", takeovers=[(2, 5, 4)])])
    rrd = tmp_path / "live.rrd"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from bora_trainer.viz.cli import main; sys.exit(main())",
         "--live", "--save", str(rrd), "--duration", "120"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    rclpy.init()
    node = rclpy.create_node("bora_viz_live_test")
    try:
        ts = S.build_typestore()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # the graph's publishers
        pubs = {t: node.create_publisher(import_msg_class(ty), t, qos) for t, ty in TYPES.items()}
        cam = node.create_publisher(Image, "/cameras/front/color/image_raw", qos)
        deadline = time.monotonic() + 60
        while any(p.get_subscription_count() == 0 for p in [*pubs.values(), cam]):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "viz subscriptions not discovered"
            rclpy.spin_once(node, timeout_sec=0.05)
        for topic in ("/bora/value", "/bora/episode", "/cameras/front/color/image_raw"):
            infos = node.get_subscriptions_info_by_topic(topic)
            assert infos and all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos), topic
        time.sleep(0.5)
        for topic, _, m in msgs:
            pubs[topic].publish(bytes(ts.serialize_cdr(m, TYPES[topic])))
            time.sleep(0.02)  # the viewer's queue is 5 deep and best-effort: paced, none should drop
        img = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
        cam.publish(img)
        time.sleep(2.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, err
    rows = rrd_rows(rrd)
    q = scalar_series(rows["value/q"])
    assert sorted(q) == list(range(8)) and np.allclose([q[t] for t in range(8)], 0.8 - 0.02 * np.arange(8))
    assert [t for t, b in sorted(scalar_series(rows["takeover/beta"]).items()) if b == 1.0] == [2, 3, 4]
    assert [s for s, _ in texts(rows["events/takeover"])] == [2, 4, 5]
    assert scalar_series(rows["episode/outcome"]) == {8: 1.0}
    assert len(texts(rows["events/checkpoint"])) == 1
    (raw,) = rows["cameras/front/color"]  # from the raw topic (live: not from /bora/observation)
    assert np.array_equal(np.frombuffer(bytes(raw["Image:buffer"][0]), np.uint8), np.arange(18))
    assert len(rows["robot/state"]) == 8
