"""Online episodes in ``requested`` operator mode (issue 19): the scripted operator takes over only when the
help monitor, reading the round's critic, asks; never on its privileged detector.

A tiny random-init offline run (the real model classes, saved as `bora train offline` saves them) drives
press_button on the real simulated robot with a 6 s time limit (60 steps at 10 Hz). Expectations by hand:
* threshold +1e9 (every value is "low"), grace 5, persist 2, reaction 0.3 s: low ticks count from step 0,
  so the first request comes at the end of the grace, step 5; the takeover 3 steps later, at step 8;
* threshold -1e9: no request and no takeover, though the privileged operator takes this failing episode
  over on the same seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from bora_trainer.config_io import load_config
from bora_trainer.online.config import OnlineRunConfig

TASK = "press_button"


def _episode(vla, operator: dict, monitor: dict | None, seed: int = 3):
    from bora_policy.models.residual import ResidualPolicy
    from bora_sim.env import make_env
    from bora_trainer.online.env_sim import rollout

    cfg = load_config(OnlineRunConfig, {"task": TASK, "operator": operator, "help_monitor": monitor or {}})
    env = make_env(TASK, control_hz=10.0, image_size=48, time_limit_s=6.0)
    try:
        pol = ResidualPolicy.from_normalizer(vla.normalizer)
        return rollout(env, vla, pol, 0.0, 8, seed=seed, operator_cfg=cfg.operator,
                       monitor_cfg=cfg.monitor_config(), critic=vla.critic)
    finally:
        env.close()


MON = {"grace_steps": 5, "persist_steps": 2, "min_interval_s": 100.0}
REQ = {"mode": "requested", "reaction_s": 0.3, "budget": 1}


def test_requests_lead_to_takeovers_after_the_reaction_time(frozen_vla):
    ep = _episode(frozen_vla, REQ, {**MON, "threshold": 1e9})
    info, a = ep["info"], ep["arrays"]
    assert info["help_requests"] == [5]  # one request: the budget (1) is spent on it, min interval 100 s
    assert np.flatnonzero(a["is_intervention"])[0] == 8  # 5 + 0.3 s x 10 Hz
    assert [iv["reason"] for iv in info["interventions"]] == ["help request: low_value"]
    # the operator presses the button and keeps control to the end: watched from the request to the end
    n = len(a["action"])
    assert info["success"] and a["is_intervention"][8:].all() and info["watched_steps"] == n - 5


def test_no_request_no_takeover_while_the_privileged_operator_would(frozen_vla):
    quiet = _episode(frozen_vla, REQ, {**MON, "threshold": -1e9})
    assert quiet["info"]["help_requests"] == [] and not quiet["arrays"]["is_intervention"].any()
    assert quiet["info"]["watched_steps"] == 0
    priv = _episode(frozen_vla, {"budget": 1}, None)
    assert priv["arrays"]["is_intervention"].any() and "help_requests" not in priv["info"]


def test_requested_mode_config_errors():
    with pytest.raises(ValueError, match=r"help_monitor.threshold"):
        load_config(OnlineRunConfig, {"operator": {"mode": "requested"}})
    with pytest.raises(ValueError, match=r"help_monitor: .*unknown field\(s\) \['treshold'\]"):
        load_config(OnlineRunConfig, {"operator": {"mode": "requested"}, "help_monitor": {"treshold": 0.1}})
    with pytest.raises(ValueError, match="operator's mode on pick_plush_toy is not 'requested'"):
        load_config(OnlineRunConfig, {"help_monitor": {"threshold": 0.1}})
    cfg = load_config(OnlineRunConfig, {"control_hz": 30.0, "operator": {"mode": "requested"},
                                        "help_monitor": {"threshold": 0.1}})
    assert cfg.monitor_config().control_hz == 30.0 and cfg.monitor_config().threshold == 0.1
    # the mode on the run's task decides (OperatorConfig.for_task): a per-task 'requested' needs the monitor,
    # another task's does not, and a per-task 'privileged' turns a global 'requested' off on that task
    per_task = {"task_overrides": {"open_box": {"mode": "requested"}}}
    with pytest.raises(ValueError, match=r"help_monitor.threshold"):
        load_config(OnlineRunConfig, {"task": "open_box", "operator": per_task})
    assert load_config(OnlineRunConfig, {"task": "press_button", "operator": per_task}).monitor_config() is None
    cfg = load_config(OnlineRunConfig, {"task": "open_box", "operator": per_task, "help_monitor": {"threshold": 0.1}})
    assert cfg.operator_mode() == "requested" and cfg.monitor_config().threshold == 0.1
    with pytest.raises(ValueError, match=r"operator: unknown field\(s\) \['patiense_s'\]"):  # checked at load
        load_config(OnlineRunConfig, {"operator": {"patiense_s": 2.0}})
    off = {"mode": "requested", "task_overrides": {"open_box": {"mode": "privileged"}}}
    assert load_config(OnlineRunConfig, {"task": "open_box", "operator": off}).monitor_config() is None
