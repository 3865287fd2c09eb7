"""The teleop sections of config/sim.yaml and config/deploy.yaml build a working arbiter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bora_teleop.kinematics import panda_tool_position
from bora_teleop.params import PARAMS, build_arbiter

ROOT = Path(__file__).resolve().parents[3]


def _section(name: str) -> dict:
    """The teleop section + the graph's control_hz (config/graph.yaml), as the node passes them."""
    from bora_policy.common.graph_params import load_graph_params

    P = yaml.safe_load((ROOT / "config" / name).read_text())["teleop"]["ros__parameters"]
    return {**P, "control_hz": load_graph_params().control_hz}


def test_sim_section_matches_the_simulated_robot():
    P = _section("sim.yaml")
    arb = build_arbiter(P)
    assert arb.cfg.control_hz == 10.0 and len(arb.hand_joint_names) == 18
    # the sim's home pose (bora_sim.scene.ARM_HOME) puts the grasp site at ~(0.5, 0, 0.25): inside the box
    home = np.array([0.0, 0.0, 0.0, -2.36, 0.0, 0.8, 0.0])
    p = panda_tool_position(home, P["joint_offsets"], P["tool_offset"])
    np.testing.assert_allclose(p, [0.5, 0.0, 0.25], atol=0.01)
    assert arb.safety.in_workspace(home)
    from bora_sim import scene
    np.testing.assert_allclose(home, scene.ARM_HOME)


def test_deploy_section_has_the_safe_defaults_and_the_dexhand_template():
    P = _section("deploy.yaml")
    assert set(P) <= set(PARAMS) | {"control_hz"}
    assert (
        P["watchdog_timeout_s"] == 0.2 and max(P["arm_max_velocity"]) <= 0.5 and P["hand_max_velocity"] <= 1.0
    )
    assert P["udp_host"] == "127.0.0.1"
    with pytest.raises(FileNotFoundError, match="retarget_file='config/missing.yaml'.*calibrate one"):
        build_arbiter(P | {"retarget_file": "config/missing.yaml"})
    arb = build_arbiter(P)  # the shipped DexHand021 template (robot_description_topic is read by the node only)
    assert len(arb.hand_joint_names) == 12 and arb.safety.max_step[0] == pytest.approx(0.5 / P["control_hz"])
    assert np.all(arb.safety.upper[7:] <= 1.2) and np.all(arb.safety.lower[7:] >= 0.0)


def test_parameter_errors_name_the_parameter():
    with pytest.raises(ValueError, match="unknown teleop parameters \\['rate'\\]"):
        build_arbiter({"rate": 10.0})
    with pytest.raises(ValueError, match="arm_command_type"):
        build_arbiter(
            {"arm_command_type": "velocity", "retarget_file": "config/retarget_shadow.yaml", "control_hz": 10.0}
        )
    with pytest.raises(ValueError, match="parameter control_hz: missing"):
        build_arbiter({"retarget_file": "config/retarget_shadow.yaml"})
    with pytest.raises(ValueError, match="hand_joint_names is not set"):
        build_arbiter({"control_hz": 10.0})


def test_every_parameter_has_a_description_and_the_safety_limits_a_range():
    from bora_teleop.param_docs import specs

    sp = {s.name: s for s in specs(PARAMS)}
    assert set(sp) == set(PARAMS) and all(s.description for s in sp.values())
    for name in ("watchdog_timeout_s", "human_timeout_s", "arm_max_velocity", "hand_max_velocity", "udp_port"):
        assert sp[name].range is not None, name
    assert sp["arm_command_type"].choices == ("forward", "trajectory")
    with pytest.raises(ValueError, match="without a description.*'new_one'"):
        specs({**PARAMS, "new_one": 1.0})
