"""Joint limits read from a URDF (bora_teleop.urdf_limits) and applied by the teleop parameters: the
stricter of the URDF and the YAML limits, checked against hand-written values; clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bora_teleop.params import build_arbiter
from bora_teleop.urdf_limits import JointLimit, tighten, urdf_joint_limits

ARM = [f"fr3_joint{i}" for i in range(1, 8)]


def _joint(name: str, lower: float, upper: float, velocity: float, soft: tuple | None = None, kind="revolute"):
    sc = "" if soft is None else f'<safety_controller soft_lower_limit="{soft[0]}" soft_upper_limit="{soft[1]}"/>'
    return (
        f'<joint name="{name}" type="{kind}"><parent link="a"/><child link="b"/>'
        f'<limit lower="{lower}" upper="{upper}" effort="87" velocity="{velocity}"/>{sc}</joint>'
    )


def _urdf(*joints: str) -> str:
    return '<?xml version="1.0"?><robot name="test"><link name="a"/><link name="b"/>' + "".join(joints) + "</robot>"


# joint 1 narrower than FR3 (-2.7437, 2.7437) and slower than 0.5 rad/s; joint 4 with soft limits inside the hard
# ones; the others wider than the YAML limits (the YAML stays in force there)
URDF = _urdf(
    _joint("fr3_joint1", -1.0, 1.2, 0.3),
    *(_joint(f"fr3_joint{i}", -3.5, 3.5, 2.62) for i in (2, 3)),
    _joint("fr3_joint4", -3.1, -0.1, 2.62, soft=(-2.9, -0.2)),
    *(_joint(f"fr3_joint{i}", -5.0, 5.0, 5.26) for i in (5, 6, 7)),
    _joint("f_mcp", 0.0, 0.9, 0.5),
    '<joint name="wheel" type="continuous"><parent link="a"/><child link="b"/><limit effort="1" velocity="1"/></joint>',
    '<joint name="fixed_j" type="fixed"><parent link="a"/><child link="b"/></joint>',
    '<joint name="nolimit" type="revolute"><parent link="a"/><child link="b"/></joint>',
)


def test_limits_are_read_with_the_soft_limits_applied():
    lim = urdf_joint_limits(URDF, ["fr3_joint1", "fr3_joint4", "f_mcp"])
    assert lim["fr3_joint1"] == JointLimit("fr3_joint1", -1.0, 1.2, 0.3)
    assert lim["fr3_joint4"] == JointLimit("fr3_joint4", -2.9, -0.2, 2.62)  # soft limits are stricter
    assert lim["f_mcp"] == JointLimit("f_mcp", 0.0, 0.9, 0.5)
    no_vel = urdf_joint_limits(_urdf('<joint name="j" type="prismatic"><limit lower="0" upper="0.1"/></joint>'), ["j"])
    assert no_vel["j"].velocity == math.inf


def test_tighten_takes_the_stricter_of_both():
    lims = [JointLimit("a", -1.0, 1.0, 0.3), JointLimit("b", -3.0, 3.0, 2.0)]
    lo, hi, v = tighten([-2.0, -2.0], [2.0, 0.5], 0.5, lims)
    assert (lo, hi, v) == ([-1.0, -2.0], [1.0, 0.5], [0.3, 0.5])
    with pytest.raises(ValueError, match=r"do not overlap for \['a'\]"):
        tighten([1.5, 0.0], [2.0, 1.0], 1.0, lims)


def test_teleop_arbiter_uses_the_stricter_limits(tmp_path):
    P = {"hand_joint_names": ["f_mcp"], "hand_lower": [0.0], "hand_upper": [1.5], "control_hz": 10.0}
    plain = build_arbiter(P)
    arb = build_arbiter(P, robot_description=URDF)
    from bora_teleop.safety import FR3_LOWER, FR3_UPPER

    expect_lo = [-1.0, FR3_LOWER[1], FR3_LOWER[2], -2.9, FR3_LOWER[4], FR3_LOWER[5], FR3_LOWER[6], 0.0]
    expect_hi = [1.2, FR3_UPPER[1], FR3_UPPER[2], -0.2, FR3_UPPER[4], FR3_UPPER[5], FR3_UPPER[6], 0.9]
    np.testing.assert_allclose(arb.safety.lower, expect_lo)
    np.testing.assert_allclose(arb.safety.upper, expect_hi)
    # per-tick step = v / rate: joint 1 at the URDF's 0.3 rad/s, the rest at the YAML 0.5; the hand joint
    # (present in the URDF) at its 0.5 rad/s instead of the YAML 1.0
    np.testing.assert_allclose(arb.safety.max_step, np.array([0.3] + [0.5] * 6 + [0.5]) / 10.0)
    np.testing.assert_allclose(plain.safety.upper[[0, 7]], [FR3_UPPER[0], 1.5])
    # a command beyond the URDF limit is clamped to it: from 1.19 rad, a 2.0 target moves to the URDF's 1.2
    # (without the URDF the 0.05 rad step of 0.5 rad/s at 10 Hz would reach 1.24)
    q = np.r_[[1.19, 0, 0, -1.0, 0, 1.0, 0], 0.0]
    cand = np.r_[[2.0, 0, 0, -1.0, 0, 1.0, 0], 0.0]
    for a, want in (
        (build_arbiter(P | {"workspace_check": False}, URDF), 1.2),
        (build_arbiter(P | {"workspace_check": False}), 1.24),
    ):
        out = a.safety.apply(cand, measured=q)
        assert not out.held and out.command[0] == pytest.approx(want)
    # the same through robot_description_file
    f = tmp_path / "robot.urdf"
    f.write_text(URDF)
    np.testing.assert_allclose(build_arbiter(P | {"robot_description_file": str(f)}).safety.lower, expect_lo)


@pytest.mark.parametrize(
    ("joints", "urdf", "match"),
    [
        (["fr3_joint9"], URDF, r"joints \['fr3_joint9'\] are not in the robot description"),
        (["wheel"], URDF, "joint 'wheel' is continuous"),
        (["fixed_j"], URDF, "joint 'fixed_j' has type 'fixed'"),
        (["nolimit"], URDF, "joint 'nolimit' \\(revolute\\) has no <limit>"),
        (["j"], _urdf('<joint name="j" type="revolute"><limit lower="0.5" upper="0.1"/></joint>'), "lower limit"),
        (["j"], _urdf('<joint name="j" type="revolute"><limit lower="x" upper="1"/></joint>'), "expected a number"),
        (["j"], _urdf('<joint name="j" type="revolute"><limit upper="1"/></joint>'), "needs both 'lower' and 'upper'"),
        (["j"], "<robot><joint name='j'", "malformed URDF XML"),
        (["j"], "<sdf version='1.9'/>", "expected a <robot> root element, got <sdf>"),
        (["j"], "", "empty robot description"),
    ],
)
def test_errors_name_the_joint_and_the_problem(joints, urdf, match):
    with pytest.raises(ValueError, match=match):
        urdf_joint_limits(urdf, joints)


def test_teleop_parameter_errors():
    P = {"hand_joint_names": ["f_mcp"], "hand_lower": [0.0], "hand_upper": [1.0], "control_hz": 10.0}
    with pytest.raises(FileNotFoundError, match="robot_description_file='/nonexistent.urdf'"):
        build_arbiter(P | {"robot_description_file": "/nonexistent.urdf"})
    with pytest.raises(ValueError, match="not in the robot description"):
        build_arbiter(P, robot_description=_urdf(_joint("other", -1, 1, 1)))
