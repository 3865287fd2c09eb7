"""The teleop node in its own process over real DDS (loopback): what reaches the drivers.

One node process serves the whole module (tests run in file order and leave it in a known state):
pass-through, the takeover blend (beta rising linearly, commands = convex combination, events with
r_int / r_rec), the watchdog hold, a NaN from the model, the latched e-stop and MarkEpisode.
"""

from __future__ import annotations

import numpy as np
import pytest
import rclpy  # noqa: E402, F401  (installed by make setup; a missing rclpy is a failure, not a skip)
from teleop_rig import ARM, HAND, READY, make_rig, retarget, serve, stamp, start_node  # noqa: E402

from bora_teleop.safety import FR3_LOWER, FR3_UPPER  # noqa: E402

# rates, step offsets and start-up windows on the wall clock: make test runs this module alone (not beside
# an xdist worker), see the Makefile
pytestmark = pytest.mark.timing

RAMP = 1.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("teleop")
    proc, log = start_node(tmp, ramp_time_s=RAMP)
    r = make_rig(proc)
    yield from serve(r, proc, log, 30.0)


def test_policy_command_passes_through_to_the_drivers(rig):
    rig.clear()
    rig.policy = np.r_[READY + 0.02, 0.4, 0.5]
    rig.run(1.0)
    last = rig.executed[-1]
    assert not last.held and not last.is_intervention and last.beta == 0.0
    assert list(last.command.joint_names) == ARM + HAND and last.command.episode_id == 5
    np.testing.assert_allclose(last.command.position, rig.policy, atol=1e-9)
    np.testing.assert_allclose(rig.arm_cmds[-1].data, rig.policy[:7], atol=1e-9)
    assert list(rig.hand_cmds[-1].name) == HAND
    np.testing.assert_allclose(rig.hand_cmds[-1].position, rig.policy[7:], atol=1e-9)


def test_arbiter_ticks_at_rate_hz_on_its_control_loop(rig):
    # rate_hz 20 (teleop_rig): the driver commands' stamps over 3 s keep the period on average (the loop
    # is on absolute deadlines), and the node says how its loop thread is scheduled
    rig.clear()
    rig.run(3.0)
    stamps = np.asarray([stamp(m.command.header.stamp) for m in rig.executed])
    assert len(stamps) > 40
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert rate == pytest.approx(20.0, rel=0.1)
    assert np.median(np.diff(stamps)) == pytest.approx(0.05, rel=0.2)
    # SCHED_FIFO (control_thread_priority, default 50) where this machine permits it, else a warning
    import os
    import threading

    permitted = []

    def try_fifo():
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
            permitted.append(True)
        except OSError:
            permitted.append(False)

    t = threading.Thread(target=try_fifo)
    t.start()
    t.join()
    log = rig.log.read_text()
    if permitted[0]:
        assert "control loop SCHED_FIFO priority 50" in log
    else:
        assert "not permitted" in log and "control loop normal scheduling" in log


