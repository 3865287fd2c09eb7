"""A live trainer node restarted after a crash, against the bridge's latched outcomes (real processes, loopback
DDS): the outcomes published while it was down reach it through the transient-local history
(bora_policy/common/episode_events.py, the bridge's own publishers), the episodes whose outcome no recording holds are
skipped (one log line each) and the round gate moves on; an episode that has started and not ended is not skipped.
A volatile subscriber of the latched topic still matches (existing subscribers are unaffected).
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import rclpy
import yaml
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import UInt32
from test_trainer_node import LAY, T_EP, _start_node, _status, setup_dirs, trainer_cfg

from bora_msgs.msg import EpisodeEvent
from bora_policy.common.episode_events import EpisodeEvents
from bora_trainer.data.synthetic_bag import ScriptedEpisode, write_scripted_bag

SESSION = "77777777-7777-4777-8777-777777777777"


def test_a_restarted_live_trainer_node_skips_what_ended_while_it_was_down_and_the_gate_moves_on(tmp_path):
    setup_dirs(tmp_path)
    rec = tmp_path / "recordings"
    eps = [ScriptedEpisode(1, T_EP, "success", session_id=SESSION),
           ScriptedEpisode(2, T_EP, "failure", session_id=SESSION),
           ScriptedEpisode(3, 6, None, session_id=SESSION)]
    write_scripted_bag(rec / "live_1", eps, LAY)
    (rec / "live_1" / "metadata.yaml").unlink()  # the killed trainer's recording: 1, 2 and the start of 3
    cfg_file = tmp_path / "trainer.yaml"
    cfg_file.write_text(yaml.safe_dump({"trainer": trainer_cfg(tmp_path, late_message_wait_s=1.0)}))
    ns = f"/restart_{uuid.uuid4().hex[:8]}"  # this test's own topics
    gate_topic, ended_topic = f"{ns}/gate", f"{ns}/episode/ended"

    rclpy.init()
    node = rclpy.create_node("trainer_restart_ends_probe")
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    gates, volatile = [], []
    node.create_subscription(UInt32, gate_topic, lambda m: gates.append(int(m.data)), latched)
    node.create_subscription(EpisodeEvent, ended_topic, lambda m: volatile.append(int(m.episode_id)),
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    bridge = EpisodeEvents(node, EpisodeEvent, f"{ns}/episode", f"{ns}/episode/current", ended_topic)
    deadline = time.monotonic() + 20
    while bridge.ended.get_subscription_count() == 0:  # the volatile probe is matched
        assert time.monotonic() < deadline, "the volatile subscriber of the latched topic never matched"
        rclpy.spin_once(node, timeout_sec=0.05)
    # while the trainer was down: the rest of 3 and all of 4 (the gate was 4); then the robot waits
    for i, kind in ((1, EpisodeEvent.SUCCESS), (2, EpisodeEvent.FAILURE), (3, EpisodeEvent.SUCCESS),
                    (4, EpisodeEvent.ABORT)):
        bridge.publish(EpisodeEvent(episode_id=i, session_id=SESSION, kind=EpisodeEvent.START))
        bridge.publish(EpisodeEvent(episode_id=i, session_id=SESSION, kind=kind, step=T_EP))

    def spin_until(cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            assert trainer.poll() is None, "the trainer node exited"
            assert time.monotonic() < deadline, f"{what}: gates {gates}, status {_status(tmp_path)}"
            rclpy.spin_once(node, timeout_sec=0.05)

    err_path = tmp_path / "trainer.err"
    with err_path.open("w") as err:
        trainer, _ = _start_node(tmp_path, cfg_file, ["--live", "--episode-gate-topic", gate_topic,
                                                      "--episode-ended-topic", ended_topic, "--gate-timeout-s", "0"],
                                 stderr=err)
        try:
            spin_until(lambda: gates and gates[-1] == 6, 60, "the gate did not move on to 6")
            assert _status(tmp_path).get("episodes") == 2 and max(gates) == 6
            bridge.publish(EpisodeEvent(episode_id=5, session_id=SESSION, kind=EpisodeEvent.START))  # 5 runs
            t_end = time.monotonic() + 4.0  # > late_message_wait_s and several polls
            spin_until(lambda: time.monotonic() > t_end, 10, "")
            assert gates[-1] == 6  # 5 was not skipped (that would let a 7th start)
        finally:
            trainer.send_signal(signal.SIGINT)
            out, _ = trainer.communicate(timeout=30)
            node.destroy_node()
            rclpy.try_shutdown()
    assert volatile == [1, 2, 3, 4]
    stopped = json.loads([ln for ln in out.splitlines() if '"stopped"' in ln][-1])
    assert stopped["episodes"] == 2
    lines = err_path.read_text().splitlines()
    said = [ln for ln in lines if "ended but no recording holds its outcome" in ln]
    assert len(said) == 2 and "id 3)" in said[0] and "id 4)" in said[1], said
