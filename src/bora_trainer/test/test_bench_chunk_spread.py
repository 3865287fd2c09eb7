"""bench/chunk_spread.py: the deterministic and sampled chunks against the demonstrations (hand-computed)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import chunk_spread  # noqa: E402


def test_chunk_stats_by_hand():
    B, k, A = 1, 2, 9  # 7 arm dims + 2 hand dims
    actions = torch.zeros(B, k, A)
    mean = torch.zeros(B, k, A)
    mean[..., :7] = 0.5  # arm off by 0.5 everywhere, hand exact
    samples = torch.zeros(2, B, k, A)
    samples[0, ..., 7:] = 1.0  # hand samples +1 and -1 around a centre of 0
    samples[1, ..., 7:] = -1.0
    mask = torch.tensor([[1.0, 0.0]])  # the second step is padding: ignored
    samples[:, :, 1] = 100.0  # what the padded step holds must not count
    r = chunk_spread.chunk_stats(mean, samples, actions, mask)
    assert r["arm/mean_err"] == pytest.approx(0.5) and r["hand/mean_err"] == pytest.approx(0.0)
    assert r["arm/sample_err"] == pytest.approx(0.0) and r["hand/sample_err"] == pytest.approx(1.0)
    assert r["arm/spread"] == pytest.approx(0.0) and r["hand/spread"] == pytest.approx(1.0)
    # the mean of the samples is 0 on every valid dim: det_gap = |mean_chunk - 0|
    assert r["arm/det_gap"] == pytest.approx(0.5) and r["hand/det_gap"] == pytest.approx(0.0)


def test_markdown_rows_and_refusal_of_a_non_run(tmp_path):
    r = {f"{p}/{k}": 0.25 for p in ("arm", "hand") for k in ("mean_err", "sample_err", "spread", "det_gap")}
    text = chunk_spread.markdown({"CP Base s0": r}, Path("/d"), 4, 6, {"commit": "abc", "cpu": "X",
                                                                      "logical_cpus": 2})
    assert "Measured at abc on X (2 logical CPUs)" in text
    assert "| CP Base s0 | " + " | ".join(["0.250"] * 8) + " |" in text
    with pytest.raises(SystemExit, match="not an offline run directory"):
        chunk_spread.main([str(tmp_path), "--data", str(tmp_path)])
