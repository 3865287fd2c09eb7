"""EpisodeLabeler (runtime/episode_labels.py) on hand-built stamps: a set belongs to the newest START at or
before its newest stamp; its step is on that episode's time base; older than every START: no episode."""

from __future__ import annotations

import pytest

from bora_policy.runtime.episode_labels import EpisodeLabel, EpisodeLabeler


def test_a_set_captured_before_the_start_keeps_the_previous_episode():
    lab = EpisodeLabeler(control_hz=10.0)
    assert not lab.known and lab.label(5.0) is None
    lab.start(1, "s", 100.0)
    lab.start(2, "s", 104.05)  # episode 1 ended at its step 40 (104.0), the reset tick a moment later
    # the last tick of episode 1 (stamp 104.0), assembled after the START of episode 2 arrived: step 40 of 1
    assert lab.label(104.0) == EpisodeLabel(1, "s", 40)
    # the first tick of episode 2 one period after its START: round(0.1 * 10) = 1
    assert lab.label(104.15) == EpisodeLabel(2, "s", 1)
    assert lab.label(104.05) == EpisodeLabel(2, "s", 0)  # at the START's own stamp: the new episode
    assert lab.label(99.99) is None  # before every START known


def test_steps_follow_each_episodes_own_time_base_at_30_hz():
    lab = EpisodeLabeler(control_hz=30.0)
    lab.start(7, "a", 10.0)
    lab.start(8, "a", 12.0)
    assert lab.label(11.5).step == 45  # (11.5 - 10) * 30
    assert lab.label(12.5).step == 15  # (12.5 - 12) * 30


def test_only_the_last_starts_are_kept_and_out_of_order_starts_are_sorted():
    lab = EpisodeLabeler(control_hz=10.0, keep=2)
    lab.start(2, "s", 20.0)
    lab.start(1, "s", 10.0)  # heard late (another session's older START applied by the node): sorted in
    assert lab.label(15.0) == EpisodeLabel(1, "s", 50)
    lab.start(3, "s", 30.0)  # keep=2: episode 1's START is forgotten
    assert lab.label(15.0) is None
    assert lab.label(25.0) == EpisodeLabel(2, "s", 50)
    assert lab.label(31.0) == EpisodeLabel(3, "s", 10)


@pytest.mark.parametrize(("hz", "keep", "field"), [(0.0, 4, "control_hz"), (10.0, 0, "keep")])
def test_bad_settings_name_the_field(hz, keep, field):
    with pytest.raises(ValueError, match=f"EpisodeLabeler: {field} must be"):
        EpisodeLabeler(control_hz=hz, keep=keep)
