"""The scripted operator's ``requested`` mode (issue 19): it takes over only on a help request, after its
reaction delay, and never from privileged state (a stalled policy that the privileged mode takes over
from is left alone without a request)."""

import numpy as np
import pytest

from bora_sim.env import make_env
from bora_sim.operator import OperatorConfig, ScriptedOperator


def run(mode: str, request_at: int | None = None, requests=(), max_steps: int = 120, **kw):
    env = make_env("press_button", render=False)
    obs, info = env.reset(seed=2)
    op = ScriptedOperator(env, OperatorConfig(mode=mode, grace_s=1.0, patience_s=1.5, **kw), seed=0)
    still = np.concatenate([obs["arm_qpos"], obs["hand_qpos"]])  # a "policy" that does nothing
    flags, accepted = [], []
    term = trunc = False
    step = 0
    while not (term or trunc) and step < max_steps:
        if step == request_at or step in requests:
            accepted.append((step, op.request_help(int(info["step"]), "low_value")))
        dec = op.observe(info)
        a = (1 - dec.beta) * still + dec.beta * op.human_action() if dec.takeover else still
        flags.append(dec.takeover)
        obs, _, term, trunc, info = env.step(a)
        step += 1
    op.close_open_segment(bool(info["success"]))
    return op, flags, accepted, info


def test_no_request_no_takeover_although_privileged_would():
    op, flags, _, _ = run("privileged", max_steps=40)
    assert any(flags) and op.interventions()[0]["reason"] == "no progress"  # the negative control
    op, flags, _, _ = run("requested", max_steps=80)
    assert not any(flags) and op.interventions() == []


def test_request_leads_to_takeover_after_the_reaction_delay():
    # info["step"] at loop step n is n (the reset's info has step 0): a request at step 20 with 0.3 s at
    # 10 Hz reacts at step 23
    op, flags, accepted, info = run("requested", request_at=20, reaction_s=0.3)
    assert accepted == [(20, True)]
    assert flags.index(True) == 23 and not any(flags[:23])
    iv = op.interventions()
    assert iv[0]["start"] == 23 and iv[0]["reason"] == "help request: low_value"
    assert info["success"] and iv[0]["recovered"]  # the operator rescues the stalled episode


def test_requests_in_control_or_over_budget_are_ignored():
    op, flags, accepted, _ = run("requested", requests=(10, 12, 30), reaction_s=0.0, budget=1, max_steps=60)
    # 10: accepted (takeover at 10); 12 and 30: in control -> ignored
    assert accepted == [(10, True), (12, False), (30, False)]
    assert flags.index(True) == 10 and len(op.interventions()) == 1


def test_config_errors():
    with pytest.raises(ValueError, match="operator mode"):
        OperatorConfig(mode="watching")
    with pytest.raises(ValueError, match="reaction_s"):
        OperatorConfig(reaction_s=-0.1)
