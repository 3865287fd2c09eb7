"""StartLatch: a START heard again (latched copy, other topic, restart) is applied only when new."""

from __future__ import annotations

from bora_policy.common.episode_latch import StartLatch


def test_first_start_is_new_and_duplicates_are_not():
    latch = StartLatch()
    assert latch.is_new("s1", 1, 100.0)  # nothing applied yet
    latch.applied("s1", 1, 100.0)
    assert not latch.is_new("s1", 1, 100.0)  # the same START on the other topic
    assert latch.is_duplicate("s1", 1) and not latch.is_duplicate("s1", 2) and not latch.is_duplicate("s2", 1)


def test_same_session_orders_by_episode_id():
    latch = StartLatch()
    latch.applied("s1", 3, 130.0)
    assert not latch.is_new("s1", 2, 200.0)  # an older episode, whatever its stamp
    assert latch.is_new("s1", 4, 90.0)  # ids grow within a session
    latch.applied("s1", 4, 140.0)
    assert (latch.session_id, latch.episode_id, latch.stamp) == ("s1", 4, 140.0)


def test_another_session_orders_by_stamp():
    latch = StartLatch()
    latch.applied("bridge-a", 5, 150.0)
    assert latch.is_new("bridge-b", 1, 151.0)  # a restarted bridge: ids restart at 1, later stamp
    assert not latch.is_new("bridge-b", 9, 149.5)  # an older START of another session
    assert not latch.is_new("bridge-b", 1, 150.0)  # not later
