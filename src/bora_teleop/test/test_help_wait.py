"""Help requests on the teleop side without ROS (issue 19): pending until a takeover, a timeout or the
episode's end; the arbiter's optional HOLD while one waits."""

from __future__ import annotations

import numpy as np
import pytest
from test_arbiter import READY, make

from bora_teleop.help_wait import HelpWait, PendingHelp, help_line
from bora_teleop.sources import PERSON


def req(ep=1, t=0.0, pred=4) -> PendingHelp:
    return PendingHelp(ep, 37, "low_value", 0.125, 0.25, pred, t)


def test_line_and_lifecycle():
    assert help_line(req()) == (
        "HELP REQUESTED by the policy: episode 1 step 37, low_value +0.125 < +0.250; failure predicted in 4 steps"
        " -- press t to take over"
    )
    assert "predicted" not in help_line(req(pred=-1))
    h = HelpWait(timeout_s=2.0)
    assert h.request(req(ep=2), current_episode=1) == ""  # another episode's request is not shown
    assert h.pending is None and h.requests == 0
    assert h.request(req(), current_episode=1).startswith("HELP REQUESTED")
    assert h.update(1.0, taken_over=False) == "" and h.pending is not None
    assert h.update(1.5, taken_over=True) == "answered" and h.pending is None and h.answered == 1
    h.request(req(t=10.0), None)
    assert h.update(11.9, False) == "" and h.update(12.0, False) == "timeout" and h.timed_out == 1
    h.request(req(t=20.0), None)
    h.end_episode()
    assert h.pending is None
    with pytest.raises(ValueError, match="help_wait_timeout_s"):
        HelpWait(timeout_s=0.0)


def test_hold_only_when_enabled():
    off, on = HelpWait(False), HelpWait(True)
    for h in (off, on):
        h.request(req(), None)
    assert not off.holds() and on.holds()
    on.update(0.1, taken_over=True)
    assert not on.holds()


def test_arbiter_holds_while_help_waits_and_takeover_ends_it():
    a = make(ramp=0.0)
    cmd = np.r_[READY + 0.05, 0.3, 0.4]
    a.set_policy(cmd, 0.0, episode_id=1, step=3)
    r = a.tick(0.05)
    assert not r.held
    np.testing.assert_allclose(r.command, cmd)
    a.help_hold = True
    a.set_policy(cmd + 0.02, 0.1, episode_id=1, step=4)
    r = a.tick(0.15)
    assert r.held and r.hold_reason == "help_wait" and "operator" in r.error
    np.testing.assert_allclose(r.command, cmd)  # the last safe command is held, the policy's new one is not sent
    # the operator takes over (hard switch): the hold no longer applies at beta = 1
    a.set_arm_target(READY, 0.2, PERSON)
    from bora_teleop.glove import GloveSample

    a.set_glove(GloveSample(np.array([0.4, 0.2]), 0, 0.2, 0.2, "topic"), PERSON)
    a.request_takeover(PERSON, True, 0.2)
    a.set_policy(cmd, 0.2, episode_id=1, step=5)
    r = a.tick(0.25)
    assert r.hold_reason != "help_wait" and r.beta == 1.0 and r.is_intervention
