"""bench/compare_demo.py on two hand-built `bora demo` output directories with known differences."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import compare_demo  # noqa: E402


def _demo_dir(root: Path, *, seconds: float, episode_bytes: bytes, weight: np.ndarray, outcomes: list[bool]) -> Path:
    (root / "data/press_button/episodes").mkdir(parents=True)
    (root / "data/press_button/episodes/episode_000000.npz").write_bytes(b"same bytes")
    (root / "data/press_button/episodes/episode_000001.json").write_bytes(episode_bytes)
    ckpt = root / "runs/press_button/bora/policy"
    ckpt.mkdir(parents=True)
    # the two sides give the tensors in another order: values are compared by name
    bias = np.zeros(3, np.float32)
    tensors = {"b": bias, "w": weight} if seconds < 100 else {"w": weight, "b": bias}
    save_file(tensors, str(ckpt / "model.safetensors"))
    (root / "eval").mkdir()
    eps = [{"seed": 300000 + i, "success": s, "steps": 20 if s else 80} for i, s in enumerate(outcomes)]
    (root / "eval/press_button__bora__standard.json").write_text(json.dumps({"episodes": eps}))
    summary = {
        "total_seconds": seconds,
        "stages": {"collect": {"seconds": seconds / 2, "job_seconds": {"c1": seconds / 2}},
                   "eval": {"seconds": seconds / 2, "job_seconds": {"e1": seconds / 4, f"e{seconds:g}": seconds / 4}}},
        "success": {"BORA-Offline": {"standard": {"successes": sum(outcomes), "trials": len(outcomes)}}},
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def test_compare_finds_exactly_the_planted_differences(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = _demo_dir(tmp_path / "a", seconds=60.0, episode_bytes=b"{}", weight=w, outcomes=[True, True, False, False])
    w2 = w.copy()
    w2[1, 2] += 0.5
    b = _demo_dir(tmp_path / "b", seconds=120.0, episode_bytes=b"{ }", weight=w2,
                  outcomes=[True, False, False, False])
    res = compare_demo.compare(a, b)
    assert res["total_seconds"] == [60.0, 120.0]
    assert res["stages"] == {"collect": [30.0, 60.0], "eval": [30.0, 60.0]}
    # per stage, the jobs both ran (e1) apart from those only one side ran (e60 / e120)
    assert res["common_jobs"] == {"collect": [1, 30.0, 60.0, [], []], "eval": [1, 15.0, 30.0, ["e60"], ["e120"]]}
    assert res["data"]["identical"] == 1
    assert res["data"]["different"] == ["data/press_button/episodes/episode_000001.json"]
    run = res["runs"]["press_button/bora"]
    assert run["files"] == 1 and run["tensors"] == 2
    assert run["max_abs_diff"] == pytest.approx(0.5)
    ev = res["eval"]["press_button__bora__standard"]
    assert (ev["seeds"], ev["success_a"], ev["success_b"]) == (4, 2, 1)
    assert ev["outcome_differs"] == 1 and ev["episode_differs"] == 1
    md = compare_demo.to_markdown(res, ("before", "after"))
    assert "| BORA-Offline | standard | 2/4 | 1/4 |" in md
    assert "| **total** | **60** | **120** |" in md


def test_identical_directories_compare_equal_whatever_the_tensor_order(tmp_path):
    w = np.ones((2, 2), np.float32)
    a = _demo_dir(tmp_path / "a", seconds=60.0, episode_bytes=b"x", weight=w, outcomes=[True, False])
    b = _demo_dir(tmp_path / "b", seconds=160.0, episode_bytes=b"x", weight=w, outcomes=[True, False])
    res = compare_demo.compare(a, b)
    assert res["data"]["different"] == [] and res["data"]["identical"] == 2
    assert res["runs"]["press_button/bora"]["max_abs_diff"] == 0.0
    assert res["eval"]["press_button__bora__standard"]["episode_differs"] == 0


def test_a_directory_without_summary_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert compare_demo.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no summary.json" in err and len(err.splitlines()) == 1
