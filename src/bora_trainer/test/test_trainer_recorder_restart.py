"""Issue 16, live trainer side: the recorder stops mid-episode and is restarted into a new bag while the
trainer loop follows the recordings directory. The episode reaches the online buffer exactly once and
whole: not its partial version and then the merged one. Real ``bora record`` processes over loopback DDS
(stopped by SIGKILL: no footer, no metadata.yaml; or by SIGINT: a closed bag holding a partial episode);
the expectation is the conversion of the same episode written directly with the rosbags library.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import rclpy  # noqa: E402
from test_recorder import _publish_all, _start  # noqa: E402
from test_trainer_node import LAY, NORM, make_loop, setup_dirs  # noqa: E402

from bora_trainer.data import bag_schema as S  # noqa: E402
from bora_trainer.data.bag_convert import ConvertConfig, convert, read_transitions  # noqa: E402
from bora_trainer.data.synthetic_bag import ScriptedEpisode, scripted_messages, write_scripted_bag  # noqa: E402
from bora_trainer.online.env_ros import REPLAY_FIELDS  # noqa: E402

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


def _readers(node) -> set[bytes]:
    """GIDs of the graph's subscriptions on the recorded topics (a SIGKILLed recorder's stay until their
    DDS lease expires, so a publisher's match count alone cannot tell that the new recorder is there)."""
    return {bytes(i.endpoint_gid) for t in S.TOPIC_TYPES for i in node.get_subscriptions_info_by_topic(t)}


def _start_after(node, out, stale: set[bytes]):
    """Start a recorder and wait until each recorded topic has a subscription that is not in ``stale`` (also
    the first recorder of a test: an earlier test's killed recorder may still be in the graph)."""
    proc = _start(out)
    deadline = time.monotonic() + 20
    while not all(
        {bytes(i.endpoint_gid) for i in node.get_subscriptions_info_by_topic(t)} - stale for t in S.TOPIC_TYPES
    ):
        assert time.monotonic() < deadline, "the restarted recorder's subscriptions were not discovered"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("stop", ["sigkill", "sigint"])
def test_trainer_ingests_an_episode_split_by_a_recorder_restart_once_and_whole(node, tmp_path, stop):
    setup_dirs(tmp_path)
    msgs = scripted_messages([EP], LAY)
    before = [(t, n, m) for t, n, m in msgs if _step(t, m) < CUT and not (t == S.T_INTERVENTION and m.kind != 0)]
    after = [x for x in msgs if x not in before]
    assert before and after
    rec = tmp_path / "recordings"
    loop = make_loop(tmp_path)

    proc = _start_after(node, rec / "rec1", _readers(node))
    try:
        _publish_all(node, rec / "rec1", before)  # returns once all of them are in the file
        stale = _readers(node)
    finally:
        _stop(proc, signal.SIGKILL if stop == "sigkill" else signal.SIGINT)
    assert (rec / "rec1" / "metadata.yaml").exists() == (stop == "sigint")
    # the partial episode (no outcome) waits: nothing in the buffer, nothing in the ledger
    assert loop.collect() == 0 and len(loop.online) == 0 and loop.ledger == {}

    proc = _start_after(node, rec / "rec2", stale)
    try:
        _publish_all(node, rec / "rec2", after)
        assert loop.collect() == 1  # rec2 still being written: its episode has an outcome -> both parts, once
    finally:
        _stop(proc, signal.SIGINT)
    assert loop.collect() == 0  # rec2 closed and converted again: the same episode, not ingested again
    restarted = make_loop(tmp_path)  # a restarted trainer re-reads every bag: still once
    assert restarted.collect() == 0

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


def _episode_of(topic, m):
    return int(m.command.episode_id) if topic == S.T_EXECUTED else int(m.episode_id)


@pytest.mark.parametrize("stop", ["sigkill", "sigint"])
def test_trainer_node_following_a_recording_whose_recorder_is_killed_and_restarted(node, tmp_path, stop):
    """The real trainer node watches the recordings while ``bora record`` is SIGKILLed (or stopped by SIGINT:
    a closed bag with a partial episode) mid-episode 2 and a new recorder takes over: episodes 1-3 are each
    ingested once, whole (content hashes of the same episodes written directly), and every published
    message is in one of the two bags."""
    import json

    import yaml
    from test_trainer_node import _start_node, _status, trainer_cfg

    from bora_trainer.data.bag_io import read_bag

    setup_dirs(tmp_path)
    eps = [
        ScriptedEpisode(1, 16, "success", session_id=SESSION),
        ScriptedEpisode(2, 16, "failure", [(3, 11, None)], session_id=SESSION),
        ScriptedEpisode(3, 16, "success", session_id=SESSION),
    ]
    msgs = scripted_messages(eps, LAY)
    ep = [_episode_of(t, m) for t, _, m in msgs]
    before = [x for x, e in zip(msgs, ep) if e == 1 or (e == 2 and _step(x[0], x[2]) < CUT)]
    after = [x for x in msgs if x not in before]
    cfg = trainer_cfg(tmp_path, online={"batch_size": 16, "n_start": 10_000, "residual": {"hidden_dims": [32]}})
    cfg_file = tmp_path / "trainer.yaml"
    cfg_file.write_text(yaml.safe_dump({"trainer": cfg}))
    rec = tmp_path / "recordings"

    def wait_episodes(n, proc, timeout=40.0):
        deadline = time.monotonic() + timeout
        while _status(tmp_path).get("episodes", 0) < n:
            assert proc.poll() is None, "the trainer node exited"
            assert time.monotonic() < deadline, f"trainer status {_status(tmp_path)}, expected {n} episodes"
            time.sleep(0.1)

    trainer, started = _start_node(tmp_path, cfg_file)
    assert started["episodes"] == 0
    try:
        proc = _start_after(node, rec / "rec1", _readers(node))
        try:
            _publish_all(node, rec / "rec1", before)
            stale = _readers(node)
        finally:
            _stop(proc, signal.SIGKILL if stop == "sigkill" else signal.SIGINT)  # mid-write of episode 2
        wait_episodes(1, trainer)
        time.sleep(1.0)  # several polls: the partial episode 2 stays out
        assert _status(tmp_path)["episodes"] == 1
        proc = _start_after(node, rec / "rec2", stale)
        try:
            _publish_all(node, rec / "rec2", after)
            wait_episodes(3, trainer)
        finally:
            _stop(proc, signal.SIGINT)
        time.sleep(1.0)  # the closed rec2 converted again: nothing new
    finally:
        trainer.send_signal(signal.SIGINT)
        out, _ = trainer.communicate(timeout=30)
    stopped = json.loads([ln for ln in out.splitlines() if '"stopped"' in ln][-1])
    assert stopped["episodes"] == 3 and stopped["buffer_size"] == 3 * 4
    assert len(read_bag(rec / "rec1").messages) + len(read_bag(rec / "rec2").messages) == len(msgs)
    write_scripted_bag(tmp_path / "direct", eps, LAY)
    want = convert([tmp_path / "direct"], tmp_path / "want", ConvertConfig(transitions_only=True))
    ledger = json.loads((tmp_path / "state" / "ingested.json").read_text())
    got = sorted((v["source_episode_id"], v["session_id"], v["content_hash"], v["rows"]) for v in ledger.values())
    assert got == [(e.source_episode_id, SESSION, e.content_hash, 4) for e in want.episodes]
