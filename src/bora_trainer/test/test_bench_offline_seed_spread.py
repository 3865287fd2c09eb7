"""bench/offline_seed_spread.py: training seed 0 from a demo_pairs JSON, the others from eval files (hand-made)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import offline_seed_spread  # noqa: E402


def _eval(path: Path, seeds, wins):
    path.write_text(json.dumps({"episodes": [{"seed": s, "success": s in wins} for s in seeds]}))


def _pairs(tmp_path: Path, cp_std, cp_unseen, bora_std, bora_unseen) -> Path:
    """A demo_pairs JSON for evaluation seeds 10, 11 (training seed 0's outcomes)."""
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"task": "open_box", "demo_out": "/b", "built_at": "x", "seeds": [10, 11],
                                "outcomes": {"cp-bc/standard": cp_std, "cp-bc/unseen": cp_unseen,
                                             "bora/standard": bora_std, "bora/unseen": bora_unseen}}))
    return path


def test_counts_and_per_seed_differences(tmp_path):
    seeds = [10, 11, 12, 13]
    pairs = {"task": "open_box", "demo_out": "/b", "built_at": "x", "seeds": [10, 13],
             "outcomes": {"cp-bc/standard": [1, 1, 0, 0], "cp-bc/unseen": [1, 0, 0, 0],
                          "bora/standard": [1, 0, 0, 0], "bora/unseen": [1, 0, 0, 0]}}
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    _eval(tmp_path / "eval_cp-bc_s1_standard.json", seeds, {10})
    _eval(tmp_path / "eval_cp-bc_s1_unseen.json", seeds, set())
    _eval(tmp_path / "eval_bora_s1_standard.json", seeds, {10, 11, 12})
    _eval(tmp_path / "eval_bora_s1_unseen.json", seeds[::-1], {13})  # order in the file does not matter
    out = tmp_path / "spread"
    assert offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path),
                                     "--seeds", "1", "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["successes"]["cp-bc/s0/standard"] == 2 and doc["successes"]["bora/s1/standard"] == 3
    # seed 0: standard (1-1, 0-1, 0, 0) -> -1/4, unseen 0 -> mean over sets -12.5 points
    assert doc["bora_minus_cp_per_seed"]["0"][0] == pytest.approx(-12.5)
    # seed 1: standard +2/4, unseen +1/4 -> +37.5 points; over the two seeds (-12.5 + 37.5) / 2 = +12.5
    assert doc["bora_minus_cp_per_seed"]["1"][0] == pytest.approx(37.5)
    assert doc["bora_minus_cp_over_seeds"][0] == pytest.approx(12.5)
    # t interval over the per-seed differences (-12.5, +37.5): s = 35.355, s / sqrt(2) = 25, t_{1, 0.975} = 12.7062
    assert doc["bora_minus_cp_over_seeds_t"] == pytest.approx([12.5, 12.5 - 317.655, 12.5 + 317.655], abs=0.01)
    assert "| 1 | 1 / 0 of 4 | 3 / 1 of 4 |" in out.with_suffix(".md").read_text()


def test_a_missing_evaluation_seed_is_named(tmp_path):
    _eval(tmp_path / "e.json", [10, 11], {10})
    with pytest.raises(ValueError, match=r"no episode for evaluation seed\(s\) \[12\]"):
        offline_seed_spread.outcomes_of(tmp_path / "e.json", [10, 11, 12])


def test_a_variant_is_compared_with_both_rows_over_every_training_seed(tmp_path):
    seeds = [10, 11]
    _pairs(tmp_path, [1, 1], [1, 0], [0, 0], [0, 0])
    for o in ("standard", "unseen"):
        _eval(tmp_path / f"eval_cp-bc_s1_{o}.json", seeds, {10})
        _eval(tmp_path / f"eval_bora_s1_{o}.json", seeds, set())
    vdir = tmp_path / "v"
    vdir.mkdir()
    for s in (0, 1):  # the variant wins everything on both training seeds
        for o in ("standard", "unseen"):
            _eval(vdir / f"eval_lp0_s{s}_{o}.json", seeds, {10, 11})
    out = tmp_path / "spread"
    assert offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path), "--seeds", "1",
                                     "--out", str(out), "--variant", "lp0=lambda_ppo 0",
                                     "--variant-evals", str(vdir), "--title", "Ablations (issue 14)"]) == 0
    assert out.with_suffix(".md").read_text().startswith("# Ablations (issue 14)\n")
    v = json.loads(out.with_suffix(".json").read_text())["variants"]["lp0"]
    assert v["label"] == "lambda_ppo 0" and v["successes"]["s0/unseen"] == 2
    # - BORA-Offline: +100 on every seed and set; - CP Base: seed 0 (std 0, unseen +1/2) -> +25, seed 1 (+1/2 both)
    # -> +50, over the two training seeds +37.5 points
    assert v["minus_bora"][0] == pytest.approx(100.0) and v["minus_cp-bc"][0] == pytest.approx(37.5)
    assert "| lambda_ppo 0 | 2 / 2 | 2 / 2 | +37.5 [" in out.with_suffix(".md").read_text()
    # a contrast between two variants or rows: lp0 - BORA-Offline is +100 points on every seed and set
    assert offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path), "--seeds", "1",
                                     "--out", str(out), "--variant", "lp0=lambda_ppo 0", "--variant-evals", str(vdir),
                                     "--contrast", "lp0:bora"]) == 0
    contrast = json.loads(out.with_suffix(".json").read_text())["contrasts"]["lp0:bora"]
    assert contrast["bootstrap"][0] == pytest.approx(100.0)
    assert "lambda_ppo 0 - BORA-Offline over the training seeds: **+100.0 [" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit, match="expected A:B"):
        offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path), "--seeds", "1",
                                  "--out", str(out), "--contrast", "lp0-bora"])
    with pytest.raises(SystemExit, match="expected NAME=LABEL"):
        offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path), "--seeds", "1",
                                  "--out", str(out), "--variant", "lp0"])


def test_a_training_seed_is_resampled_with_both_its_object_sets(tmp_path):
    # BORA-Offline wins every trial of both sets on training seed 0 and none on seeds 1, 2 (CP Base: none anywhere).
    # Both sets of a seed drawn together: the top replicate (seed 0 drawn three times, P = 1/27 > 2.5 %) is +100,
    # so the upper bound is +100. Sets resampled apart (the old strata) would give +66.7: P(both sets' means
    # >= 5/6) = 13/729 < 2.5 %.
    seeds = [10, 11]
    _pairs(tmp_path, [0, 0], [0, 0], [1, 1], [1, 1])
    for s in (1, 2):
        for o in ("standard", "unseen"):
            _eval(tmp_path / f"eval_cp-bc_s{s}_{o}.json", seeds, set())
            _eval(tmp_path / f"eval_bora_s{s}_{o}.json", seeds, set())
    out = tmp_path / "spread"
    assert offline_seed_spread.main(["--pairs", str(tmp_path / "pairs.json"), "--evals", str(tmp_path),
                                     "--seeds", "1", "2", "--out", str(out)]) == 0
    est, lo, hi = json.loads(out.with_suffix(".json").read_text())["bora_minus_cp_over_seeds"]
    assert est == pytest.approx(100 / 3) and lo == pytest.approx(0.0) and hi == pytest.approx(100.0)
