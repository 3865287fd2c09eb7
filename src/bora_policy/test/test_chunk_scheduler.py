"""ChunkScheduler on hand-built timelines (no rclpy, no torch): when planning starts, from which observation,
the switch tick, the blend at the boundary, no step above the velocity limit, and the phase lock."""

from __future__ import annotations

import numpy as np
import pytest

from bora_policy.common.control_loop import ControlLoop
from bora_policy.runtime.chunk_executor import ChunkExecutorConfig
from bora_policy.runtime.chunk_scheduler import ChunkScheduler, check_replan_steps, late_phase, phase_correction
from bora_policy.runtime.hold_target import HoldTarget

DT = 0.1


def sched(replan=4, blend=2, ahead=True, **kw):
    return ChunkScheduler(ChunkExecutorConfig(control_hz=10, chunk_hz=10, blend_steps=blend, **kw), replan, ahead)


def test_synchronous_replans_every_replan_steps_from_the_start():
    s = sched(replan=3, ahead=False)
    s.begin_episode([0.0], 0.0)
    planned = []
    for k in range(8):
        if s.plan_due():
            s.adopt(np.full((8, 1), float(k)), k * DT, k * DT)
            planned.append(k)
        s.step(k * DT)
    assert planned == [0, 3, 6] and s.plans == 3
    s.begin_episode([0.0], 1.0)  # a new episode plans at once again, counted from 0
    assert s.plan_due() and s.plans == 0


def test_planned_ahead_starts_on_the_first_observation_after_the_arming_tick():
    """replan 4, inference 30 ms (lead 1 tick); observation k stamped and arriving at k * 0.1, tick k at
    k * 0.1 + 0.05: a plan started on an observation's arrival is ready 30 ms later, adopted at the tick."""
    s = sched(replan=4)
    s.begin_episode([0.0], 0.0)  # holds the state; nothing planned yet
    s.latencies.extend([0.025] * 5)  # inference 25 ms (+ 5 ms transport, measured as they arrive)
    assert s.lead_ticks() == 1
    plans, switches, pending = [], [], None
    for k in range(10):
        stamp = k * DT
        if s.on_observation(stamp, stamp + 0.005):  # arrives 5 ms after its stamp
            s.requested(stamp, stamp + 0.005)
            plans.append(("on_arrival", stamp))
            pending = (stamp, stamp + 0.03)
        t = k * DT + 0.05
        if pending is not None and pending[1] <= t:
            s.ready(pending[1])
            s.adopt(np.full((8, 1), pending[0]), pending[0], t)
            switches.append(round(t, 3))
            pending = None
        if s.on_tick(stamp):
            s.requested(stamp, t)
            plans.append(("at_tick", stamp))
            pending = (stamp, t + 0.025)
        s.step(t)
    # tick 0: due (no chunk) -> planned at the tick on observation 0, adopted at tick 1; tick 4 (since 3 =
    # 4 - 1) arms; observation 5 (the first newer than 0.4) is planned on arrival and adopted at tick 5; ...
    assert plans == [("at_tick", 0.0), ("on_arrival", 0.5), ("on_arrival", 0.9)]
    assert switches == pytest.approx([0.15, 0.55, 0.95])
    # latency from an observation's stamp to the tick that first uses its chunk: 50 ms (< 1 period)
    assert [sw - p[1] for sw, p in zip(switches[1:], plans[1:])] == pytest.approx([0.05, 0.05])
    assert s.plan_latency() == pytest.approx(0.005 + 0.025)  # transport median + inference p90


def test_slow_inference_is_armed_d_ticks_ahead():
    s = sched(replan=6)
    s.begin_episode([0.0], 0.0)
    s.adopt(np.zeros((8, 1)), 0.0, 0.0)
    s.latencies.extend([0.22] * 5)  # inference 220 ms + transport 30 ms = 2.5 periods -> lead 3
    s.transport.extend([0.03] * 5)
    assert s.plan_latency() == pytest.approx(0.25) and s.lead_ticks() == 3
    started = []
    for k in range(6):
        assert not s.on_tick(k * DT - 0.02)  # the newest observation at tick k was stamped 20 ms before it
        if s.on_observation(k * DT + 0.05):  # the next one arrives between the ticks
            started.append(k)
            s.requested(k * DT + 0.05, k * DT + 0.06)
        s.step(k * DT)
    assert started == [3]  # armed at the tick where since == 6 - 3, planned on the next observation
    assert not s.on_observation(0.75)  # in flight: nothing more