def test_arbiter_locks_its_ticks_to_just_after_the_policy_commands(rig):
    """phase_lock (default on): with policy commands every period on an absolute grid, the arbiter moves its
    ticks to just after they arrive (10 % of a period + their jitter), so a command reaches the drivers in
    well under half a period; a free-running grid would take a uniform 0..1 period (median 25 ms at 20 Hz).
    Its ticks are only ever delayed: no interval between two driver commands is shorter than the period
    beyond the scheduling jitter."""
    import time

    rig.clear()
    sent: dict[int, float] = {}
    t0 = time.monotonic()
    nxt = t0
    while time.monotonic() < t0 + 5.0:
        if time.monotonic() >= nxt:
            sent[rig.step + 1] = time.time()  # the wall clock of the arbiter's stamps
            rig.publish_inputs()
            nxt += 0.05  # absolute grid: the policy's control loop
        rig.rclpy.spin_once(rig.node, timeout_sec=0.002)
    first: dict[int, float] = {}
    for m in rig.executed:
        first.setdefault(int(m.command.step), stamp(m.command.header.stamp))
    lat = np.asarray([first[k] - sent[k] for k in sorted(first) if k in sent and first[k] >= sent[k] - 0.01])
    late_half = lat[len(lat) // 2:]  # after the lock has converged (it starts within 2 s)
    assert len(late_half) > 20
    assert np.mean(late_half < 0.025) >= 0.8, np.round(late_half * 1e3, 1)
    stamps = np.asarray([stamp(m.command.header.stamp) for m in rig.executed])
    assert np.percentile(np.diff(stamps), 5) > 0.05 - 0.01


def test_takeover_blends_linearly_and_reports_events(rig):
    a_final = np.r_[READY + 0.02, 0.4, 0.5]
    rig.policy = a_final
    arm_h = READY + np.array([0.15, -0.1, 0.1, 0.2, -0.1, 0.1, 0.2])
    glove = np.array([1.0, 0.6])
    a_human = np.r_[arm_h, retarget(glove)]  # hand = [0.85, 0.8]
    rig.arm_target, rig.glove = arm_h, glove
    rig.run(0.5)
    rig.clear()
    rig.pub_takeover.publish(rig.Bool(data=True))
    rig.run(RAMP + 0.8)
    ramp = [m for m in rig.executed if 0.0 < m.beta < 1.0]
    assert len(ramp) >= 8, f"only {len(ramp)} intermediate blend steps seen"
    first = next(i for i, m in enumerate(rig.executed) if m.is_intervention)
    assert all(m.beta == 0.0 for m in rig.executed[:first])  # in flight before the request arrived
    for m in rig.executed[first:]:
        assert m.is_intervention and not m.held
        expected = (1.0 - m.beta) * a_final + m.beta * a_human
        np.testing.assert_allclose(m.command.position, expected, atol=1e-6)
    # beta rises linearly in time at 1 / ramp_time
    t = np.array([stamp(m.command.header.stamp) for m in ramp])
    b = np.array([m.beta for m in ramp])
    slope, icpt = np.polyfit(t - t[0], b, 1)
    assert slope == pytest.approx(1.0 / RAMP, rel=0.03)
    assert np.max(np.abs(b - (slope * (t - t[0]) + icpt))) < 0.01
    assert rig.executed[-1].beta == 1.0
    np.testing.assert_allclose(rig.executed[-1].command.position, a_human, atol=1e-9)
    # the driver topics carry exactly the blended commands
    sent_arm = np.array([c.data for c in rig.arm_cmds])
    for m in ramp:
        assert np.min(np.max(np.abs(sent_arm - np.asarray(m.command.position[:7])), axis=1)) < 1e-9
    sent_hand = np.array([c.position for c in rig.hand_cmds])
    for m in ramp:
        assert np.min(np.max(np.abs(sent_hand - np.asarray(m.command.position[7:])), axis=1)) < 1e-9
    starts = [e for e in rig.interventions if e.kind == 0]
    assert len(starts) == 1 and starts[0].reward == pytest.approx(-0.4) and starts[0].episode_id == 5
    # the operator reports the recovery, then releases: RECOVERED (r_rec), ramp down, END
    rig.pub_recovered.publish(rig.Bool(data=True))
    rig.run(0.3)
    rig.pub_takeover.publish(rig.Bool(data=False))
    rig.pub_recovered.publish(rig.Bool(data=False))
    assert rig.run(RAMP + 3.0, until=lambda: any(e.kind == 1 for e in rig.interventions))
    kinds = [e.kind for e in rig.interventions]
    assert kinds == [0, 2, 1], kinds
    assert rig.interventions[1].reward == pytest.approx(0.3) and rig.interventions[2].reward == 0.0
    down = [m for m in rig.executed if m.beta < 1.0 and stamp(m.command.header.stamp) > t[-1]]
    assert any(0.0 < m.beta < 1.0 and m.is_intervention for m in down)
    rig.run(0.3)
    assert rig.executed[-1].beta == 0.0 and not rig.executed[-1].is_intervention
    rig.arm_target = rig.glove = None


def test_stale_policy_command_holds_position(rig):
    rig.policy = np.r_[READY + 0.03, 0.35, 0.45]
    rig.run(0.5)
    last_sent = np.asarray(rig.executed[-1].command.position)
    rig.clear()
    rig.policy = None  # the policy dies
    assert rig.run(3.0, until=lambda: any(m.held for m in rig.executed))
    held = [m for m in rig.executed if m.held]
    assert held[0].hold_reason == "stale"
    rig.run(0.5)
    held = [m for m in rig.executed if m.held]
    assert len(held) >= 5
    for m in held:
        np.testing.assert_allclose(m.command.position, last_sent, atol=1e-9)  # holds the last safe command
    np.testing.assert_allclose(rig.arm_cmds[-1].data, last_sent[:7], atol=1e-9)
    rig.policy = np.r_[READY + 0.03, 0.35, 0.45]  # the policy comes back: no longer held
    assert rig.run(3.0, until=lambda: not rig.executed[-1].held)


def test_nan_from_the_model_holds_and_logs_an_error(rig):
    rig.run(0.3)
    last_sent = np.asarray(rig.executed[-1].command.position)
    rig.clear()
    bad = np.r_[READY, 0.3, 0.3]
    bad[2] = np.nan
    bad[8] = np.inf
    rig.policy = bad
    assert rig.run(3.0, until=lambda: sum(m.hold_reason == "nan" for m in rig.executed) >= 5)
    lo = np.r_[FR3_LOWER, 0.0, 0.0]
    hi = np.r_[FR3_UPPER, 1.5, 1.5]
    for c in rig.arm_cmds:
        assert (
            np.all(np.isfinite(c.data))
            and np.all(np.asarray(c.data) >= lo[:7])
            and np.all(np.asarray(c.data) <= hi[:7])
        )
    for c in rig.hand_cmds:
        assert np.all(np.isfinite(c.position))
    for m in rig.executed:
        if m.held:
            np.testing.assert_allclose(m.command.position, last_sent, atol=1e-9)
    assert "HOLD (nan)" in rig.log.read_text() and "non-finite" in rig.log.read_text()
    rig.policy = np.r_[READY, 0.3, 0.3]
    assert rig.run(3.0, until=lambda: not rig.executed[-1].held)


def test_estop_latches_until_the_reset_service(rig):
    from std_srvs.srv import Trigger

    rig.clear()
    rig.pub_estop.publish(rig.Bool(data=True))
    assert rig.run(3.0, until=lambda: any(m.hold_reason == "estop" for m in rig.executed))
    held_at = np.asarray([m for m in rig.executed if m.hold_reason == "estop"][0].command.position)
    assert rig.call(Trigger, "/bora/teleop/reset_estop", Trigger.Request()).success is False  # still pressed
    rig.pub_estop.publish(rig.Bool(data=False))
    rig.policy = np.r_[READY + 0.05, 0.5, 0.5]  # a valid, fresh, different command
    rig.clear()
    rig.run(1.0)
    assert len(rig.executed) >= 10
    for m in rig.executed:  # e-stop input false: still latched
        assert m.held and m.hold_reason == "estop"
        np.testing.assert_allclose(m.command.position, held_at, atol=1e-9)
    res = rig.call(Trigger, "/bora/teleop/reset_estop", Trigger.Request())
    assert res.success, res.message
    rig.clear()
    assert rig.run(3.0, until=lambda: len(rig.executed) > 3 and not rig.executed[-1].held)
    rig.run(0.5)
    np.testing.assert_allclose(rig.executed[-1].command.position, rig.policy, atol=1e-9)


def test_an_episode_outcome_ends_the_open_takeover(rig):
    # a takeover never spans two episodes: the bridge's (or operator's) SUCCESS ends it at once, with
    # RECOVERED (the correction completed the task) and END dated at the outcome's episode and step
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from bora_msgs.msg import EpisodeEvent

    pub = rig.node.create_publisher(
        EpisodeEvent, "/bora/episode", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    rig.policy = np.r_[READY + 0.02, 0.4, 0.5]
    rig.arm_target, rig.glove = READY + 0.05, np.array([0.5, 0.5])
    rig.run(0.5)
    rig.clear()
    rig.pub_takeover.publish(rig.Bool(data=True))
    assert rig.run(5.0, until=lambda: any(e.kind == 0 for e in rig.interventions))
    rig.run(0.3)
    pub.publish(EpisodeEvent(episode_id=5, kind=EpisodeEvent.SUCCESS, step=77, task="pick_plush_toy"))
    assert rig.run(5.0, until=lambda: any(e.kind == 1 for e in rig.interventions))
    rig.run(0.5)
    kinds = [e.kind for e in rig.interventions]
    assert kinds == [0, 2, 1], kinds  # START, RECOVERED, END
    rec, end = rig.interventions[1], rig.interventions[2]
    assert (rec.episode_id, rec.step, end.episode_id, end.step) == (5, 77, 5, 77)
    assert rec.reward == pytest.approx(0.3) and "SUCCESS" in end.reason
    last = rig.executed[-3:]
    assert all(m.beta == 0.0 and not m.is_intervention for m in last)
    # the operator's trigger is still "true": no new takeover until it changes again
    rig.pub_takeover.publish(rig.Bool(data=True))
    rig.run(0.5)
    assert [e.kind for e in rig.interventions] == [0, 2, 1]
    rig.pub_takeover.publish(rig.Bool(data=False))
    rig.arm_target = rig.glove = None
    rig.run(0.3)
    rig.node.destroy_publisher(pub)


def test_mark_episode_service_publishes_episode_events(rig):
    from bora_msgs.srv import MarkEpisode

    rig.clear()
    res = rig.call(
        MarkEpisode, "/bora/mark_episode", MarkEpisode.Request(kind=MarkEpisode.Request.SUCCESS, note="ok")
    )
    assert res.success and res.episode_id == 5
    assert rig.run(3.0, until=lambda: len(rig.episodes) >= 1)
    ev = rig.episodes[0]
    assert ev.kind == 1 and ev.episode_id == 5 and ev.task == "pick_plush_toy" and ev.note == "ok"
    res = rig.call(MarkEpisode, "/bora/mark_episode", MarkEpisode.Request(kind=9))
    assert not res.success
