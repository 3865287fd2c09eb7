"""bench/demo_pairs_pooled.py on hand-built demo_pairs results: pooled estimates computed by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import demo_pairs_pooled as dpp  # noqa: E402


def _task(name, rows, online_extra=()):
    """rows: {run: {set: outcomes}}; the demo's online run is rows['bora-residual-online']."""
    res = {"task": name, "built_at": "abc1234", "seeds": [800000, 800003],
           "outcomes": {f"{r}/{o}": v for r, sets in rows.items() for o, v in sets.items()}}
    res["successes"] = {k: sum(v) for k, v in res["outcomes"].items()}
    runs = [rows["bora-residual-online"]] + list(online_extra)
    res["online_runs"] = [{o: {"outcomes": run[o], "successes": sum(run[o])} for o in ("standard", "unseen")}
                          for run in runs]
    return res


Z, O = [0, 0, 0, 0], [1, 1, 1, 1]
A = _task("a", {"warmup": {"standard": O, "unseen": O}, "cp-bc": {"standard": Z, "unseen": Z},
                "bora": {"standard": [1, 0, 0, 0], "unseen": Z},
                "bora-residual-online": {"standard": [1, 1, 1, 0], "unseen": O}},
          online_extra=[{"standard": [1, 1, 0, 0], "unseen": O}])
B = _task("b", {"warmup": {"standard": Z, "unseen": Z}, "cp-bc": {"standard": Z, "unseen": Z},
                "bora": {"standard": [0, 0, 0, 1], "unseen": Z},
                "bora-residual-online": {"standard": Z, "unseen": O}},
          online_extra=[{"standard": [1, 0, 0, 1], "unseen": O}])


def _pair(pooled, row, minus):
    return next(p for p in pooled["pairs"] if p["row"] == row and p["minus"] == minus)


def test_pooled_differences_by_hand():
    p = dpp.pool([A, B])
    full_off = _pair(p, "BORA-Full", "BORA-Offline")
    # standard: a (3 - 1) / 4 = +0.5, b (0 - 1) / 4 = -0.25 -> mean +0.125; unseen: +1 in both tasks
    assert full_off["standard"]["diff"] == pytest.approx(0.125)
    assert full_off["unseen"]["diff"] == pytest.approx(1.0)
    assert full_off["unseen"]["lo"] == pytest.approx(1.0) and full_off["unseen"]["hi"] == pytest.approx(1.0)
    assert full_off["both"]["diff"] == pytest.approx((0.5 - 0.25 + 1 + 1) / 4)
    # BORA-Offline - CP Base: standard a +0.25, b +0.25 -> +0.25; unseen 0; no seed's difference is negative,
    # so the standard interval lies within [0, 1] around +0.25
    off_cp = _pair(p, "BORA-Offline", "CP Base")
    assert off_cp["standard"]["diff"] == pytest.approx(0.25)
    assert 0.0 <= off_cp["standard"]["lo"] <= 0.25 <= off_cp["standard"]["hi"] <= 1.0
    assert off_cp["unseen"] == {"diff": 0.0, "lo": 0.0, "hi": 0.0}
    # CP Base - Warm-up: a -1 on both sets, b 0 -> -0.5 with a degenerate interval
    cp_w = _pair(p, "CP Base", "Warm-up (the shared start)")
    assert cp_w["both"]["diff"] == pytest.approx(-0.5) and cp_w["both"]["lo"] == pytest.approx(-0.5)
    # over both online runs, standard: a (0.5 + 0.25) / 2, b (-0.25 + 0.25) / 2 -> mean 0.1875
    op = p["online_pooled"]
    assert op["standard"]["diff"] == pytest.approx(0.1875)
    assert op["unseen"]["diff"] == pytest.approx(1.0)
    # both sets, each run's two sets as one cluster: a (0.75 + 0.625) / 2, b (0.375 + 0.625) / 2 -> 0.59375
    assert op["both"]["diff"] == pytest.approx(0.59375)
    assert op["runs_per_task"] == {"a": 2, "b": 2}


def test_report_and_files(tmp_path):
    paths = []
    for res in (A, B):
        paths.append(tmp_path / f"{res['task']}.json")
        paths[-1].write_text(json.dumps(res))
    assert dpp.main([str(p) for p in paths] + ["--out", str(tmp_path / "pooled")]) == 0
    md = (tmp_path / "pooled.md").read_text()
    assert "pooled over 2 tasks" in md and "| a | abc1234 | 800000.. |" in md
    assert "| BORA-Full - BORA-Offline (the demo's online run) | +12.5 [" in md
    assert json.loads((tmp_path / "pooled.json").read_text())["tasks"] == ["a", "b"]


def test_bad_inputs_one_line_errors(tmp_path):
    old = dict(A)
    del old["outcomes"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="field 'outcomes' missing"):
        dpp.load(tmp_path / "old.json")
    part = json.loads(json.dumps(A))
    del part["outcomes"]["cp-bc/unseen"]
    (tmp_path / "part.json").write_text(json.dumps(part))
    with pytest.raises(SystemExit, match=r"outcomes\['cp-bc/unseen'\] missing"):
        dpp.load(tmp_path / "part.json")
    with pytest.raises(SystemExit, match="each task once"):
        dpp.pool([A, A])