def test_unplanned_replan_when_no_fresh_observation_came_and_failure_replans():
    s = sched(replan=2)
    s.begin_episode([0.0], 0.0)
    s.adopt(np.zeros((8, 1)), 0.0, 0.0)
    s.latencies.append(0.01)
    s.step(0.0)
    assert not s.on_tick(0.0)  # since 1 = 2 - 1: armed, waiting for an observation newer than 0.0
    assert not s.on_observation(0.0)  # not newer
    s.step(0.1)
    assert s.on_tick(0.0)  # since 2: due, plan on the newest even though it is old
    s.requested(0.0)
    assert not s.on_tick(0.0)  # in flight
    s.failed()
    assert s.on_tick(0.0)
    assert not sched(ahead=False).on_observation(1.0)  # synchronous schedulers never plan on arrival


def grid_timeline(delays, n, drop=(), rows=16, replan=8, steps=True):
    """Observation k stamped k * 0.1, arriving 5 ms later unless k is in ``drop``, at control step k (None with
    ``steps`` off); tick k at k * 0.1 + 0.05. The i-th plan is ready ``delays[i]`` s (the last one repeated)
    after its request and adopted at the first tick after that; chunks have ``rows`` rows at 10 Hz.
    Returns the scheduler, the planned-from steps, the notes of ``requested`` and the adoption ticks."""
    s = sched(replan=replan)
    s.begin_episode([0.0], 0.0)
    plans, notes, switches, pending, newest = [], [], [], None, None

    def request(k, t):
        notes.append(s.requested(k * DT, t, k if steps else None))
        plans.append(k)
        return k, t + delays[min(len(plans), len(delays)) - 1]

    for k in range(n):
        if k not in drop:
            newest = k
            if s.on_observation(k * DT, k * DT + 0.005, k if steps else None):
                pending = request(k, k * DT + 0.005)
        t = k * DT + 0.05
        if pending is not None and pending[1] <= t + 1e-9:
            s.ready(pending[1])
            s.adopt(np.zeros((rows, 1)), pending[0] * DT, t)
            switches.append(k)
            pending = None
        if s.on_tick(None if newest is None else newest * DT):
            pending = request(newest, t)
        s.step(t)
    return s, plans, notes, switches


def test_planned_ahead_chunks_start_exactly_replan_steps_apart_whatever_the_inference_time():
    """Inference 80, 280, 180, 180 ms (about 1, 3, 2, 2 ticks), replan 8, 16-row chunks. Plan 0 at tick 0 on
    observation 0, ready 0.13, adopted at tick 1; the grid step 8 arrives at 0.805 and is planned at once: ready
    1.085, adopted at tick 11; step 16 at 1.605: ready 1.785, tick 18; step 24: ready 2.585, tick 26; ..."""
    s, plans, notes, switches = grid_timeline([0.08, 0.28, 0.18], 40)
    assert plans == [0, 8, 16, 24, 32] and switches == [1, 11, 18, 26, 34]
    assert s.off_grid == 0 and notes == [None] * 5 and s.anchor == 32 and s.grid_target() == 40
    # the same timeline armed from the adoption tick (no steps given: the rule before the grid): obs 8 arms at
    # tick 8 (since 7 = 8 - lead 1) -> observation 9; adopted at tick 12, lead 3 -> armed at tick 17 -> 18; ...
    _, old, _, _ = grid_timeline([0.08, 0.28, 0.18], 40, steps=False)
    assert old == [0, 9, 18, 26, 34]


def test_a_dropped_grid_observation_gives_one_counted_off_grid_start_then_the_grid_resumes_from_it():
    """Observation 16 is dropped: 17 (the next, newer than the grid step) is planned on arrival, counted; the
    grid then goes on from 17 (our choice: the rule 'replan_steps after the executing chunk's step')."""
    s, plans, notes, switches = grid_timeline([0.08, 0.28, 0.18], 40, drop={16})
    assert plans == [0, 8, 17, 25, 33] and switches == [1, 11, 19, 27, 35]
    assert s.off_grid == 1 and notes[:2] == [None, None] and notes[3:] == [None, None]
    assert notes[2].startswith("chunk planned from step 17, 9 steps after the executing chunk's 8 instead of")
    assert "no plan from step 16" in notes[2] and "\n" not in notes[2] and s.last_off_grid == notes[2]


