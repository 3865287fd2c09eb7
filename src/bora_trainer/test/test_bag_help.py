"""`bora bag convert` keeps help requests and the executed steps' critic values in the episode JSON
(issue 19), and `bora help calibrate` reads them back: hand-placed values, hand-computed expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bora_policy.runtime.help_calibration import load_monitor_config, main, read_episodes
from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import convert
from bora_trainer.data.bag_help import T_HELP, T_VALUE, TYPES
from bora_trainer.data.bag_io import open_writer
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, scripted_messages

LAY = BagLayout()
SESSION = ScriptedEpisode(1, 1).session_id


def write_bag(path, with_help=True):
    eps = [ScriptedEpisode(1, 10, "success"), ScriptedEpisode(2, 8, "failure")]
    ts = S.build_typestore()
    msgs = scripted_messages(eps, LAY)
    t0 = max(t for _, t, _ in msgs) + 1
    VE, HR = ts.types["bora_msgs/msg/ValueEstimate"], ts.types["bora_msgs/msg/HelpRequest"]
    hdr = ts.types["std_msgs/msg/Header"]
    stamp = ts.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0)

    def value(ep, step, q):
        q = np.asarray(q, np.float32)
        return VE(header=hdr(stamp=stamp, frame_id=""), episode_id=ep, session_id=SESSION, step=step, q=q,
                  v=q - np.float32(0.5), advantage=np.full(len(q), 0.5, np.float32), critic_version="c")

    extra = [
        # episode 1: estimates at steps 0 and 6 (4 values each): steps 0-3 from the first, 6-9 from the second
        (T_VALUE, value(1, 0, [1.0, 0.9, 0.8, 0.7])),
        (T_VALUE, value(1, 6, [0.6, 0.5, 0.4, 0.3])),
        # episode 2: one at step 2 overwritten from step 4 on by the next
        (T_VALUE, value(2, 2, [0.2, 0.1, 0.0, -0.1])),
        (T_VALUE, value(2, 4, [-0.2, -0.3, -0.4, -0.5])),
    ]
    if with_help:
        extra += [
            (T_HELP, HR(header=hdr(stamp=stamp, frame_id=""), episode_id=2, session_id=SESSION, step=5,
                        reason="low_value", value=-0.3, threshold=0.05, predicted_steps_to_failure=2)),
            (T_HELP, HR(header=hdr(stamp=stamp, frame_id=""), episode_id=2, session_id=SESSION, step=9,
                        reason="low_value", value=-0.5, threshold=0.05, predicted_steps_to_failure=-1)),
        ]
    msgs += [(topic, t0 + i, m) for i, (topic, m) in enumerate(extra)]
    types = {**S.TOPIC_TYPES, **TYPES}
    w = open_writer(path)
    conns = {topic: w.add_connection(topic, types[topic], typestore=ts) for topic in types}
    for topic, t, m in msgs:
        w.write(conns[topic], t, bytes(ts.serialize_cdr(m, types[topic])))
    w.close()


def test_converter_keeps_requests_and_values(tmp_path):
    write_bag(tmp_path / "bag")
    convert([tmp_path / "bag"], tmp_path / "out")
    files = sorted((tmp_path / "out" / "episodes").glob("episode_*.json"))
    info = {d["source_episode_id"]: d for d in (json.loads(f.read_text()) for f in files)}
    assert info[1]["help_requests"] == []
    assert info[1]["critic_q"] == pytest.approx([1.0, 0.9, 0.8, 0.7, None, None, 0.6, 0.5, 0.4, 0.3])
    assert info[1]["critic_v"][0] == pytest.approx(0.5)
    assert info[2]["critic_q"] == pytest.approx([None, None, 0.2, 0.1, -0.2, -0.3, -0.4, -0.5])
    # the request at step 9 lies past the episode's end (8): left out with a warning
    assert info[2]["help_requests"] == [{"step": 5, "reason": "low_value", "value": pytest.approx(-0.3),
                                         "threshold": pytest.approx(0.05), "predicted_steps_to_failure": 2}]
    assert any("help request(s) at or after the end step 8" in w for w in info[2]["warnings"])
    # calibration straight from the converted episodes: one success (min q after grace 0, persist 1: 0.3)
    eps = read_episodes([str(tmp_path / "out")])
    assert sorted((e.success, len(e.signal)) for e in eps) == [(False, 6), (True, 8)]
    assert main(["calibrate", str(tmp_path / "out"), "--out", str(tmp_path / "h.json"), "--false-rate", "0",
                 "--persist-steps", "1", "--grace-steps", "0"]) == 0
    c = load_monitor_config(tmp_path / "h.json", "pick_plush_toy")
    assert c.threshold == pytest.approx(0.3)
    # failure level: median of the failed episode's last 5 valued steps (0.1, -0.2, -0.3, -0.4, -0.5)
    assert c.failure_value == pytest.approx(-0.3)


def test_recording_without_help_topics_converts_with_empty_fields(tmp_path):
    from bora_trainer.data.synthetic_bag import write_scripted_bag

    write_scripted_bag(tmp_path / "bag", [ScriptedEpisode(1, 6, "success")], LAY)
    convert([tmp_path / "bag"], tmp_path / "out")
    (f,) = (tmp_path / "out" / "episodes").glob("episode_*.json")
    d = json.loads(f.read_text())
    assert d["help_requests"] == [] and d["critic_q"] is None
