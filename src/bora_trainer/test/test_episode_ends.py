"""Which episodes a restarted live trainer skips (online/episode_ends.py), from hand-made event sequences: only
an explicit outcome of an episode whose outcome no recording holds, above the last id taken in, ``wait_s`` after
the outcome arrived; never a running episode (START, no outcome: the recorder-restart case)."""

from __future__ import annotations

import pytest

from bora_trainer.online.episode_ends import ENDED_DEPTH, OUTCOME_KINDS, EpisodeEnds

START, SUCCESS, FAILURE, ABORT = 0, 1, 2, 3  # bora_msgs/EpisodeEvent kinds
A, B = "session-a", "session-b"


def _ends(events, now):
    e = EpisodeEnds(5.0, clock=lambda: now[0])
    for t, sess, i, kind in events:
        now[0] = t
        e.event(sess, i, kind)
    return e


def test_outcomes_received_while_down_are_unrecorded_and_a_running_episode_is_not():
    """The trainer went down during episode 3 (its START recorded); meanwhile 3 and 4 ended, 5 started and runs.
    The latched history arrives at once when it comes back (t = 100): 1 and 2 (taken in) and 3, 4 (no recording
    holds their outcomes) ended; 5 is running."""
    now = [0.0]
    hist = [(100.0, A, i, k) for i, k in ((1, SUCCESS), (2, FAILURE), (3, SUCCESS), (4, ABORT))]
    e = _ends([*hist, (100.0, A, 5, START)], now)
    seen = {A: 2}.get
    assert e.unrecorded(seen, set()) == []  # not before wait_s: the same outcome may still reach the recording
    now[0] = 104.9
    assert e.unrecorded(seen, set()) == []
    now[0] = 105.0
    assert e.unrecorded(seen, set()) == [(A, 3), (A, 4)]  # 5 (START, no outcome) is not listed
    assert e.unrecorded(seen, {(A, 3)}) == [(A, 4)]  # 3's outcome is in a recording: it is ingested instead
    assert e.unrecorded({A: 4}.get, set()) == []  # both taken in (skipped): nothing more


def test_an_episode_whose_recorder_restarted_mid_episode_is_never_skipped():
    """The failure of the reverted heuristic (no executed command for 5 s = ended): episode 2 runs while the
    recorder is restarted, with no commands for longer than wait_s. Without its outcome it is never listed,
    however long; its outcome, once recorded (the restarted recorder's bag), keeps it out too."""
    now = [0.0]
    e = _ends([(0.0, A, 1, SUCCESS), (1.0, A, 2, START)], now)
    now[0] = 1000.0
    assert e.unrecorded({A: 1}.get, set()) == []
    e.event(A, 2, FAILURE)  # the episode ends; the restarted recorder holds its outcome
    now[0] = 2000.0
    assert e.unrecorded({A: 1}.get, {(A, 2)}) == []
    assert e.unrecorded({A: 1}.get, set()) == [(A, 2)]  # had no recording held it, it would be skipped


def test_sessions_repeats_and_unknown_sessions():
    """Ids restart with each bridge session: each is compared with its own session's last id; a repeated outcome
    keeps its first arrival time; an outcome without a session cannot be matched and is ignored."""
    now = [0.0]
    e = _ends([(0.0, A, 7, SUCCESS), (0.0, B, 2, FAILURE), (0.0, "", 9, SUCCESS)], now)
    now[0] = 6.0
    e.event(B, 2, FAILURE)  # again (e.g. a second delivery of the history): not a new wait
    assert e.unrecorded({A: 6, B: 0}.get, set()) == [(A, 7), (B, 2)]
    assert e.unrecorded({A: 7, B: 2}.get, set()) == []
    assert OUTCOME_KINDS == (SUCCESS, FAILURE, ABORT) and ENDED_DEPTH >= 1
    with pytest.raises(ValueError, match="wait_s must be >= 0"):
        EpisodeEnds(-1.0)


def test_the_kinds_match_the_message():
    """OUTCOME_KINDS are the message's constants (the module imports no ROS). (The depth is one value for the
    bridge and the trainer: bora_policy.common.episode_latch.ENDED_DEPTH.)"""
    from bora_msgs.msg import EpisodeEvent as E  # installed by make setup: missing is a failure

    assert (E.START, OUTCOME_KINDS) == (0, (E.SUCCESS, E.FAILURE, E.ABORT))