def test_no_observation_at_the_grid_step_plans_on_the_newest_before_the_chunk_runs_out():
    """Observations stop after 7. Chunk 0 (from 0) adopted at tick 1, 1.5 ticks after its stamp; lead 1 (85 ms);
    its last row is 15 ticks after the stamp. Tick k is 1.5 + (k - 1) ticks after it: the first one at least 9
    (a period past the grid step) where a plan one tick later would not be ready by row 15 (k + 0.5 + 1 + 1 >
    15) is tick 13: planned there on observation 7, adopted at tick 14 (14.5 <= 15: never ran out)."""
    s, plans, notes, switches = grid_timeline([0.08], 20, drop=set(range(8, 20)))
    assert plans == [0, 7] and switches == [1, 14] and s.off_grid == 1
    assert "no observation at or after step 8 came in time" in notes[1]


def test_chunks_without_rows_to_spare_stay_on_the_grid_and_hold_their_last_row_until_the_switch():
    """8-row chunks with replan 8 (config/demo.yaml's k = replan_steps: the last row is 7 ticks after the stamp),
    inference 80 ms: a chunk from the grid step 8 is ready at 0.885 and adopted at tick 9, so the executing chunk
    holds its last row at ticks 8 (the rule before the grid held it too, at random). Starts stay 8 apart, none
    counted off the grid."""
    s, plans, notes, switches = grid_timeline([0.08], 40, rows=8)
    assert plans == [0, 8, 16, 24, 32] and switches == [1, 9, 17, 25, 33] and s.off_grid == 0
    assert notes == [None] * 5
    _, old, _, _ = grid_timeline([0.08], 40, rows=8, steps=False)  # before the grid: armed from the adoption
    assert old != plans


def test_a_lead_over_replan_steps_falls_back_to_arming_from_the_adoption_tick():
    """Inference 880 ms + transport 5 ms: lead 9 > replan 8 (one plan runs at a time), 16-row chunks. As before
    the grid: planned on the newest observation at tick 8 (since 8 - 1 tick of adoption = 7 >= 8 - lead), off
    the grid and counted, with the latency in the note."""
    s, plans, notes, switches = grid_timeline([0.88], 40, rows=16)
    assert s.lead_ticks() == 8 and s.grid_target() is None
    assert len(plans) >= 3 and s.off_grid == len(plans) - 1 and notes[0] is None
    assert all("plan latency 885 ms (9 ticks)" in n for n in notes[1:])
    assert any(b - a != 8 for a, b in zip(plans, plans[1:]))


def test_planned_step_is_the_recorded_chunk_step():
    from types import SimpleNamespace

    from bora_policy.runtime.observation import planned_step

    stamp = SimpleNamespace(sec=12, nanosec=340_000_000)
    obs = SimpleNamespace(episode_id=3, step=41, header=SimpleNamespace(stamp=stamp))
    assert planned_step(obs, 10.0, 10.0) == 41  # the sync node's step
    obs.episode_id = 0  # no episode: the stamp's step on the current episode's time base, round(2.34 * 10)
    assert planned_step(obs, 10.0, 10.0) == 23 and planned_step(obs, None, 10.0) == 41


def test_boundary_blend_then_velocity_limit_bounds_every_step():
    """Chunk A at 0 then chunk B at 1.0 rad: the blend lasts 2 * gap / v and each step <= v * dt."""
    v = (0.5, 2.0)  # joint 0 at 0.5 rad/s (0.05 rad per tick), joint 1 at 2.0 rad/s
    s = sched(replan=100, blend=1, max_velocity=v)
    s.begin_episode([0.0, 0.0], 0.0)
    s.adopt(np.zeros((30, 2)), 0.0, 0.0)
    cmds = [s.step(0.0).position]
    s.adopt(np.ones((30, 2)), 0.1, 0.1)  # gap 1.0 on both joints: blend duration max(0.2, 2 * 1.0 / 0.5) = 4 s
    for k in range(1, 60):
        cmds.append(s.step(k * DT).position)
    steps = np.abs(np.diff(np.asarray(cmds), axis=0))
    assert np.all(steps[:, 0] <= 0.05 + 1e-12) and np.all(steps[:, 1] <= 0.2 + 1e-12)
    # hand-computed blend: w(t) = (t - 0.0) / 4.0 (t_prev = the tick at 0.0), unclipped on joint 1
    np.testing.assert_allclose(np.asarray(cmds)[1:11, 1], [k * DT / 4.0 for k in range(1, 11)], atol=1e-12)
    np.testing.assert_allclose(np.asarray(cmds)[1:6, 0], [0.025 * k for k in range(1, 6)], atol=1e-12)
    assert np.asarray(cmds)[-1] == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="max_velocity"):
        ChunkExecutorConfig(max_velocity=(0.5, 0.0))


