"""`bora train online --env ros` hands the online config's operator and help monitor to the graph.

Before, the ROS path ran the bridge's scripted operator with OperatorConfig's defaults whatever the online
config said (`config/online_tiny.yaml` then: budget 2, grace 1 s, patience 1.5 s, hand back after 3 s), so the
demo's online stage and `--env sim` used different operators. Checked by reading the graph's parameter
file back through the functions the bridge and the policy node use (`operator_from_params`,
`policy_help.monitor_config`).
"""

from __future__ import annotations

import pytest
import yaml

from bora_sim.operator import OperatorConfig, operator_config, operator_from_params
from bora_trainer.config_io import load_config
from bora_trainer.online.config import OnlineRunConfig
from bora_trainer.online.run_ros import _params_file


def _graph_params(tmp_path, raw: dict) -> dict:
    from bora_trainer.up import default_params

    cfg = load_config(OnlineRunConfig, raw)
    (tmp_path / "off").mkdir()
    path = _params_file(cfg, tmp_path / "off", 64, 8, default_params("sim"), tmp_path)
    return yaml.safe_load(path.read_text())


def test_bridge_operator_is_the_online_configs(tmp_path):
    op = {"budget": 2, "grace_s": 1.0, "patience_s": 1.5, "recovery_s": 3.0}
    p = _graph_params(tmp_path, {"task": "press_button", "operator": op})["sim_bridge"]["ros__parameters"]
    got = operator_from_params(p["operator_overrides"], p["operator_mode"], p["operator_reaction_s"])
    assert got == OperatorConfig(budget=2, grace_s=1.0, patience_s=1.5, recovery_s=3.0)
    assert got.mode == "privileged" and got.reaction_s == 0.3


def test_per_task_operator_settings_reach_the_bridge(tmp_path):
    op = {"budget": 2, "task_overrides": {"pull_tissue": {"patience_s": 2.5, "deadline_margin_s": 0.0}}}
    p = _graph_params(tmp_path, {"task": "pull_tissue", "operator": op})["sim_bridge"]["ros__parameters"]
    got = operator_from_params(p["operator_overrides"], p["operator_mode"], p["operator_reaction_s"])
    assert got.task_overrides == {"pull_tissue": {"patience_s": 2.5, "deadline_margin_s": 0.0}}
    pt, ob = got.for_task("pull_tissue"), got.for_task("open_box")
    assert (pt.patience_s, pt.deadline_margin_s, pt.budget) == (2.5, 0.0, 2)
    assert (ob.patience_s, ob.deadline_margin_s) == (OperatorConfig().patience_s, 1.5)


@pytest.mark.parametrize("task, speed", [("open_box", 1.3), ("press_button", 2.0), ("pick_plush_toy", 1.3),
                                         ("pick_and_place", 2.0)])
def test_the_demo_configs_operator_pace_reaches_the_bridge(tmp_path, task, speed):
    """config/online_tiny.yaml (the demo's and the evidence protocol's online stage): speed 2.0, open_box and
    pick_plush_toy 1.3 (operator_speed.md); the bridge's operator is built with ``for_task`` of what the
    parameter file holds."""
    from bora_trainer.config_io import read_yaml
    from bora_trainer.demo.config import REPO_ROOT

    op = read_yaml(REPO_ROOT / "config" / "online_tiny.yaml")["operator"]
    p = _graph_params(tmp_path, {"task": task, "operator": op})["sim_bridge"]["ros__parameters"]
    got = operator_from_params(p["operator_overrides"], p["operator_mode"], p["operator_reaction_s"]).for_task(task)
    assert (got.speed, got.budget, got.grace_s, got.patience_s, got.recovery_s) == (speed, 2, 1.0, 1.5, 0.0)


def test_requested_mode_reaches_the_bridge_and_the_policy(tmp_path):
    from bora_policy.nodes.policy_help import monitor_config

    raw = {"task": "open_box", "operator": {"mode": "requested", "reaction_s": 0.5, "budget": 1},
           "help_monitor": {"threshold": -0.25, "persist_steps": 3, "failure_value": 0.9}}
    params = _graph_params(tmp_path, raw)
    b = params["sim_bridge"]["ros__parameters"]
    got = operator_from_params(b["operator_overrides"], b["operator_mode"], b["operator_reaction_s"])
    assert (got.mode, got.reaction_s, got.budget) == ("requested", 0.5, 1)
    pol = params["policy"]["ros__parameters"]
    mon = monitor_config(30.0, pol["help_calibration"], pol["help_task"])
    assert (mon.threshold, mon.persist_steps, mon.failure_value) == (-0.25, 3, 0.9)
    assert mon.control_hz == 30.0  # the node's own rate wins over the file's


def test_no_help_calibration_without_requested_mode(tmp_path):
    pol = _graph_params(tmp_path, {"task": "press_button"})["policy"]["ros__parameters"]
    assert "help_calibration" not in pol


@pytest.mark.parametrize(
    "overrides, match",
    [
        ("{", "operator_overrides: expected a JSON object"),
        ("[1, 2]", "operator_overrides: expected a JSON object"),
        ('{"patiense_s": 1}', r"unknown field\(s\) \['patiense_s'\]"),
        ('{"mode": "requested"}', r"field\(s\) \['mode'\] given twice"),
    ],
)
def test_operator_params_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        operator_from_params(overrides, "privileged", 0.3)


def test_operator_config_from_a_dict():
    assert operator_config(None) == OperatorConfig()
    assert operator_config({"budget": 1}).budget == 1
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['budgte'\]"):
        operator_config({"budgte": 1})
