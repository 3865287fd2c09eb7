"""Retargeting: the calibration fit recovers a known map; limits clamp; YAML round trip and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bora_teleop.retarget import RetargetMap, fit_retarget, main

ROOT = Path(__file__).resolve().parents[3]
SHADOW_MAP = ROOT / "config" / "retarget_shadow.yaml"


def _known_map() -> RetargetMap:
    human = ["a", "b", "c", "d"]
    robot = ["r0", "r1", "r2"]
    M = np.array(
        [
            [1.2, 0.0, 0.0, 0.0],  # plain gain
            [0.0, 0.6, 0.4, 0.0],  # coupling of two human joints
            [0.0, 0.0, 0.0, -0.8],
        ]
    )  # sign flip
    b = np.array([0.1, -0.05, 0.3])
    return RetargetMap(human, robot, M, b, lower=[-1.0, 0.0, -0.5], upper=[1.0, 1.5, 0.5])


def test_apply_is_the_affine_map_then_clamp():
    m = _known_map()
    h = np.array([0.5, 1.0, 0.5, 0.25])
    # hand-computed: r0 = 1.2*0.5+0.1 = 0.7; r1 = 0.6*1+0.4*0.5-0.05 = 0.75; r2 = -0.8*0.25+0.3 = 0.1
    np.testing.assert_allclose(m.apply(h), [0.7, 0.75, 0.1], atol=1e-12)
    # limits clamp: r0 = 1.2*2+0.1 = 2.5 -> 1.0; r1 = -0.05 -> 0.0; r2 = -0.8*(-1)+0.3 = 1.1 -> 0.5
    h2 = np.array([2.0, 0.0, 0.0, -1.0])
    np.testing.assert_allclose(m.apply(h2), [1.0, 0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(m.apply(h2, clamp=False), [2.5, -0.05, 1.1], atol=1e-12)
    batch = m.apply(np.stack([h, h2]))
    assert batch.shape == (2, 3)


def test_calibration_fit_recovers_a_known_map_from_noisy_pairs():
    true = _known_map()
    rng = np.random.default_rng(0)
    H = rng.uniform(-0.5, 1.5, size=(400, 4))
    R = true.apply(H, clamp=False) + rng.normal(0, 1e-3, size=(400, 3))  # unclamped samples for the fit
    fitted, report = fit_retarget(H, R, template=true)
    np.testing.assert_allclose(fitted.matrix, true.matrix, atol=5e-4)
    np.testing.assert_allclose(fitted.offset, true.offset, atol=5e-4)
    assert report["rms_max"] < 2e-3 and report["samples"] == 400
    # the template's sparsity is kept: zero entries stay exactly zero
    assert np.all(fitted.matrix[true.matrix == 0.0] == 0.0)
    # without a template every human joint may feed every robot joint; still recovers the map
    dense, _ = fit_retarget(H, R)
    np.testing.assert_allclose(dense.matrix, true.matrix, atol=2e-3)


def test_fit_is_exact_on_noiseless_samples_and_cli_writes_a_loadable_map(tmp_path):
    true = _known_map()
    rng = np.random.default_rng(1)
    H = rng.normal(size=(50, 4))
    np.savez(tmp_path / "pairs.npz", human=H, robot=true.apply(H, clamp=False))
    true.save(tmp_path / "template.yaml")
    assert (
        main(
            [
                "fit",
                "--pairs",
                str(tmp_path / "pairs.npz"),
                "--template",
                str(tmp_path / "template.yaml"),
                "--out",
                str(tmp_path / "out.yaml"),
            ]
        )
        == 0
    )
    back = RetargetMap.load(tmp_path / "out.yaml")
    np.testing.assert_allclose(back.matrix, true.matrix, atol=1e-9)
    np.testing.assert_allclose(back.offset, true.offset, atol=1e-9)
    np.testing.assert_array_equal(back.lower, true.lower)


def test_yaml_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="missing field 'human_joints'"):
        RetargetMap.from_dict({"robot_joints": []})
    with pytest.raises(ValueError, match=r"robot_joints\[0\].*unknown human joint 'zz'"):
        RetargetMap.from_dict(
            {
                "human_joints": ["a"],
                "robot_joints": [{"name": "r", "from": {"zz": 1}, "lower": 0, "upper": 1}],
            }
        )
    with pytest.raises(ValueError, match="missing joint limit 'upper'"):
        RetargetMap.from_dict(
            {"human_joints": ["a"], "robot_joints": [{"name": "r", "from": {"a": 1}, "lower": 0}]}
        )
    with pytest.raises(ValueError, match="lower > upper"):
        RetargetMap(["a"], ["r"], [[1.0]], [0.0], [1.0], [0.0])
    with pytest.raises(ValueError, match="expected 4 human angles"):
        _known_map().apply([1.0, 2.0])


def test_shipped_shadow_map_is_the_sim_operators_map_with_limits():
    """The simulated operator's glove stream must retarget to the hand command it meant. If this
    fails after a change of bora_sim.operator, regenerate the file:
    bora sim glove-map --out /tmp/m.yaml
    python -m bora_teleop.retarget convert --sim-header --map /tmp/m.yaml --out config/retarget_shadow.yaml"""
    m = RetargetMap.load(SHADOW_MAP)
    assert m.n_robot == 18
    assert m.robot_joints[0] == "hand/robot0:FFJ3" and m.robot_joints[-1] == "hand/robot0:THJ0"
    q_open = m.apply(np.zeros(m.n_human))
    assert np.all(q_open >= m.lower) and np.all(q_open <= m.upper)
    q = m.apply(np.full(m.n_human, 3.0))  # a fist saturates at the flexion limits
    assert q[m.robot_joints.index("hand/robot0:FFJ2")] == pytest.approx(1.571)
    assert q[m.robot_joints.index("hand/robot0:THJ0")] == pytest.approx(-1.571)
    import bora_sim.operator  # noqa: F401  (part of the workspace: a failure to import is a failure)
    from bora_sim.hand import SHADOW
    from bora_sim.operator import shadow_glove_map, shadow_retarget_map

    ref = RetargetMap.from_dict(shadow_glove_map())
    assert ref.human_joints == m.human_joints and ref.robot_joints == m.robot_joints
    np.testing.assert_allclose(m.matrix, ref.matrix)
    np.testing.assert_allclose(m.offset, ref.offset)
    np.testing.assert_array_equal(m.lower, ref.lower)
    np.testing.assert_array_equal(m.upper, ref.upper)
    # the operator's glove output for a grasp posture retargets to that posture (within the limits)
    sim = shadow_retarget_map(SHADOW.joint_names)
    glove = sim.from_robot(SHADOW.posture("power"))
    np.testing.assert_allclose(m.apply(glove), np.clip(sim.retarget(glove), m.lower, m.upper), atol=1e-12)
    np.testing.assert_allclose(m.apply(glove), np.clip(SHADOW.posture("power"), m.lower, m.upper), atol=1e-9)
    # and the operator's plain-data dict loads once limits are added
    d = sim.to_dict() | {"lower": m.lower.tolist(), "upper": m.upper.tolist()}
    np.testing.assert_allclose(RetargetMap.from_dict(d).matrix, m.matrix)


def test_convert_cli_rewrites_the_plain_data_form(tmp_path):
    """``convert`` reads the matrix form (what ``bora sim glove-map`` writes) and writes the per-joint form."""
    src = tmp_path / "plain.yaml"
    src.write_text(
        "human_joint_names: [a, b]\nrobot_joint_names: [r0, r1]\n"
        "matrix: [[1.0, 0.0], [0.5, 0.5]]\noffset: [0.1, 0.0]\nlower: [-1.0, -2.0]\nupper: [1.0, 2.0]\n"
    )
    out = tmp_path / "map.yaml"
    assert main(["convert", "--map", str(src), "--out", str(out)]) == 0
    m = RetargetMap.load(out)
    assert m.robot_joints == ["r0", "r1"] and m.human_joints == ["a", "b"]
    np.testing.assert_allclose(m.apply([0.4, 1.0]), [0.5, 0.7])  # r0 = a + 0.1, r1 = (a + b) / 2
    assert "from" in out.read_text() and not out.read_text().startswith("#")