def test_resume_holds_the_last_command_and_the_first_chunk_cross_fades_from_it_as_at_a_boundary():
    """HOLD -> AUTONOMOUS at 2.05 s (the node's SetMode): its last command, the hold target H = (0.5, -0.3), went
    out at 2.0; the arm rests at its measured state M = (0.48, -0.31), below it. Blend 2 ticks: w = 1/3, 2/3, 1."""
    H, M = [0.5, -0.3], [0.48, -0.31]
    hold = HoldTarget(2 * DT)  # as in the node: the last command while the stream is unbroken
    hold.sent(2.0, H, ["a", "b"])
    s = sched(replan=4)
    s.begin_episode(M, 0.0)
    s.adopt(np.full((5, 2), 2.0), 0.0, 0.0)  # the chunk executing when HOLD began, left at the switch
    s.step(0.0)
    assert s.resume(hold.target(2.05)[0], 2.05) and s.plan_due()  # the old chunk forgotten, plan at once
    assert s.step(2.1).position.tolist() == H and s.step(2.2).position.tolist() == H  # H: not M, not 2.0
    chunk = np.array([[0.6, -0.3], [0.7, -0.2], [0.8, -0.1], [0.9, 0.0], [1.0, 0.1]])
    s.adopt(chunk, 2.1, 2.3)  # planned from the observation at 2.1, adopted at the tick at 2.3
    got = [s.step(t).position for t in (2.3, 2.4, 2.5)]
    # from the tick before the switch (2.2): 2.3 -> 2/3 H + 1/3 row 2, 2.4 -> 1/3 H + 2/3 row 3, 2.5 -> row 4
    np.testing.assert_allclose(got, [[0.6, -0.7 / 3], [2.3 / 3, -0.1], [1.0, 0.1]], atol=1e-9)
    # the same as a chunk boundary after a chunk that was commanding H
    b = sched(replan=4)
    b.begin_episode(None, 2.0)
    b.adopt(np.tile(H, (5, 1)), 2.0, 2.0)
    np.testing.assert_allclose([b.step(2.1).position, b.step(2.2).position], [H, H], atol=1e-12)
    b.adopt(chunk, 2.1, 2.3)
    np.testing.assert_allclose([b.step(t).position for t in (2.3, 2.4, 2.5)], got, atol=1e-12)
    # no recent command (e.g. after PAUSED): nothing held; the node holds the next fresh measured state
    assert hold.target(2.3) is None and not s.resume(None, 2.3) and not s.has_command and s.step(2.4) is None


def test_a_plan_requested_before_a_suspend_resume_or_episode_start_is_stale_and_changes_nothing():
    """Found in review: a plan in flight when the node left AUTONOMOUS came back during HOLD and was adopted at
    the resume; its chunk is indexed from its observation's stamp, so after a 2 s HOLD the executor started
    at its row (2.15 - 0.0) / 0.1 = 21.5, clamped to the last row 7. Now each begin_episode / suspend / resume
    starts a generation; a plan of an older one is stale: ready() False (no latency measured, nothing adopted),
    failed() changes nothing. 10 Hz, replan 4, no blend; a chunk's row i has the value i."""
    chunk = np.arange(8, dtype=np.float64).reshape(8, 1)
    s = sched(replan=4, blend=0)
    s.begin_episode([0.0], 0.0)
    assert s.on_tick(0.0)  # tick 0.05: plan at once on observation 0.0
    g1 = s.generation
    s.requested(0.0, 0.05, step=0)
    s.suspend()  # HOLD at 0.1, the plan still running
    assert s.stale(g1) and not s.in_flight and not s.stale(s.generation) and not s.stale(None)
    assert not s.ready(0.3, g1) and list(s.latencies) == []  # ready during HOLD: discarded, not measured
    s.failed(g1)  # (as after an error of it: nothing to undo)
    assert s.resume([0.5], 2.05) and s.stale(g1)  # AUTONOMOUS at 2.05, holding the last command 0.5
    assert s.on_tick(2.0)  # plan at once on the newest observation (2.0)
    g2 = s.generation
    s.requested(2.0, 2.1, step=20)
    # the race on the inference thread: a stale plan's error or result reported after the new request
    s.failed(g1)
    assert s.in_flight and not s.on_tick(2.1) and not s.ready(2.15, g1) and list(s.latencies) == []
    assert s.ready(2.2, g2) and s.latencies[-1] == pytest.approx(0.1)  # requested 2.1, ready 2.2
    s.adopt(chunk, 2.0, 2.25)
    cmd = s.step(2.25)  # row (2.25 - 2.0) / 0.1 = 2.5: between rows 2 and 3 (not the clamped row 7)
    assert cmd.position.tolist() == pytest.approx([2.5]) and cmd.chunk_index == 2
    # an episode start makes the plan in flight stale too; resume() alone as well
    assert s.on_tick(2.35) is False  # (replan 4: not due yet)
    g3 = s.generation
    s.requested(2.3, 2.35, step=23)
    s.begin_episode(None, 2.4)
    assert s.stale(g3) and not s.in_flight and not s.ready(2.5, g3)
    g4 = s.generation
    s.requested(2.4, 2.45, step=0)
    assert s.resume(None, 2.5) is False and s.stale(g4) and not s.in_flight


