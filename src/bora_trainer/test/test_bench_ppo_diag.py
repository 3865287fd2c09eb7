"""bench/bench_ppo_diag.py: the quality groups of the demonstrations (hand-built episode infos)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import bench_ppo_diag  # noqa: E402


def test_quality_group_precedence():
    q = bench_ppo_diag.quality_group
    assert q({"quality": {"noise": 0.0, "hesitation": 0.0, "suboptimal": 0.0}}) == "clean"
    assert q({}) == "clean"
    assert q({"quality": {"noise": 0.1}}) == "noisy"
    assert q({"quality": {"noise": 0.1, "hesitation": 0.2}}) == "hesitant"
    assert q({"quality": {"noise": 0.1, "hesitation": 0.2, "suboptimal": 0.3}}) == "suboptimal"
