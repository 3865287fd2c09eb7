"""Issue 16, live trainer side: the recorder stops mid-episode and is restarted into a new bag while the
trainer loop follows the recordings directory. The episode reaches the online buffer exactly once and
whole: not its partial version and then the merged one. Real ``bora record`` processes over loopback DDS
(stopped by SIGKILL: no footer, no metadata.yaml; or by SIGINT: a closed bag holding a partial episode);
the expectation is the conversion of the same episode written directly with the rosbags library.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import rclpy  # noqa: E402
from test_recorder import _publish_all, _start  # noqa: E402
from test_trainer_node import LAY, NORM, make_loop, setup_dirs  # noqa: E402

from bora_trainer.data import bag_schema as S  # noqa: E402
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions  # noqa: E402
from bora_trainer.data.synthetic_bag import ScriptedEpisode, scripted_messages, write_scripted_bag  # noqa: E402
from bora_trainer.ingest import REPLAY_FIELDS  # noqa: E402

SESSION = "66666666-6666-4666-8666-666666666666"
EP = ScriptedEpisode(1, 16, "success", [(3, 11, 9)], session_id=SESSION)  # 16 steps, k = 4: 4 chunks
CUT = 7  # messages of steps < 7 are written before the recorder stops (mid-takeover)


@pytest.fixture(scope="module")
def node():
    rclpy.init()
    n = rclpy.create_node("bora_trainer_recorder_restart_test")
    yield n
    n.destroy_node()
    rclpy.try_shutdown()


def _step(topic, m):
    return int(m.command.step) if topic == S.T_EXECUTED else int(m.step)


def _stop(proc, sig):
    proc.send_signal(sig)
    proc.wait(timeout=20)


@pytest.mark.parametrize("stop", ["sigkill", "sigint"])
def test_trainer_ingests_an_episode_split_by_a_recorder_restart_once_and_whole(node, tmp_path, stop):
    setup_dirs(tmp_path)
    msgs = scripted_messages([EP], LAY)
    before = [(t, n, m) for t, n, m in msgs if _step(t, m) < CUT and not (t == S.T_INTERVENTION and m.kind != 0)]
    after = [x for x in msgs if x not in before]
    assert before and after
    rec = tmp_path / "recordings"
    loop = make_loop(tmp_path)

    proc = _start(rec / "rec1")
    try:
        _publish_all(node, rec / "rec1", before)  # returns once all of them are in the file
    finally:
        _stop(proc, signal.SIGKILL if stop == "sigkill" else signal.SIGINT)
    assert (rec / "rec1" / "metadata.yaml").exists() == (stop == "sigint")
    # the partial episode (no outcome) waits: nothing in the buffer, nothing in the ledger
    assert loop.scan() == 0 and len(loop.online) == 0 and loop.ledger == {}

    proc = _start(rec / "rec2")
    try:
        _publish_all(node, rec / "rec2", after)
        assert loop.scan() == 1  # rec2 still being written: its episode has an outcome -> both parts, once
    finally:
        _stop(proc, signal.SIGINT)
    assert loop.scan() == 0  # rec2 closed and converted again: the same episode, not ingested again
    restarted = make_loop(tmp_path)  # a restarted trainer re-reads every bag: still once
    assert restarted.scan() == 0

    # expectation: the same episode written directly into one bag, converted the same way
    write_scripted_bag(tmp_path / "direct", [EP], LAY)
    rep = convert([tmp_path / "direct"], tmp_path / "want", ConvertConfig(transitions_only=True))
    want, info = read_transitions(tmp_path / "want", rep.episodes[0].episode_id)
    assert (info["num_steps"], info["outcome"], len(want["z"])) == (16, "success", 4)
    for lp in (loop, restarted):
        got = lp.online.arrays()
        assert len(lp.online) == 4 and len(lp.ledger) == 1
        (entry,) = lp.ledger.values()
        assert (entry["session_id"], entry["source_episode_id"]) == (SESSION, 1)
        assert (entry["num_steps"], entry["rows"], entry["outcome"]) == (16, 4, "success")
        assert entry["content_hash"] == rep.episodes[0].content_hash  # every message of both parts
        for k in REPLAY_FIELDS:
            if k in want and k != "episode":
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        np.testing.assert_array_equal(got["action"], NORM.normalize_action(want["action_physical"]))
        assert got["is_intervention"].sum() == 11 - 3  # the takeover's steps 3..10, across the cut
