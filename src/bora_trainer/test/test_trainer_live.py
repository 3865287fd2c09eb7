"""The online trainer reading recordings that are still being written (env_ros.RosEpisodes, no ROS).

* a round that waits says why (an episode without an outcome, a recording that cannot be converted);
* an ended episode that cannot be converted is skipped, so the round gate can replace it (also when it is the
  only episode of its recording);
* a live bag is converted again only when its episode events change;
* an episode whose last steps are late waits for them (``late_message_wait_s``), one whose gaps come before its
  last recorded command does not; one whose START was not recorded is never ingested;
* a restarted live trainer skips the episodes whose outcome came (the bridge's latched ``/bora/episode/ended``)
  while nothing recorded it, so the gate moves on (and the stall warning no longer names them); a running one is not
  skipped;
* an ended episode still to come whose id is below a skipped one counts against the gate.

Helpers and the one-thread fixture come from test_trainer_node.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_trainer_node import LAY, T_EP, _threads, make_loop, setup_dirs  # noqa: F401 (_threads: autouse fixture)

from bora_trainer.data import bag_schema as S
from bora_trainer.data.bag_convert import ConvertConfig, convert
from bora_trainer.data.synthetic_bag import ScriptedEpisode, write_scripted_bag
from bora_trainer.online.config import TrainerConfig


def test_a_round_waiting_for_a_lost_outcome_is_said_with_the_episode(tmp_path, caplog):
    """The stall case: a live bag holds a finished episode and the round's last one, whose outcome event never
    reached the recording. The round cannot fill (the robot waits at its gate). After ``stall_warn_s`` without a
    new episode the loop says so, every ``stall_warn_s``, naming the round, the gate and the episode without an
    outcome; nothing is skipped, and once the outcome is recorded after all the episode is ingested."""
    import logging
    import shutil

    setup_dirs(tmp_path)
    bag = tmp_path / "recordings" / "live"
    eps = [ScriptedEpisode(1, T_EP, "success"), ScriptedEpisode(2, T_EP, None)]
    write_scripted_bag(bag, eps, LAY)
    (bag / "metadata.yaml").unlink()
    now = [0.0]
    loop = make_loop(tmp_path, episodes_per_round=2, stall_warn_s=60.0)
    loop.stall._clock = lambda: now[0]

    def warnings_at(t):
        now[0] = t
        caplog.clear()
        loop.step()
        return [r.getMessage() for r in caplog.records if "no new one" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="bora_trainer.online"):
        assert warnings_at(0.0) == [] and loop.num_episodes == 1  # episode 1 in; the wait starts at the next step
        assert warnings_at(10.0) == [] and warnings_at(69.9) == []
        (msg,) = warnings_at(70.0)
        assert "round 1 has 1 of 2 episodes and no new one for 60 s" in msg
        assert "episodes up to id 2 start" in msg  # the gate: last taken in 1, one episode still wanted
        unfinished = r"Unfinished episodes in the recordings: id 2 of session \S+ \(16 steps recorded, no outcome"
        assert re.search(unfinished, msg)
        assert warnings_at(129.9) == []
        (msg,) = warnings_at(130.0)
        assert "no new one for 120 s" in msg and loop.num_episodes == 1
        eps[1] = ScriptedEpisode(2, T_EP, "failure")  # the outcome reaches the recording after all
        shutil.rmtree(bag)
        write_scripted_bag(bag, eps, LAY)
        (bag / "metadata.yaml").unlink()
        assert warnings_at(200.0) == [] and loop.num_episodes == 2 and loop.source.unfinished(loop) == []
    with pytest.raises(ValueError, match="stall_warn_s"):
        TrainerConfig(stall_warn_s=-1.0)


def test_a_recording_that_cannot_be_converted_is_named_while_the_round_waits(tmp_path, caplog):
    """A live recording whose file cannot be read (here: not an MCAP file) holds none of the round's episodes for the
    loop: the conversion error is logged once per change of the bag, and while the round waits the stall warning
    names the recording and the error (ours), so the wait has a cause in the log. Once the recording is readable
    (it changes), its episodes are ingested and the line goes away."""
    import logging

    setup_dirs(tmp_path)
    good, bad = tmp_path / "recordings" / "a_live", tmp_path / "recordings" / "b_live"
    write_scripted_bag(good, [ScriptedEpisode(1, T_EP, "success")], LAY)
    (good / "metadata.yaml").unlink()
    bad.mkdir()
    (bad / "b_live_0.mcap").write_bytes(b"not an mcap file")
    now = [0.0]
    loop = make_loop(tmp_path, episodes_per_round=2, stall_warn_s=60.0)
    loop.stall._clock = lambda: now[0]
    with caplog.at_level(logging.INFO, logger="bora_trainer.online"):
        loop.step()
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert loop.num_episodes == 1 and len(errors) == 1 and str(bad) in errors[0]
        now[0] = 1.0
        loop.step()  # the wait for the round's next episode starts here
        caplog.clear()
        now[0] = 61.0
        loop.step()
        (msg,) = [r.getMessage() for r in caplog.records if "no new one" in r.getMessage()]
        assert f"recording {bad} cannot be converted (" in msg
        assert not [r for r in caplog.records if r.levelno == logging.ERROR]  # the unchanged bag is not re-read
        (bad / "b_live_0.mcap").unlink()
        write_scripted_bag(tmp_path / "fixed", [ScriptedEpisode(2, T_EP, "failure")], LAY)
        for f in (tmp_path / "fixed").iterdir():
            f.rename(bad / f.name.replace("fixed", "b_live"))
        (bad / "metadata.yaml").unlink()
        loop.step()
    assert loop.num_episodes == 2 and loop.source.unfinished(loop) == []


def _clocked_loop(tmp_path, bag, closed, per_round):
    """A loop (late_message_wait_s 5) on ``bag``, left as if still being recorded unless ``closed``, whose clock is
    ``now[0]``: ``(loop, now)``."""
    if not closed:
        (bag / "metadata.yaml").unlink()
    now = [0.0]
    loop = make_loop(tmp_path, episodes_per_round=per_round, late_message_wait_s=5.0)
    loop.source._clock = lambda: now[0]
    return loop, now


@pytest.mark.parametrize("closed", [False, True])
def test_an_episode_that_ended_before_its_first_command_is_skipped_so_the_round_can_fill(tmp_path, closed):
    """An episode aborted at once has events but no ExecutedCommand (through the graph step 0 has none): nothing to
    convert. It is skipped (a live bag's after late_message_wait_s, its commands could be late), so the gate lets a
    replacement start; before, it was neither ingested nor skipped, and as a round's last episode it held the round
    and the robot at the gate for good."""
    setup_dirs(tmp_path)
    bag = tmp_path / "recordings" / "live"
    eps = [ScriptedEpisode(1, T_EP, "success"), ScriptedEpisode(2, T_EP, "abort", drop_steps=tuple(range(T_EP)))]
    write_scripted_bag(bag, eps, LAY)
    loop, now = _clocked_loop(tmp_path, bag, closed, per_round=2)
    assert loop.collect() == 1 and loop.in_round == 1
    if not closed:
        assert loop.episode_gate() == 2  # episode 2 may still get its commands: no replacement yet
        now[0] = 4.9
        assert loop.collect() == 0 and loop.episode_gate() == 2
        now[0] = 5.0
        assert loop.collect() == 0
    assert max(loop.skipped_ids.values()) == 2 and loop.episode_gate() == 3  # episode 3 replaces it
    assert loop.num_episodes == 1 and loop.source.unfinished(loop) == []


@pytest.mark.parametrize("closed", [True, False])
def test_a_round_whose_only_episode_cannot_be_converted_skips_it(tmp_path, closed):
    """With one episode per round (or a recording that holds one episode) whose every ExecutedCommand is unusable
    (non-finite joint values): ``bora bag convert`` calls that bag an input error, and so did the trainer's
    conversion, so the episode was neither ingested nor skipped and the round waited for good, naming the
    recording. The trainer now gets the episode as "failed" and skips it once ended."""
    from test_bag_errors import _write_msgs

    from bora_trainer.data.synthetic_bag import scripted_messages

    setup_dirs(tmp_path)
    bag = tmp_path / "recordings" / "one"
    msgs = scripted_messages([ScriptedEpisode(1, T_EP, "failure")], LAY)
    for topic, _, m in msgs:
        if topic == S.T_EXECUTED:
            m.command.position[:] = float("nan")
    _write_msgs(bag, msgs)
    loop, now = _clocked_loop(tmp_path, bag, closed, per_round=1)
    assert loop.collect() == 0 and loop.num_episodes == 0
    if not closed:
        assert loop.episode_gate() == 1  # its messages could still be late
        now[0] = 5.0
        assert loop.collect() == 0
    assert max(loop.skipped_ids.values()) == 1 and loop.episode_gate() == 2  # episode 2 replaces it
    assert loop.source.unfinished(loop) == []  # no recording named as unconvertible: nothing waits


def _live_bag(tmp_path, ep, keep=None):
    """``recordings/live`` holding ``ep``'s messages (those ``keep`` passes), as if still being recorded."""
    import shutil

    bag = tmp_path / "recordings" / "live"
    shutil.rmtree(bag, ignore_errors=True)
    write_scripted_bag(bag, [ep], LAY, keep=keep)
    (bag / "metadata.yaml").unlink()


def _late_steps(topic, m):  # the executed commands of steps 7.. have not reached the file yet
    return not (topic == S.T_EXECUTED and int(m.command.step) >= 7)


def _loop_on_a_live_episode_with_late_steps(tmp_path, keep=_late_steps):
    """A live bag holding an episode (a takeover, a failure) without the commands of steps 7..15 (or what ``keep``
    leaves out), and a loop (late_message_wait_s 5) whose clock is ``now[0]``: ``(episode, loop, now)``."""
    setup_dirs(tmp_path)
    ep = ScriptedEpisode(1, T_EP, "failure", [(3, 11, None)])
    _live_bag(tmp_path, ep, keep)
    now = [100.0]
    loop = make_loop(tmp_path, late_message_wait_s=5.0)
    loop.source._clock = lambda: now[0]
    return ep, loop, now


def _steps_before(n):
    """``keep`` of a live recording that has the messages of steps < n and no outcome event yet."""

    def keep(topic, m):
        if topic == S.T_EPISODE:
            return int(m.kind) == 0  # START
        if topic == S.T_EXECUTED:
            return int(m.command.step) < n
        step = getattr(m, "step", getattr(m, "start_step", 0))
        return int(step) < n

    return keep


def test_a_live_bag_is_converted_again_only_when_its_episode_events_change(tmp_path, monkeypatch):
    """A bag being recorded grows at every poll while an episode runs; until an episode event is recorded (here: the
    outcome) none of its episodes can become complete, so it is not converted again (each conversion decodes every
    message of the bag: 0.3-1.1 s per poll of a round's recording through the graph). The outcome's poll converts
    it and ingests the episode, the same version as the bag written at once."""
    from bora_trainer.online import env_ros

    read = []
    real = env_ros.convert
    monkeypatch.setattr(env_ros, "convert", lambda b, *a, **k: read.append(Path(b[0]).name) or real(b, *a, **k))
    setup_dirs(tmp_path)
    ep = ScriptedEpisode(1, T_EP, "success", [(3, 6, 5)])
    loop = make_loop(tmp_path)
    _live_bag(tmp_path, ep, _steps_before(4))
    assert loop.collect() == 0 and read == ["live"]  # the first read converts (START recorded)
    for n in (8, 12, 16):  # the episode runs on: the bag grows, no new event
        _live_bag(tmp_path, ep, _steps_before(n))
        assert loop.collect() == 0 and read == ["live"]
    _live_bag(tmp_path, ep)  # its outcome is recorded
    assert loop.collect() == 1 and read == ["live", "live"]
    write_scripted_bag(tmp_path / "direct", [ep], LAY)
    want = convert([tmp_path / "direct"], tmp_path / "want", ConvertConfig(transitions_only=True)).episodes[0]
    assert [e["content_hash"] for e in loop.ledger.values()] == [want.content_hash]


def test_live_episode_whose_last_steps_are_late_waits_for_them(tmp_path):
    """The recorder writes each topic as its messages arrive: an episode's outcome can be in a live bag
    before its last steps' commands (CI: ingested with 7 of 16 steps, the whole version then refused). It
    waits, and the whole version is the one ingested: the content hash of the same episode written at once."""
    ep, loop, now = _loop_on_a_live_episode_with_late_steps(tmp_path)
    assert loop.collect() == 0 and loop.ledger == {}
    now[0] += 4.9
    assert loop.collect() == 0 and loop.ledger == {}  # the unchanged bag is looked at again, still waits
    assert len(loop.source._gappy_since) == 1
    _live_bag(tmp_path, ep)  # the late messages arrive
    assert loop.collect() == 1
    assert loop.source._gappy_since == {}  # the gappy version's entry goes once a complete one replaced it
    write_scripted_bag(tmp_path / "direct", [ep], LAY)
    want = convert([tmp_path / "direct"], tmp_path / "want", ConvertConfig(transitions_only=True)).episodes[0]
    (entry,) = loop.ledger.values()
    assert entry["content_hash"] == want.content_hash and len(loop.online) == 4


def test_live_episode_with_steps_that_never_arrive_is_ingested_after_the_wait(tmp_path):
    """Steps that never arrive (dropped in transport) hold the episode ``late_message_wait_s`` only; then it is
    ingested as recorded, its 9 missing steps masked, as a closed bag's would be. With 0 it is at once."""
    ep, loop, now = _loop_on_a_live_episode_with_late_steps(tmp_path)
    assert loop.collect() == 0
    now[0] += 5.0
    assert loop.collect() == 1 and loop.source._gappy_since == {}  # ingested after the wait: entry gone
    (entry,) = loop.ledger.values()
    assert (entry["num_steps"], entry["outcome"]) == (T_EP, "failure")
    assert loop.online.arrays()["mask"].sum() == 7  # steps 0-6 recorded, 7-15 masked out
    immediate = tmp_path / "immediate"
    immediate.mkdir()
    setup_dirs(immediate)
    _live_bag(immediate, ep, _late_steps)
    assert make_loop(immediate, late_message_wait_s=0.0).collect() == 1
    with pytest.raises(ValueError, match="late_message_wait_s"):
        TrainerConfig(late_message_wait_s=-1.0)


def test_live_episode_with_gaps_before_its_last_command_is_ingested_at_once(tmp_path):
    """Through the graph every episode's step 0 has no command (the policy's first chunk is on its way) and a
    step in the middle can be lost. Those gaps are final: the commands come from one arbiter, in order, and the
    last step's is recorded. So the episode is ingested at the first read, without ``late_message_wait_s``
    (before, each one waited 5 s), its two missing steps masked. A gap at the end still waits (tests above)."""

    def lost_0_and_8(topic, m):
        return not (topic == S.T_EXECUTED and int(m.command.step) in (0, 8))

    ep, loop, now = _loop_on_a_live_episode_with_late_steps(tmp_path, lost_0_and_8)
    assert loop.collect() == 1 and loop.source._gappy_since == {}  # the clock has not moved
    (entry,) = loop.ledger.values()
    assert (entry["num_steps"], entry["outcome"]) == (T_EP, "failure") and loop.online.arrays()["mask"].sum() == 14
    assert loop.collect() == 0


def test_live_episode_whose_late_messages_add_no_step_is_ingested_after_the_wait(tmp_path):
    """A round's last episode: late messages arrive that add no recorded step (its Observations, not its
    commands), then the bag stops growing (the bridge waits at the round's gate). The converter keeps the
    converted version (as complete) under a report hash it never wrote; the bag must still be looked at again,
    so the episode is ingested once the wait has passed. Before the fix it never was (online run: gate 10 hung)."""

    def obs_and_cmds_late(topic, m):
        return _late_steps(topic, m) and not (topic == S.T_OBSERVATION and int(m.step) >= 7)

    ep, loop, now = _loop_on_a_live_episode_with_late_steps(tmp_path, obs_and_cmds_late)
    assert loop.collect() == 0  # 7 of 16 steps: waits
    _live_bag(tmp_path, ep, _late_steps)  # the Observations of steps 7.. arrive, the commands do not
    now[0] += 1.0
    assert loop.collect() == 0
    rep = convert([tmp_path / "recordings" / "live"], tmp_path / "state" / "converted",
                  ConvertConfig(transitions_only=True, only_complete=True))
    assert [e.status for e in rep.episodes] == ["kept-previous"]  # the case: a new report hash, the old file
    now[0] += 4.0  # the wait has passed; the bag has not changed since
    assert loop.collect() == 1 and loop.source._gappy_since == {}
    (entry,) = loop.ledger.values()
    assert (entry["num_steps"], entry["outcome"]) == (T_EP, "failure") and loop.online.arrays()["mask"].sum() == 7
    assert loop.collect() == 0  # once


def test_episode_whose_start_was_not_recorded_is_not_ingested(tmp_path):
    # the live recording began mid-episode (trainer started during it): the converter flags it, the
    # trainer leaves it out of the buffer and the round's count; complete episodes are ingested
    setup_dirs(tmp_path)
    eps = [ScriptedEpisode(1, T_EP, "success", start_recorded=False), ScriptedEpisode(2, T_EP, "failure")]
    write_scripted_bag(tmp_path / "recordings" / "bag_a", eps, LAY)
    loop = make_loop(tmp_path)
    assert loop.collect() == 1 and loop.num_episodes == 1 and len(loop.online) == 4
    assert [v["outcome"] for v in loop.ledger.values()] == ["failure"]
    assert loop.collect() == 0  # not retried into the buffer on the next scan
    from bora_trainer.data.bag_convert import read_transitions

    infos = [read_transitions(tmp_path / "state" / "converted", i)[1] for i in (0, 1)]
    assert sorted(i["start_recorded"] for i in infos) == [False, True]


def test_an_ended_episode_still_to_come_below_a_skipped_one_counts_against_the_gate(tmp_path):
    """A round of 5. In the live recording episodes 1-3 are complete; 4 has ended (its outcome is recorded) and
    waits for its last step's command (``late_message_wait_s``); 5's START was not recorded, so 5 is skipped. The
    gate took every id up to the highest one taken in (5) as done: 5 + (5 - 3) = 7, so 6 and 7 could start
    besides 4, one episode too many for the round. 4 now counts as still to come: 3 ingested + 4 + one
    replacement for 5 -> the gate is 6, and the round holds exactly 5 (1-4 and 6)."""
    setup_dirs(tmp_path)
    rec = tmp_path / "recordings"
    eps = [ScriptedEpisode(i, T_EP, "success") for i in (1, 2, 3)]
    eps += [ScriptedEpisode(4, T_EP, "failure", drop_steps=(T_EP - 1,)),
            ScriptedEpisode(5, T_EP, "failure", start_recorded=False)]
    write_scripted_bag(rec / "live_1", eps, LAY)
    loop, now = _clocked_loop(tmp_path, rec / "live_1", closed=False, per_round=5)
    sess = eps[0].session_id
    assert loop.collect() == 3 and loop.skipped_keys == {(sess, 5)} and loop.last_seen_id == 5
    assert loop.episode_gate() == 6
    # 5 was skipped: not named; 4 (ended, waiting for its last command) is what the gate counts as still to come
    (line,) = loop.source.unfinished(loop)
    assert line.startswith("id 4 of session ") and "ended, not yet taken in" in line
    now[0] = 5.0
    assert loop.collect() == 1 and loop.in_round == 4 and loop.episode_gate() == 6  # 4 in; the replacement: 6
    assert loop.source.unfinished(loop) == []
    write_scripted_bag(rec / "live_2", [ScriptedEpisode(6, T_EP, "success")], LAY)
    assert loop.collect() == 1 and loop.in_round == 5 and loop.episode_gate() == 6  # full: the gate stays
    assert sorted(e["source_episode_id"] for e in loop.ledger.values()) == [1, 2, 3, 4, 6]


def test_the_round_gate_counts_the_running_bridge_sessions_ids(tmp_path):
    """Bridge episode ids restart at 1 with each bridge session (a restarted graph). The gate took the highest id
    over every session: after a restart the old session's id 2 set it, so the new session could run past the round
    boundary. It now counts the ids of the session of the newest recorded episode."""
    from bora_trainer.online.rounds import last_seen_in_session

    setup_dirs(tmp_path)
    a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    eps = [ScriptedEpisode(1, T_EP, "success", session_id=a), ScriptedEpisode(2, T_EP, "failure", session_id=a),
           ScriptedEpisode(1, T_EP, "success", session_id=b)]
    write_scripted_bag(tmp_path / "recordings" / "live", eps, LAY)
    loop = make_loop(tmp_path, episodes_per_round=4)
    assert loop.collect() == 3 and loop.in_round == 3
    assert loop.current_session == b
    assert loop.episode_gate() == 2  # session b's episode 2 is the round's 4th; counted over both sessions: 3
    assert last_seen_in_session(loop.ledger, loop.skipped_ids, None) == 2
    assert last_seen_in_session(loop.ledger, {b: 4}, b) == 4  # a skipped id of the running session counts


def test_a_restarted_live_trainer_skips_the_episodes_that_ended_unrecorded_so_the_gate_moves_on(tmp_path):
    """The live trainer (the recorder) was killed during episode 3; while it was restarted the robot ran the rest
    of 3 and all of 4 (up to the gate, 4) and waits. No recording holds their outcomes, so the gate counted them as
    still to come and waited for good, the robot with it. The restarted trainer receives the bridge's latched
    outcomes (1-4): ``late_message_wait_s`` after they arrived, 3 and 4 are skipped and the gate lets two
    replacements start; 3's recorded part stays in the recordings. Replacement 5 runs (START, no outcome) for
    longer than any wait and is not skipped; 5 and 6, recorded by the restarted trainer, are ingested."""
    import json

    from bora_trainer.online.episode_ends import EpisodeEnds

    setup_dirs(tmp_path)
    rec = tmp_path / "recordings"
    eps = [ScriptedEpisode(1, T_EP, "success"), ScriptedEpisode(2, T_EP, "failure"), ScriptedEpisode(3, 6, None)]
    write_scripted_bag(rec / "live_1", eps, LAY)
    (rec / "live_1" / "metadata.yaml").unlink()  # killed with the trainer
    sess = eps[0].session_id
    now = [0.0]
    loop = make_loop(tmp_path, episodes_per_round=4)
    loop.source.episode_ends = ends = EpisodeEnds(5.0, clock=lambda: now[0])
    assert loop.collect() == 2 and loop.episode_gate() == 4  # 3 and 4 counted as still to come
    for i, kind in ((1, 1), (2, 2), (3, 1), (4, 3)):  # the latched history: SUCCESS, FAILURE, SUCCESS, ABORT
        ends.event(sess, i, kind)
    now[0] = 4.9
    assert loop.collect() == 0 and loop.episode_gate() == 4  # within the wait: nothing decided
    now[0] = 5.0
    assert loop.collect() == 0 and loop.num_episodes == 2
    assert loop.skipped_ids[sess] == 4 and loop.episode_gate() == 6  # two replacements may start
    # 3's recorded part has no outcome event, but 3 was skipped: the round no longer waits for it, so the stall
    # warning does not name it (it did, telling the operator the round waited for an episode that would never count)
    assert loop.source.unfinished(loop) == []
    pending = json.loads((tmp_path / "state" / "converted" / "pending.json").read_text())
    assert f"{sess}|3" in pending  # its recorded part is kept for a continuation
    ends.event(sess, 5, 0)  # replacement 5 starts and runs
    now[0] = 500.0
    assert loop.collect() == 0 and loop.skipped_ids[sess] == 4 and loop.episode_gate() == 6
    write_scripted_bag(rec / "live_2", [ScriptedEpisode(5, T_EP, "success"), ScriptedEpisode(6, T_EP, "failure")], LAY)
    (rec / "live_2" / "metadata.yaml").unlink()  # the restarted trainer's recording, still being written
    ends.event(sess, 5, 1)
    ends.event(sess, 6, 2)
    now[0] = 600.0
    assert loop.collect() == 2 and loop.in_round == 4 and loop.episode_gate() == 6
    assert sorted(e["source_episode_id"] for e in loop.ledger.values()) == [1, 2, 5, 6]
    assert loop.skipped_ids[sess] == 4  # 5 and 6 were ingested, not skipped
