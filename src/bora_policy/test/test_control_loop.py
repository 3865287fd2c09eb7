"""ControlLoop: deadlines on the grid t0 + n * period, late slots served, older ones skipped and counted.

Deterministic: a fake clock that advances only when the loop sleeps or a tick "takes" time; plus one
real-thread run that checks start/stop and error reporting (no timing asserted).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bora_policy.common.control_loop import ControlLoop


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def clock(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def run_fake(durations: list[float], period: float = 0.1):
    """Run ticks whose i-th call takes durations[i] seconds; return the fake times each tick started."""
    ft = FakeTime()
    starts: list[float] = []
    loop: ControlLoop

    def tick():
        starts.append(ft.t)
        ft.t += durations[len(starts) - 1]
        if len(starts) == len(durations):
            loop._stop.set()

    loop = ControlLoop(period, tick, clock=ft.clock, sleep=ft.sleep)
    loop._run()  # synchronously, on this thread
    return [round(s - 100.0, 9) for s in starts], loop


def test_on_time_ticks_stay_on_the_grid():
    starts, loop = run_fake([0.01] * 5)
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert loop.missed == 0 and loop.ticks == 5


def test_a_tick_late_by_less_than_a_period_is_served_at_once_and_the_grid_kept():
    # tick 0 overruns to 0.15: slot 0.1 is served at 0.15 (late, not skipped); then back on the grid
    starts, loop = run_fake([0.15, 0.01, 0.01, 0.01])
    assert starts == pytest.approx([0.0, 0.15, 0.2, 0.3])
    assert loop.missed == 0


def test_slots_older_than_a_period_are_skipped_not_replayed():
    # tick 0 blocks until 0.35: slots 0.1 and 0.2 are skipped (counted), slot 0.3 is served at once
    starts, loop = run_fake([0.35, 0.01, 0.01])
    assert starts == pytest.approx([0.0, 0.35, 0.4])
    assert loop.missed == 2


def test_overdue_closed_form():
    loop = ControlLoop(0.1, lambda: None)
    assert loop.overdue(1.1, 1.15) == (pytest.approx(1.1), 0)  # late by less than a period: served
    assert loop.overdue(1.1, 1.19) == (pytest.approx(1.1), 0)
    slot, skipped = loop.overdue(1.1, 1.55)  # slots 1.1 .. 1.4 overdue: 1.5 served, 4 skipped
    assert skipped == 4 and slot == pytest.approx(1.5)


def test_a_thread_woken_late_serves_the_newest_slot_once_no_burst():
    # the thread sleeps through slots 0.1 and 0.2 (woken at 0.32): one tick at 0.32 for slot 0.3, the
    # next on the grid at 0.4 (never two commands back to back), 2 skipped, reported as a stall
    ft, starts, stalls = FakeTime(), [], []
    naps = iter([0.22])  # the first sleep oversleeps by 0.22 s, the others are exact

    def sleep(dt):
        ft.t += dt + next(naps, 0.0)

    def tick():
        starts.append(round(ft.t - 100.0, 9))
        ft.t += 0.01
        if len(starts) == 4:
            loop._stop.set()

    loop = ControlLoop(0.1, tick, clock=ft.clock, sleep=sleep, on_stall=stalls.append)
    loop._run()
    assert starts == pytest.approx([0.0, 0.32, 0.4, 0.5])
    assert loop.missed == 2 and len(stalls) == 1
    assert stalls[0].skipped == 2 and stalls[0].late_s == pytest.approx(0.22)
    assert stalls[0].cause == "thread not scheduled in time"
    assert stalls[0].describe() == (
        "2 control slot(s) skipped: woke 220 ms late, previous tick 10 ms (thread not scheduled in time)"
    )


def test_an_overrunning_tick_is_reported_as_such():
    stalls = []
    ft = FakeTime()
    durations = iter([0.35, 0.01, 0.01])
    n = []

    def tick():
        n.append(1)
        ft.t += next(durations)
        if len(n) == 3:
            loop._stop.set()

    loop = ControlLoop(0.1, tick, clock=ft.clock, sleep=ft.sleep, on_stall=stalls.append)
    loop._run()
    assert [s.skipped for s in stalls] == [2] and stalls[0].cause == "tick overran"


def test_priority_is_validated_and_sched_fifo_applied_to_the_loop_thread_only():
    import os

    with pytest.raises(ValueError, match="priority"):
        ControlLoop(0.1, lambda: None, priority=120)
    seen = []
    done = threading.Event()

    def tick():
        seen.append(os.sched_getscheduler(0))
        done.set()

    loop = ControlLoop(0.01, tick, priority=10).start()
    assert done.wait(5.0)
    loop.stop()
    # where permitted the tick runs under SCHED_FIFO, else the reason is recorded; never both, never neither
    assert loop.realtime != bool(loop.realtime_error)
    assert (seen[0] == os.SCHED_FIFO) == loop.realtime
    assert os.sched_getscheduler(0) != os.SCHED_FIFO  # the calling thread is left as it was


def test_bad_period_is_a_clear_error():
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="period"):
            ControlLoop(bad, lambda: None)


def test_real_thread_reports_errors_keeps_running_and_stops():
    seen: list[str] = []
    n = {"ticks": 0}
    third = threading.Event()

    def tick():
        n["ticks"] += 1
        if n["ticks"] == 2:
            raise RuntimeError("boom")
        if n["ticks"] >= 3:
            third.set()

    loop = ControlLoop(0.01, tick, on_error=lambda e: seen.append(str(e))).start()
    assert third.wait(5.0), "the loop stopped after the failing tick"
    loop.stop()
    assert not loop.running and seen == ["boom"] and loop.errors == 1
    after = n["ticks"]
    threading.Event().wait(0.05)
    assert n["ticks"] == after  # no tick after stop()


# ----------------------------------------------------------------------------- ArrivalPhaseLock (issue 17)
from bora_policy.common.control_loop import ArrivalPhaseLock  # noqa: E402


def _lock(arrivals, **kw):
    lk = ArrivalPhaseLock(0.1, margin=0.01, **kw)
    for t in arrivals:
        lk.on_arrival(t)
    return lk


def test_phase_lock_corrections_by_hand():
    lk = _lock([0.03, 0.13, 0.23, 0.33])  # every input at phase 0.03: target phase 0.03 + 0.01 = 0.04
    # tick at 0.42 (phase 0.02): 20 ms before the target -> delay by gain 0.5 * 20 ms = 10 ms, clipped to 5 ms
    assert lk.correction(0.42) == pytest.approx(0.005)
    assert lk.error_s == pytest.approx(-0.02)
    assert _lock([0.03, 0.13, 0.23, 0.33], max_shift=0.5).correction(0.42) == pytest.approx(0.01)
    assert lk.correction(0.45) == 0.0  # 10 ms after the target (within 25 ms): never moved earlier
    assert lk.error_s == pytest.approx(0.01)
    assert lk.correction(0.48) == pytest.approx(0.005)  # 40 ms after: delay round to the next input
    assert lk.correction(0.33 + 0.21) == 0.0 and lk.error_s is None  # no input for 2 periods: free
    assert _lock([0.03, 0.13, 0.23]).correction(0.42) == 0.0  # fewer than 4 arrivals
    assert _lock([0.03, 0.08, 0.13, 0.18, 0.23]).correction(0.42) == 0.0  # another period (50 ms)


def test_phase_lock_in_the_loop_converges_and_only_ever_lengthens_the_period():
    """A loop starting 50 ms after its input's phase (the worst: half a period) locks on to 10-20 ms after
    the jittered inputs, and no interval between two ticks is shorter than the period."""
    rng = np.random.default_rng(0)
    ft = FakeTime()
    lk = ArrivalPhaseLock(0.1, margin=0.01)
    starts: list[float] = []
    loop: ControlLoop

    def tick():
        n = len(starts)
        starts.append(ft.t)
        lk.on_arrival(100.0 + 0.03 + n * 0.1 + float(rng.uniform(0.0, 0.004)))  # input of this period
        shift = lk.correction(ft.t)
        assert shift >= 0.0
        loop.shift(shift)
        if len(starts) == 80:
            loop._stop.set()

    ft.t = 100.08  # the loop's grid starts at phase 0.08
    loop = ControlLoop(0.1, tick, clock=ft.clock, sleep=ft.sleep)
    loop._run()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.1 - 1e-9
    phase = (starts[-1] - 100.0) % 0.1
    assert 0.03 + 0.01 <= phase <= 0.03 + 0.004 + 0.01 + 0.004, phase  # target: late arrivals + margin
    assert loop.missed == 0
