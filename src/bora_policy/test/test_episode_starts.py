"""EpisodeStarts (runtime/episode_starts.py): each START resets the policy's executor once, whichever way it
arrives (/bora/episode, the latched /bora/episode/current, or first as an observation of the new episode).
A reset is a ``take_pending`` that returns the episode; the expectations follow the module's rules."""

from __future__ import annotations

import pytest

from bora_policy.runtime.episode_gate import EpisodeGate
from bora_policy.runtime.episode_starts import EpisodeStarts


def _starts() -> tuple[EpisodeGate, EpisodeStarts]:
    g = EpisodeGate(10.0)
    return g, EpisodeStarts(g)


def test_a_start_after_its_episode_was_adopted_from_an_observation_does_not_reset_again():
    g, e = _starts()
    assert e.start("s1", 1, 10.0)
    assert g.take_pending() == (1, 10.0, "start")
    # the sync node heard START 2 first: its observation (step 1, 0.1 s after the START) arrives here first
    e.observe(2, 1, 20.1, "s1")
    assert g.take_pending() == (2, pytest.approx(20.0), "observation")  # the one reset of episode 2
    assert not e.start("s1", 2, 20.0)  # then the START itself: the same episode
    assert g.take_pending() is None and g.may_command()  # no second reset
    assert (g.episode_id, g.t_start, g.source) == (2, 20.0, "start")  # the START's stamp is the time base
    assert not e.start("s1", 2, 20.0, latched=True)  # and its latched copy
    assert g.take_pending() is None


def test_a_start_while_the_adopted_episode_waits_for_the_tick_leaves_one_reset():
    g, e = _starts()
    e.observe(4, 3, 40.3, "s1")  # adopted, not applied yet (no tick in between)
    assert not e.start("s1", 4, 40.0)
    assert g.take_pending() == (4, 40.0, "start")  # one reset, on the START's time base
    assert g.take_pending() is None


def test_the_same_id_in_another_recording_session_is_a_new_episode():
    g, e = _starts()
    e.observe(3, 5, 30.5, "bridge-a")
    g.take_pending()
    assert e.session(3) == "bridge-a"
    assert e.start("bridge-b", 3, 50.0)  # a restarted bridge numbering from 1 again, later
    assert g.take_pending() == (3, 50.0, "start")
    assert e.session(3) == "bridge-b"


def test_latched_copy_and_the_event_reset_once_in_either_order():
    g, e = _starts()
    assert e.start("s1", 5, 50.0, latched=True)  # the latched copy first (a node that connected late)
    assert not e.start("s1", 5, 50.0)  # the same START on /bora/episode
    assert g.take_pending() == (5, 50.0, "start") and g.take_pending() is None
    assert e.start("s1", 6, 60.0)
    assert not e.start("s1", 6, 60.0, latched=True)
    assert not e.start("s1", 5, 50.0, latched=True)  # an older latched START
    assert g.take_pending() == (6, 60.0, "start") and g.take_pending() is None


def test_sessions_come_from_starts_first_and_only_recent_episodes_are_kept():
    g = EpisodeGate(10.0)
    e = EpisodeStarts(g, keep=2)
    e.start("s1", 1, 1.0)
    e.observe(1, 0, 1.0, "other")  # an episode a START named keeps the START's session
    assert e.session(1) == "s1"
    e.observe(2, 0, 2.0, "s1")
    e.start("s1", 3, 3.0)
    assert (e.session(1), e.session(2), e.session(3)) == ("", "s1", "s1")  # episode 1 forgotten
    with pytest.raises(ValueError, match="keep must be >= 1"):
        EpisodeStarts(g, keep=0)