def test_velocity_limit_last_value_repeats_and_clips_the_chunks_own_motion():
    s = sched(replan=100, blend=0, max_velocity=(0.5, 1.0))
    s.begin_episode(None, 0.0)
    s.adopt(np.arange(5.0)[:, None] * np.ones((1, 3)), 0.0, 0.0)  # 1 rad per row at 10 Hz: 10 rad/s
    np.testing.assert_allclose(s.executor.velocity_limit(), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(s.step(0.0).position, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(s.step(0.1).position, [0.05, 0.1, 0.1])
    # a hard switch (blend_steps 0) still blends, over 2 * gap / v = 2 * (3 - 1) / 0.5 = 8 s (gap between
    # the sources at the last tick): at 0.2 the blend is 2.0 + (0.1 / 8) * 1.0, the step is clipped again
    s.adopt(np.full((5, 3), 3.0), 0.1, 0.1)
    assert s.executor._src.duration == pytest.approx(8.0)
    np.testing.assert_allclose(s.step(0.2).position, [0.1, 0.2, 0.2])


def test_phase_correction_moves_the_tick_to_latency_after_the_observation():
    # tick 0.050 after the stamp, target 0.020: 30 ms late -> advance by gain * 30 ms, clipped to 5 ms
    assert phase_correction(1.05, 1.0, 0.02, 0.1) == pytest.approx(-0.005)
    assert phase_correction(1.025, 1.0, 0.02, 0.1, max_shift=1.0) == pytest.approx(-0.0025)
    # tick 0.010 after: 10 ms early -> delay by 5 ms; wrapped: 0.095 after = 0.005 before the next (early)
    assert phase_correction(1.01, 1.0, 0.02, 0.1, max_shift=1.0) == pytest.approx(0.005)
    assert phase_correction(1.095, 1.0, 0.02, 0.1, max_shift=1.0) == pytest.approx(0.0125)
    # simulated lock: ticks every 0.1 s from phase 0.07, observations at multiples of 0.1, target 0.03
    t, shifts = 0.07, []
    for _ in range(40):
        sh = phase_correction(t, np.floor(t / DT) * DT, 0.03, DT)
        shifts.append(sh)
        t += DT + sh
    assert (t - np.floor(t / DT) * DT) == pytest.approx(0.03, abs=1e-6) and abs(shifts[-1]) < 1e-6


def test_late_phase_by_hand():
    # stamps at phases 10, 10, 10, 10, 30 ms of a 100 ms period: circular mean 14 ms, deviations -4 x4, +16;
    # 90th percentile of the deviations (linear interpolation): -4 + 0.6 * 20 = 8 -> 22 ms
    assert late_phase([0.01, 0.11, 0.21, 0.31, 0.43], 0.1) == pytest.approx(0.022, abs=1e-9)
    # across the wrap: phases 95 and 5 ms -> mean 0; deviations -5, +5; 90th percentile 4 ms
    assert late_phase([0.095, 0.205], 0.1) == pytest.approx(0.004, abs=1e-9)


def test_phase_shift_only_with_observations_at_the_control_rate():
    s = sched()
    s.begin_episode([0.0], 0.0)
    s.latencies.extend([0.012] * 3)
    for k in range(4):
        s.on_observation(k * 0.1, k * 0.1 + 0.008)  # transport 8 ms + inference 12 ms + margin 10 ms = 30 ms
    assert s.phase_shift(0.35, 0.3) == pytest.approx(-0.005)  # 50 ms after, target 30 ms: advance (clipped)
    assert s.phase_shift(0.336, 0.3) == pytest.approx(-0.003)  # 36 ms after: advance by half of 6 ms
    # jittery stamps (phases 0, 0, 0, 20 ms, ...; period 100 ms): the lock aims after the late ones
    s.obs_stamps.clear()
    s.obs_stamps.extend([1.0, 1.1, 1.2, 1.32, 1.4, 1.5, 1.6, 1.72, 1.8, 1.9])
    ref = late_phase(s.obs_stamps, DT)
    assert ref == pytest.approx(0.02, abs=1e-9)  # 2 of 10 stamps 20 ms late: the 90th percentile is theirs
    assert ref == pytest.approx(late_phase(np.asarray(s.obs_stamps) + 5 * DT, DT), abs=1e-9)
    assert s.phase_shift(2.0 + ref + 0.03, 1.9) == pytest.approx(0.0, abs=1e-9)
    fast = sched()
    fast.latencies.append(0.02)
    for k in range(4):
        fast.on_observation(k / 30)  # a 30 Hz camera under a 10 Hz loop: no lock
    assert fast.phase_shift(0.35, 0.1) == 0.0
    assert sched(ahead=False).phase_shift(0.35, 0.3) == 0.0


def test_control_loop_shift_moves_the_following_deadlines():
    now = [0.0]
    ticks = []

    def tick():
        ticks.append(now[0])
        if len(ticks) == 2:
            loop.shift(0.03)
        if len(ticks) == 4:
            loop.stop()

    def sleep(dt):
        now[0] += dt

    loop = ControlLoop(0.1, tick, clock=lambda: now[0], sleep=sleep)
    loop._run()
    assert np.diff(ticks) == pytest.approx([0.1, 0.13, 0.1])
    with pytest.raises(ValueError, match="finite"):
        loop.shift(float("nan"))


def test_plan_worker_runs_one_plan_at_a_time_and_reports_errors():
    import threading

    from bora_policy.runtime.plan_worker import PlanWorker

    gate, done = threading.Event(), threading.Event()
    got, errors = [], []

    def plan(x):
        gate.wait(5.0)
        if x == "bad":
            raise RuntimeError("no chunk")
        return x * 2

    def on_result(x, r):
        got.append((x, r))
        done.set()

    def on_error(x, e):
        errors.append((x, str(e)))
        done.set()

    w = PlanWorker(plan, on_result, on_error)
    try:
        assert w.submit(3) and w.busy
        assert not w.submit(4)  # busy: refused, nothing queued behind it
        gate.set()
        assert done.wait(5.0) and got == [(3, 6)]
        done.clear()
        for _ in range(100):  # free again once the callback has run
            if w.submit("bad"):
                break
            threading.Event().wait(0.01)
        assert done.wait(5.0) and errors == [("bad", "no chunk")]
    finally:
        w.stop()
    assert not w.submit(5)  # stopped


def test_replan_steps_must_lie_within_the_ticks_a_chunk_lasts():
    assert check_replan_steps(16, 16, 10.0, 10.0) == 16 and check_replan_steps(1, 16, 10.0, 10.0) == 1
    # 16 rows at 10 Hz reach 1.5 s after the observation: the ticks 0 .. 30 at 20 Hz, 31 of them
    assert check_replan_steps(31, 16, 20.0, 10.0) == 31
    # at 3 Hz the ticks at 0, 1/3, 2/3, 1 and 4/3 s fall within the 1.5 s: 5
    assert check_replan_steps(5, 16, 3.0, 10.0) == 5
    for n, hz, want in ((17, 10.0, "[1, 16]"), (0, 10.0, "[1, 16]"), (32, 20.0, "[1, 31]"), (6, 3.0, "[1, 5]")):
        with pytest.raises(ValueError) as e:
            check_replan_steps(n, 16, hz, 10.0)
        msg = str(e.value)
        assert msg.startswith(f"replan_steps = {n} is out of range: expected in {want}") and "\n" not in msg
