"""bench/paired_rows.py on hand-made `bora eval` results: paired differences per task, the pooled estimate, and a
one-line refusal of results evaluated differently."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import paired_rows  # noqa: E402


def _result(d: Path, task: str, row: str, wins: list[int], **settings):
    d.mkdir(parents=True, exist_ok=True)
    eps = [{"seed": 300000 + i, "success": bool(w)} for i, w in enumerate(wins)]
    s = {"replan_steps": 8, "max_steps": None, "image_size": 64, **settings}
    (d / f"{task}__{row}__standard.json").write_text(
        json.dumps({"object_set": "standard", "trials": len(wins), "successes": sum(wins), "episodes": eps,
                    "settings": s}))


def test_paired_rows_per_task_and_pooled(tmp_path, capsys):
    a, b = tmp_path / "new", tmp_path / "old"
    _result(a, "press_button", "full", [1, 1, 1, 0])  # 3 of 4
    _result(b, "press_button", "off", [1, 0, 0, 0])   # 1 of 4: +50 points
    _result(a, "open_box", "full", [0, 0, 1, 1])      # 2 of 4
    _result(b, "open_box", "off", [0, 0, 1, 1])       # 2 of 4: +0
    res = paired_rows.compare(f"{a}:full={b}:off", ["press_button", "open_box"], n_boot=200)
    (std,) = res
    assert [(t["task"], t["a"], t["b"], t["diff"]) for t in std["tasks"]] == [
        ("press_button", 3, 1, 0.5), ("open_box", 2, 2, 0.0)]
    assert std["pooled"]["diff"] == pytest.approx(0.25)  # the mean over the two tasks
    assert paired_rows.main(["--compare", f"{a}:full={b}:off", "--tasks", "press_button", "--n-boot", "100"]) == 0
    assert "| press_button | 4 | 3 | 1 | +50.0 |" in capsys.readouterr().out
    _result(b, "press_button", "off", [1, 0, 0, 0], replan_steps=4)
    with pytest.raises(ValueError, match=r"paired cells differ in replan_steps: .*full__standard.json \(8\) vs .*"):
        paired_rows.compare(f"{a}:full={b}:off", ["press_button"], n_boot=10)


def test_budget_sums_the_first_two_rounds(tmp_path):
    run = tmp_path / "runs" / "open_box" / "bora-residual-online"
    run.mkdir(parents=True)
    rounds = [{"round": r, "episodes": 10, "successes": 9, "steps": 100, "intervened_steps": 10 * r, "takeovers": r,
               "taken_over": r, "rescued": r - 1} for r in (1, 2, 3)]
    (run / "summary.json").write_text(json.dumps({"per_round": rounds}))
    (b,) = paired_rows.budget(tmp_path)
    assert (b["task"], b["rounds"], b["episodes"], b["steps"], b["intervened_steps"]) == ("open_box", 2, 20, 200, 30)
    assert (b["takeovers"], b["rescued"], b["taken_over"]) == (3, 1, 3) and b["share"] == pytest.approx(0.15)
    assert "| all | | | | | | 30 of 200 (15.0%) |" in paired_rows.budget_md("x", [b])
