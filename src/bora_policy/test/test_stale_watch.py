"""A stale observation stream is reported, not silent: StaleWatch (runtime/stale_watch.py) and the lasting
conditions of HealthWindow (runtime/health.py), on hand-written timelines. Ticks and stamps are seconds of
the node's clock; the health window's clock is set to the same time before each tick."""

from __future__ import annotations

import pytest
from test_runtime_faults import Clock  # the settable clock of the health-window tests

from bora_policy.runtime.health import OK, WARN, HealthWindow
from bora_policy.runtime.stale_watch import StaleWatch


def _watch():
    c = Clock()
    h = HealthWindow(5.0, clock=c)
    return c, h, StaleWatch(1.0, h, confirm_s=0.5)


def _tick(c, w, t, stamp):
    c.t = t
    return w.update(t, stamp)


ONSET = (
    "no fresh observation on the observation topic for 0.5 s (the newest is 2.0 s old, stale_observation_s 1); "
    "no plan and no command until one arrives"
)


def test_a_stopped_stream_is_reported_once_at_its_onset_and_once_at_its_recovery():
    c, h, w = _watch()
    assert _tick(c, w, 10.5, 10.0) is None  # 0.5 s old: fresh
    assert _tick(c, w, 11.5, 10.0) is None and w.too_old(11.5, 10.0)  # stale (no command), not yet confirmed
    assert _tick(c, w, 11.8, 10.0) is None and h.status() == (OK, "")
    assert _tick(c, w, 12.0, 10.0) == ONSET and w.stale  # stale on every tick for 0.5 s: the onset
    lvl, text = h.status()
    assert lvl == WARN and f"1 stale_observation; last: {ONSET}" in text
    assert text.endswith("; ongoing for 0 s: stale_observation")
    assert _tick(c, w, 12.1, 10.0) is None and _tick(c, w, 16.9, 10.0) is None  # warned again 5 s on
    assert _tick(c, w, 17.0, 10.0) == ONSET.replace("0.5 s", "5.5 s").replace("2.0 s old", "7.0 s old")
    assert h.totals == {"stale_observation": 1}  # one condition, its warning repeated
    # the onset has left the 5 s window; the condition still holds, so does the WARN
    assert _tick(c, w, 20.0, 10.0) is None
    assert h.status() == (WARN, f"ongoing for 8 s: {ONSET}")
    line = _tick(c, w, 20.1, 20.05)  # a fresh observation: the recovery, 8.6 s after the first stale tick
    assert line == "observations fresh again after 8.6 s without one; planning and commands resume"
    assert not w.stale and h.status() == (OK, "")
    assert _tick(c, w, 22.0, 20.05) is None and _tick(c, w, 22.5, 20.05) is not None  # a second onset
    assert h.totals == {"stale_observation": 2}


STALE = (
    "no fresh observation on /robot1/bora/observation for {} s (the newest is {} s old, stale_observation_s 1); "
    "no plan and no command until one arrives"
)


def test_a_stale_stream_is_warned_every_report_s_while_it_lasts_and_its_recovery_once():
    c = Clock()
    h = HealthWindow(10.0, clock=c)
    w = StaleWatch(1.0, h, confirm_s=0.5, topic="/robot1/bora/observation", report_s=5.0)
    assert _tick(c, w, 50.0, 49.9) is None  # fresh
    assert _tick(c, w, 51.5, 50.0) is None  # the newest 1.5 s old: the first stale tick
    assert _tick(c, w, 52.0, 50.0) == STALE.format("0.5", "2.0") and w.stale  # the onset, 0.5 s later
    assert _tick(c, w, 52.1, 50.0) is None and _tick(c, w, 56.9, 50.0) is None  # throttled
    assert _tick(c, w, 57.0, 50.0) == STALE.format("5.5", "7.0")  # 5 s after the onset
    assert _tick(c, w, 61.9, 50.0) is None
    assert _tick(c, w, 68.3, 50.0) == STALE.format("16.8", "18.3")  # after a stall of the caller: one line
    assert _tick(c, w, 71.9, 50.0) is None and _tick(c, w, 72.0, 50.0) == STALE.format("20.5", "22.0")  # onset + 20
    assert h.totals == {"stale_observation": 1} and w.stale
    assert h.status() == (WARN, f"ongoing for 20 s: {STALE.format('0.5', '2.0')}")  # the onset left the window
    line = _tick(c, w, 72.1, 72.05)
    assert line == "observations fresh again after 20.6 s without one; planning and commands resume"
    assert not w.stale and h.status() == (OK, "")
    assert _tick(c, w, 72.2, 72.15) is None and _tick(c, w, 77.2, 77.15) is None  # the recovery once
    # a second stale run counts its repetitions from its own onset
    assert _tick(c, w, 79.0, 77.9) is None and _tick(c, w, 79.5, 77.9) == STALE.format("0.5", "1.6")
    assert _tick(c, w, 84.4, 77.9) is None and _tick(c, w, 84.5, 77.9) == STALE.format("5.5", "6.6")
    assert h.totals == {"stale_observation": 2}


