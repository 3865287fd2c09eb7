"""`bora report`: Wilson intervals against hand-computed values, the paper-form table, the plots."""

from __future__ import annotations

import json

import pytest

from bora_trainer.eval_run import RunInfo
from bora_trainer.report import load_results, main, markdown_tables, wilson_interval


def test_wilson_hand_computed():
    # n=20, s=10, z=1.96: p=0.5, z^2/n=0.19208, centre=(0.5+0.09604)/1.19208=0.5,
    # half=1.96*sqrt(0.25/20+3.8416/1600)/1.19208=1.96*sqrt(0.0125+0.002401)/1.19208
    #     =1.96*0.122070/1.19208=0.200704 -> [0.2993, 0.7007]
    lo, hi = wilson_interval(10, 20)
    assert lo == pytest.approx(0.29930, abs=2e-4) and hi == pytest.approx(0.70070, abs=2e-4)
    # s=n: upper bound 1, lower bound n/(n+z^2) = 20/23.8415 = 0.83887
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(20 / (20 + 1.959964**2), abs=1e-5)
    # s=0: lower 0, upper z^2/(n+z^2) = 3.8415/23.8415 = 0.16113
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(3.841459 / 23.841459, abs=1e-5)
    # exactly 1 / 0 at the edges for every n (50/50 gave 1 - 1e-16, a negative error bar in the plot)
    assert all(wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0 for n in range(1, 400))
    with pytest.raises(ValueError, match="successes must be in"):
        wilson_interval(21, 20)


def _write(tmp_path, method, task, s, n, object_set="standard", values=None):
    eps = [{"seed": i, "success": i < s, "steps": 10, "values": values or []} for i in range(n)]
    f = tmp_path / f"{method}_{task}_{object_set}.json".replace(" ", "_")
    f.write_text(json.dumps({"method": method, "run": "r", "task": task, "object_set": object_set,
                             "trials": n, "successes": s, "episodes": eps}))
    return f


def test_table_in_paper_form(tmp_path):
    _write(tmp_path, "CP Base", "press_button", 13, 20)
    _write(tmp_path, "BORA-Offline", "press_button", 13, 20)
    _write(tmp_path, "BORA-Offline", "pick_plush_toy", 17, 20)
    _write(tmp_path, "CP Base", "pick_plush_toy", 12, 20)
    md = markdown_tables(load_results([tmp_path]))
    lines = md.splitlines()
    assert lines[2] == "| Task | CP Base | BORA-Offline |"  # paper's column order
    assert "| Pick the plush toy | 12/20 (60%) [39-78] | 17/20 (85%) [64-95] |" in md
    # averages: CP Base (12+13)/40 = 62.5%, BORA-Offline (17+13)/40 = 75.0%
    assert "**62.5%**" in md and "**75.0%**" in md


def test_online_and_offline_rows_of_one_method_are_two_cells(tmp_path):
    # the labels `bora eval` writes for an offline and an online ALOE run (eval_run.RunInfo.method)
    off = RunInfo(tmp_path, tmp_path, algo="aloe", phase="offline").method
    on = RunInfo(tmp_path, tmp_path, algo="aloe", phase="online").method
    assert (off, on) == ("ALOE", "ALOE (online)")
    _write(tmp_path, off, "press_button", 5, 20)
    _write(tmp_path, on, "press_button", 15, 20)
    md = markdown_tables(load_results([tmp_path]))
    assert md.splitlines()[2] == "| Task | ALOE | ALOE (online) |"
    # 5/20: centre=(0.25+0.09604)/1.19208=0.29028, half=1.96*sqrt(0.009375+0.002401)/1.19208=0.17843
    # -> [11-47]; 15/20 is its mirror image -> [53-89]; not pooled into one 20/40 cell
    assert "| Press the button | 5/20 (25%) [11-47] | 15/20 (75%) [53-89] |" in md
    assert "20/40" not in md


def test_cli_writes_report_and_plots(tmp_path):
    _write(tmp_path, "BORA-Full", "press_button", 3, 4, values=[0.1, 0.5, 0.9])
    out = tmp_path / "rep"
    assert main([str(tmp_path), "--out", str(out)]) == 0
    assert (out / "report.md").read_text().count("3/4 (75%)") == 1
    for png in ("success_bars.png", "value_profile.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_missing_inputs(tmp_path, capsys):
    assert main([str(tmp_path / "nope.json")]) == 2
    assert "not found" in capsys.readouterr().err
