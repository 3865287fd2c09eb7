"""bench/critic_probe.py: the logistic probe against known answers (a separable signal, pure noise, a closed-form
1-D fit), and its features against the runner's own one-observation value."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import critic_probe as cp  # noqa: E402


def test_a_linear_signal_is_found_and_noise_is_not():
    rng = np.random.default_rng(0)
    n, d = 120, 20
    x = rng.normal(size=(n, d))
    y = (x[:, 3] - 0.5 * x[:, 7] + 0.3 * rng.normal(size=n) > 0).astype(int)
    x_te = rng.normal(size=(n, d))
    y_te = (x_te[:, 3] - 0.5 * x_te[:, 7] > 0)
    l2 = cp.choose_l2(x, y)
    assert l2 in cp.L2_GRID
    assert cp.auroc(cp.fit_logistic(x, y, l2)(x_te), y_te) > 0.95
    noise = rng.normal(size=(n, d))
    score = cp.fit_logistic(noise, y, cp.choose_l2(noise, y))(rng.normal(size=(n, d)))
    assert abs(cp.auroc(score, y_te) - 0.5) < 0.15


def test_one_feature_without_penalty_matches_the_closed_form():
    # two points per class at x = -1, 1 with labels (0, 1) and (1, 0) mirrored: 1-D data x = [-2, -1, 1, 2],
    # y = [0, 1, 0, 1] -> by symmetry the maximum-likelihood bias is 0 and the fitted slope solves
    # sum_i (y_i - sigma(w x_i)) x_i = 0 on the standardised x
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 1, 0, 1])
    f = cp.fit_logistic(x, y, 0.0)
    xs = (x[:, 0] - x.mean()) / (x.std() + 1e-6)
    b = f(np.zeros((1, 1)))[0]
    w = (f(np.ones((1, 1)) * (x.std() + 1e-6))[0] - b)
    assert b == pytest.approx(0.0, abs=1e-6)
    grad = np.sum((y - 1 / (1 + np.exp(-w * xs))) * xs)
    assert grad == pytest.approx(0.0, abs=1e-4) and w > 0  # stationary (L-BFGS tolerance)


def test_auroc_needs_both_outcomes():
    assert cp.auroc(np.arange(3.0), np.array([True, True, True])) is None
    assert cp.auroc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0


def test_features_are_the_runners_values(tiny_runner):
    runner, rng, dims = tiny_runner
    S, NCAM = dims["S"], dims["NCAM"]
    eps = [({"color": rng.integers(0, 255, (8, NCAM, 32, 32, 3), dtype=np.uint8),
             "state": rng.normal(size=(8, S)).astype(np.float32)}, {}) for _ in range(3)]
    f = cp.features(runner, eps, 5, "pick")
    assert f["z"].shape == (3, runner.policy.vlm.z_dim) and f["z+state"].shape == (3, runner.policy.vlm.z_dim + S)
    for i, (arr, _) in enumerate(eps):
        assert f["v"][i] == pytest.approx(float(runner.value(arr["color"][5], arr["state"][5], "pick")[0]), abs=1e-5)


def test_table_rows():
    res = {"per_step": [{"step": 5, "train": [3, 4], "test": [2, 5], "auroc_critic_test": 0.5, "auroc_probe_z": 0.75,
                         "auroc_probe_state": None, "auroc_probe_z+state": 0.6}]}
    assert cp.table(res).splitlines()[2] == "| 5 | 3 / 4 | 2 / 5 | 0.50 | 0.75 | - | 0.60 |"