def test_a_gap_shorter_than_the_confirmation_is_not_reported():
    c, h, w = _watch()
    assert _tick(c, w, 10.0, 9.95) is None
    assert _tick(c, w, 11.6, 10.0) is None and w.too_old(11.6, 10.0)  # e.g. right after the policy's own stall
    assert _tick(c, w, 11.7, 11.65) is None  # its queued observations taken on the next tick
    assert _tick(c, w, 12.3, 10.0) is None  # a new run of stale ticks counts from its own start
    assert not w.stale and h.status() == (OK, "") and h.totals == {}


NONE = "no observation on /robot1/bora/observation for {} s (is the sync node running? topic remapped?); " \
    "no plan and no command until one arrives"


def test_no_observation_at_all_is_warned_every_report_s_and_on_diagnostics_until_the_first():
    c = Clock()
    h = HealthWindow(10.0, clock=c)
    w = StaleWatch(1.0, h, confirm_s=0.5, topic="/robot1/bora/observation", report_s=5.0)
    assert _tick(c, w, 100.0, None) is None and w.too_old(100.0, None)  # the first tick: the wait starts
    assert _tick(c, w, 104.9, None) is None and h.status() == (OK, "") and not w.waiting  # the graph starting
    assert _tick(c, w, 105.0, None) == NONE.format("5.0") and w.waiting
    assert h.status() == (WARN, f"in the last 10 s: 1 no_observation; last: {NONE.format('5.0')}; ongoing for 0 s: "
                                "no_observation")
    assert _tick(c, w, 105.1, None) is None and _tick(c, w, 109.9, None) is None  # throttled: every 5 s
    assert _tick(c, w, 110.0, None) == NONE.format("10.0")
    assert _tick(c, w, 117.3, None) == NONE.format("17.3")  # after a stall of the caller: one line, not two
    assert _tick(c, w, 119.9, None) is None and _tick(c, w, 120.0, None) == NONE.format("20.0")
    assert h.totals == {"no_observation": 1}  # one condition, its warning repeated
    c.t = 125.0  # its onset (105) has left the 10 s window; it still holds, so does the WARN
    assert h.status() == (WARN, f"ongoing for 20 s: {NONE.format('5.0')}")
    line = _tick(c, w, 126.0, 126.0)
    assert line == "first observation on /robot1/bora/observation after 26.0 s without one"
    assert not w.waiting and h.status() == (OK, "")
    # then the stale watch as before: too old from 127.5, confirmed 0.5 s later
    assert _tick(c, w, 127.5, 126.0) is None and _tick(c, w, 128.0, 126.0) == STALE.format("0.5", "2.0")
    assert h.totals == {"no_observation": 1, "stale_observation": 1}


def test_a_first_observation_within_report_s_is_not_reported_and_none_is_too_old():
    c, h, w = _watch()  # report_s 5 (the default)
    assert _tick(c, w, 0.0, None) is None and _tick(c, w, 4.9, None) is None
    assert _tick(c, w, 5.0, 4.95) is None and not w.waiting
    assert h.status() == (OK, "") and h.totals == {}
    assert not w.too_old(11.0, 10.0) and w.too_old(11.01, 10.0)  # older than stale_s, strictly
    with pytest.raises(ValueError, match="stale_s > 0, confirm_s >= 0 and report_s > 0, got 0.0, 0.5, 5.0"):
        StaleWatch(0.0, HealthWindow())
    with pytest.raises(ValueError, match="got 1.0, 0.5, 0.0"):
        StaleWatch(1.0, HealthWindow(), report_s=0.0)


def test_health_condition_holds_its_level_until_it_ends():
    c = Clock()
    h = HealthWindow(2.0, clock=c)
    assert h.begin("stale_observation", "no fresh observation", WARN)
    assert not h.begin("stale_observation", "again", WARN)  # ongoing: not reported twice
    assert h.totals == {"stale_observation": 1}
    c.t = 1.0
    h.report("late_tick", "control tick 160 ms after the previous one", WARN)
    assert h.status() == (
        WARN,
        "in the last 2 s: 1 stale_observation, 1 late_tick; last: control tick 160 ms after the previous one; "
        "ongoing for 1 s: no fresh observation",
    )
    c.t = 10.0  # both faults left the window; the condition did not end
    assert h.status() == (WARN, "ongoing for 10 s: no fresh observation")
    assert h.end("stale_observation").text == "no fresh observation" and h.end("stale_observation") is None
    assert h.status() == (OK, "")
