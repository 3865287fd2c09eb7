"""Hand-driver adapter (bora_teleop.hand_adapter): message type, joint order, coupled joints and units, the
shipped DexHand021 and generic JointState files against the shipped retarget maps, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from bora_teleop.hand_adapter import HandAdapter
from bora_teleop.params import build_arbiter, build_hand_adapter
from bora_teleop.retarget import RetargetMap

ROOT = Path(__file__).resolve().parents[3]
INTERNAL = ["a", "b", "c"]
# the DexRobot SDK's 12 hardware DoF -> hand URDF joints (pyzlg_dexhand examples/ros_node/dexhand_ros.py)
DEXHAND_HW = {
    "th_dip": ["f_joint1_3", "f_joint1_4"], "th_mcp": ["f_joint1_2"], "th_rot": ["f_joint1_1"],
    "ff_spr": ["f_joint2_1", "f_joint4_1", "f_joint5_1"], "ff_dip": ["f_joint2_3", "f_joint2_4"],
    "ff_mcp": ["f_joint2_2"], "mf_dip": ["f_joint3_3", "f_joint3_4"], "mf_mcp": ["f_joint3_2"],
    "rf_dip": ["f_joint4_3", "f_joint4_4"], "rf_mcp": ["f_joint4_2"], "lf_dip": ["f_joint5_3", "f_joint5_4"],
    "lf_mcp": ["f_joint5_2"],
}  # fmt: skip


def test_reorder_couple_and_scale_by_hand():
    d = {
        "message_type": "std_msgs/Float64MultiArray",
        "driver_joints": ["d0", "d1", "d2", "d3"],
        "joints": [
            {"name": "c", "driver": ["d0"]},
            {"name": "a", "driver": ["d1", "d3"], "scale": 2.0, "offset": 0.5},
            {"name": "b", "driver": "d2", "scale": -1.0},
        ],
    }
    ad = HandAdapter.from_dict(d, INTERNAL)
    names, v = ad.command([0.1, 0.2, 0.3])
    assert names == ["d0", "d1", "d2", "d3"]
    np.testing.assert_allclose(v, [0.3, 2 * 0.1 + 0.5, -0.2, 2 * 0.1 + 0.5])
    assert not ad.is_identity
    # back: driver naming (the mean of coupled joints, unscaled), our naming, and unnamed in driver order
    np.testing.assert_allclose(ad.state_to_internal(["d3", "d2", "d1", "d0"], [0.9, -0.2, 0.7, 0.3]), [0.15, 0.2, 0.3])
    np.testing.assert_allclose(ad.state_to_internal(["c", "a", "b"], [3.0, 1.0, 2.0]), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(ad.state_to_internal([], v), [0.1, 0.2, 0.3])  # round trip
    with pytest.raises(ValueError, match=r"no driver joint reported for \['b'\]"):
        ad.state_to_internal(["d0", "d1"], [0.0, 0.0])


def test_identity_is_the_plain_joint_state():
    ad = HandAdapter.identity(INTERNAL)
    assert ad.is_identity and ad.message_type == "sensor_msgs/JointState"
    assert ad.command([1.0, 2.0, 3.0])[0] == INTERNAL


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"message_type": "std_msgs/Float32MultiArray"}, "message_type: expected one of"),
        ({"joints": [{"name": "a", "driver": ["x"]}, {"name": "b", "driver": ["y"]}]}, r"\['c'\] .* no driver joint"),
        ({"joints": [{"name": "z", "driver": ["x"]}]}, "'z' is not a hand joint of the retarget map"),
        (
            {"driver_joints": ["x", "y"], "joints": [{"name": n, "driver": ["x"]} for n in INTERNAL]},
            "driver joint 'x' is already fed by 'a'",
        ),
        (
            {
                "driver_joints": ["x", "y", "z", "w"],
                "joints": [{"name": n, "driver": [v]} for n, v in zip(INTERNAL, "xyz")],
            },
            r"driver joints \['w'\] are fed by no hand joint",
        ),
        ({"joints": [{"name": "a", "driver": [], "scale": 1.0}]}, "expected a driver joint name"),
        ({"joints": [{"name": n, "driver": [n], "scale": 0.0} for n in INTERNAL]}, "scale must be finite and non-zero"),
        ({"driver_joints": ["p", "p"]}, "duplicate names"),
    ],
)
def test_errors_name_the_field(d, match):
    with pytest.raises(ValueError, match=match):
        HandAdapter.from_dict(d, INTERNAL)


def test_shipped_dexhand021_file_matches_the_sdk_mapping_and_the_retarget_template():
    rmap = RetargetMap.load(ROOT / "config" / "retarget_hand.yaml")
    assert sorted(rmap.robot_joints) == sorted(DEXHAND_HW) and rmap.n_robot == 12
    ad = HandAdapter.load(ROOT / "config" / "hand_dexhand021.yaml", rmap.robot_joints)
    assert ad.message_type == "sensor_msgs/JointState"
    q = np.arange(1, 13) / 10.0  # a distinct value per hardware DoF
    names, v = ad.command(q)
    got = dict(zip(names, v))
    for i, hw in enumerate(rmap.robot_joints):  # every URDF joint of a DoF carries that DoF's value (right hand)
        for urdf in DEXHAND_HW[hw]:
            assert got[f"r_{urdf}"] == pytest.approx(q[i]), (hw, urdf)
    assert len(names) == sum(len(v) for v in DEXHAND_HW.values()) == 19
    # what DexRobot's node computes from our message: the mean over each DoF's joints, in degrees
    for i, hw in enumerate(rmap.robot_joints):
        assert np.rad2deg(np.mean([got[f"r_{u}"] for u in DEXHAND_HW[hw]])) == pytest.approx(np.rad2deg(q[i]))
    np.testing.assert_allclose(ad.state_to_internal(names, v), q)


def test_shipped_generic_file_is_the_identity_for_any_retarget_map():
    for f in ("retarget_hand.yaml", "retarget_shadow.yaml"):
        rmap = RetargetMap.load(ROOT / "config" / f)
        ad = HandAdapter.load(ROOT / "config" / "hand_joint_state.yaml", rmap.robot_joints)
        assert ad.is_identity and ad.command(np.zeros(rmap.n_robot))[0] == rmap.robot_joints


def test_deploy_teleop_section_builds_with_the_shipped_hand_files():
    P = yaml.safe_load((ROOT / "config" / "deploy.yaml").read_text())["teleop"]["ros__parameters"]
    P = {k: v for k, v in P.items() if not k.startswith("robot_description")}  # the URDF comes from the robot
    arb = build_arbiter({**P, "control_hz": 10.0})  # the graph's rate (config/graph.yaml), as the node passes it
    assert len(arb.hand_joint_names) == 12
    ad = build_hand_adapter(P, arb.retarget)
    assert len(ad.driver_joints) == 19 and ad.driver_joints[0] == "r_f_joint1_1"
    with pytest.raises(FileNotFoundError, match="parameter hand_driver_file='nope.yaml'"):
        build_hand_adapter(P | {"hand_driver_file": "nope.yaml"}, arb.retarget)
