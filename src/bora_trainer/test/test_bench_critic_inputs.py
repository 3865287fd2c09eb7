"""bench/bench_critic_inputs.py: the image/state value matrix against the runner's own one-at-a-time values,
and the two-way decomposition and AUROCs on hand-built matrices."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import bench_critic_inputs as bci  # noqa: E402


def test_value_matrix_rows_are_images_and_columns_are_states(tiny_runner):
    runner, rng, dims = tiny_runner
    S, NCAM = dims["S"], dims["NCAM"]
    colors = rng.integers(0, 255, (3, NCAM, 32, 32, 3), dtype=np.uint8)
    states = rng.normal(size=(3, S)).astype(np.float32)
    m = bci.value_matrix(runner, colors, states, "pick")
    for i in range(3):
        for j in range(3):  # the runner's public one-observation path: images of i, state of j
            assert m[i, j] == pytest.approx(float(runner.value(colors[i], states[j], "pick")[0]), abs=1e-5)
    assert np.ptp(m) > 0  # a random critic on random inputs: the values differ


def test_decompose_by_hand():
    success = np.array([False, True, True])
    # the value depends on the image only (rows): all variance is the images', the image score ranks outcomes
    m = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    d = bci.decompose(m, success)
    assert d["share_images"] == pytest.approx(1.0) and d["share_state"] == pytest.approx(0.0)
    assert d["auroc_images"] == 1.0 and d["auroc_critic"] == 1.0 and d["auroc_state"] == 0.5  # ties: 1/2
    # on the state only (columns), the state ordering reversed: the failure scores highest
    d = bci.decompose(m.T[:, ::-1], success)
    assert d["share_state"] == pytest.approx(1.0) and d["auroc_state"] == 0.0 and d["auroc_critic"] == 0.0
    # additive image + state effects: shares add up to 1, no interaction
    m = np.add.outer([0.0, 2.0, 4.0], [0.0, 1.0, 2.0])
    d = bci.decompose(m, success)
    assert d["share_interaction"] == pytest.approx(0.0, abs=1e-12)
    assert d["share_images"] == pytest.approx(0.8) and d["share_state"] == pytest.approx(0.2)
    assert bci.auroc(np.array([1.0, 2.0]), np.array([True, True])) is None  # one outcome only
