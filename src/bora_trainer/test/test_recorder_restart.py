"""Issue 16: the recorder killed mid-episode (SIGKILL: no footer, no metadata.yaml) and restarted into a new
bag. Converted bag by bag with the live trainer's rule (a bag without metadata.yaml is still being written:
``only_complete``), the episode ends up whole: nothing that was written is lost. Real ``bora record``
processes over loopback DDS; the expectation is the conversion of the same episode written directly.
"""

from __future__ import annotations

import signal

import rclpy  # noqa: F401  (installed by make setup; a missing rclpy is a failure, not a skip)
from test_recorder import _publish_all  # noqa: E402
from test_trainer_recorder_restart import _readers, _start_after, _step  # noqa: E402

from bora_trainer.data import bag_schema as S  # noqa: E402
from bora_trainer.data.bag_convert import ConvertConfig, convert  # noqa: E402
from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode, scripted_messages, write_scripted_bag  # noqa: E402

LAY = BagLayout()
EP = ScriptedEpisode(1, 12, "success", [(3, 9, 7)], session_id="55555555-5555-4555-8555-555555555555")


def test_recorder_killed_and_restarted_mid_episode_loses_nothing(node, tmp_path):
    msgs = scripted_messages([EP], LAY)
    before = [(t, n, m) for t, n, m in msgs if _step(t, m) < 6 and not (t == S.T_INTERVENTION and m.kind != 0)]
    after = [x for x in msgs if x not in before]
    # wait for this recorder's own subscriptions: a killed recorder's linger until their DDS lease expires
    proc = _start_after(node, tmp_path / "rec1", _readers(node))
    try:
        _publish_all(node, tmp_path / "rec1", before)  # returns once all of them are in the file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    assert not (tmp_path / "rec1" / "metadata.yaml").exists()
    out = tmp_path / "converted"
    live = ConvertConfig(transitions_only=True, only_complete=True)
    r1 = convert([tmp_path / "rec1"], out, live)
    assert [e.status for e in r1.episodes] == ["incomplete-skipped"]
    proc = _start_after(node, tmp_path / "rec2", _readers(node))
    try:
        _publish_all(node, tmp_path / "rec2", after)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    r2 = convert([tmp_path / "rec2"], out, ConvertConfig(transitions_only=True))
    assert [e.status for e in r2.episodes] == ["written"]
    got = r2.episodes[0]
    write_scripted_bag(tmp_path / "direct", [EP], LAY)
    want = convert([tmp_path / "direct"], tmp_path / "want", ConvertConfig(transitions_only=True)).episodes[0]
    assert got.content_hash == want.content_hash  # every message of both parts, nothing else
    assert (got.num_steps, got.outcome, got.num_chunks) == (12, "success", 3)
    assert not (out / "pending.json").read_text().strip("{}\n ")  # nothing pending any more
