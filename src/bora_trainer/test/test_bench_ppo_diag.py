"""bench/bench_ppo_diag.py: the Monte-Carlo return-to-go and the quality groups (hand-computed)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import bench_ppo_diag  # noqa: E402


def test_returns_to_go_by_hand():
    # -0.01 per step and +1 on the last (the simulated tasks' reward), gamma 0.5
    r = np.array([-0.01, -0.01, 0.99])
    g = bench_ppo_diag.returns_to_go(r, 0.5)
    # G_2 = 0.99; G_1 = -0.01 + 0.5 * 0.99 = 0.485; G_0 = -0.01 + 0.5 * 0.485 = 0.2325
    assert g.tolist() == pytest.approx([0.2325, 0.485, 0.99])
    assert bench_ppo_diag.returns_to_go(r, 1.0).tolist() == pytest.approx([0.97, 0.98, 0.99])


def test_quality_group_precedence():
    q = bench_ppo_diag.quality_group
    assert q({"quality": {"noise": 0.0, "hesitation": 0.0, "suboptimal": 0.0}}) == "clean"
    assert q({}) == "clean"
    assert q({"quality": {"noise": 0.1}}) == "noisy"
    assert q({"quality": {"noise": 0.1, "hesitation": 0.2}}) == "hesitant"
    assert q({"quality": {"noise": 0.1, "hesitation": 0.2, "suboptimal": 0.3}}) == "suboptimal"
