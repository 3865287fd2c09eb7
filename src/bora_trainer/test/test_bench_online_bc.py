"""bench/bench_online_bc.py: variant names with an online training seed, and the over-seeds summary, on
hand-made evaluation files whose differences are known in advance (the training runs themselves are the
bench's, minutes each)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

import bench_online_bc as b  # noqa: E402


def test_variant_names_with_a_training_seed():
    assert b.variant_config("default") == {}
    assert b.variant_config("ex03@s2") == {"explore_std": 0.3, "seed": 2, "online": {"seed": 2}}
    assert b.variant_config("w0@s1") == {"online": {"intervention_bc_weight": 0.0, "seed": 1}, "seed": 1}
    for bad in ("nope", "ex03@sx", "nope@s1"):
        with pytest.raises(KeyError):
            b.variant_config(bad)


def _episodes(path: Path, wins: list[bool]) -> None:
    path.write_text(json.dumps({"episodes": [{"seed": 200000 + i, "success": w} for i, w in enumerate(wins)]}))


def _assert_summary(x: dict, seeds: list[int], per_seed: list[float], mean: float) -> None:
    """An over-seeds summary (training_seeds / against_control): its seeds, per-seed differences, their mean and
    an interval around the mean."""
    assert x["seeds"] == seeds
    assert x["per_seed"] == pytest.approx(per_seed)
    assert x["mean"] == pytest.approx(mean)
    assert x["lo"] <= mean <= x["hi"]


def test_training_seeds_summary(tmp_path):
    # two tasks x 4 trials; BORA-Offline wins trial 0 only; seed 0 wins trials 0-1 (+25 points) on both tasks,
    # seed 1 wins trials 0-2 on task a (+50) and trial 0 on task b (0): pooled +25 and +25, mean +25
    for t in ("a", "b"):
        _episodes(tmp_path / f"{t}_offline.json", [True, False, False, False])
        _episodes(tmp_path / f"{t}_full_default.json", [True, True, False, False])
    _episodes(tmp_path / "a_full_default@s1.json", [True, True, True, False])
    _episodes(tmp_path / "b_full_default@s1.json", [True, False, False, False])
    a = argparse.Namespace(work=tmp_path, variants=["default", "default@s1", "ex03"])
    res = {"tasks": {t: {"variants": {"default": {}, "default@s1": {}}} for t in ("a", "b")}}
    out = b.training_seeds(a, res)
    assert list(out) == ["default"]  # ex03 ran on no task
    _assert_summary(out["default"], [0, 1], [0.25, 0.25], 0.25)


def test_against_control_pairs_seed_by_seed(tmp_path):
    # one task x 4 trials. Control lr0: seed 0 wins trials 0-1, seed 1 wins trial 0. default: seed 0 wins
    # trials 0-2 (+25 over lr0 at seed 0), seed 1 wins trials 0-3 (+75 over lr0 at seed 1): mean +50. The
    # unpaired nohinge@s2 has no lr0 at seed 2 and is left out; lr0 is not compared with itself.
    _episodes(tmp_path / "a_full_lr0.json", [True, True, False, False])
    _episodes(tmp_path / "a_full_lr0@s1.json", [True, False, False, False])
    _episodes(tmp_path / "a_full_default.json", [True, True, True, False])
    _episodes(tmp_path / "a_full_default@s1.json", [True, True, True, True])
    _episodes(tmp_path / "a_full_nohinge@s2.json", [False, False, False, False])
    variants = ["lr0", "lr0@s1", "default", "default@s1", "nohinge@s2"]
    a = argparse.Namespace(work=tmp_path, variants=variants)
    res = {"tasks": {"a": {"variants": dict.fromkeys(variants, {})}}}
    out = b.against_control(a, res, "lr0")
    assert list(out) == ["default"]
    _assert_summary(out["default"], [0, 1], [0.25, 0.75], 0.5)


def test_reused_evaluations_must_hold_the_requested_seeds(tmp_path):
    """Outputs in --work are reused: a file from another seed range or object set stops the report with a
    one-line error."""
    _episodes(tmp_path / "a_offline.json", [True, False])
    _episodes(tmp_path / "a_full_default.json", [True, True])
    ns = lambda seed0=200000, trials=2, objects="standard": argparse.Namespace(  # noqa: E731
        work=tmp_path, seed0=seed0, trials=trials, objects=objects)
    b.check_seeds(ns())  # as requested: no error
    with pytest.raises(SystemExit, match=r"a_offline.json holds seeds 200000..200001 \(2\), expected --seed0 "
                                         r"500000 --trials 2"):
        b.check_seeds(ns(seed0=500000))
    with pytest.raises(SystemExit, match="expected --seed0 200000 --trials 3"):
        b.check_seeds(ns(trials=3))
    with pytest.raises(SystemExit, match="a_offline.json was evaluated on the 'standard' objects, expected "
                                         "--objects unseen"):
        b.check_seeds(ns(objects="unseen"))


def test_pool_variant_diff_over_two_work_dirs(tmp_path, capsys):
    """bench/pool_variant_diff.py: a variant against its control at the same online seed, pooled over work dirs.
    Two tasks, four trials. Work dir A, seed 0: t1 +2/4, t2 0; seed 1 (``@s1``): t1 0, t2 -1/4. Work dir B, seed
    0: t1 +1/4, t2 +1/4. Per pair pooled: +25, -12.5, +25 points; mean over the three pairs per task, then over
    tasks: t1 (2/4 + 0 + 1/4) / 3 = 1/4, t2 (0 - 1/4 + 1/4) / 3 = 0 -> +12.5 points."""
    import pool_variant_diff as pool

    a, bdir = tmp_path / "a", tmp_path / "b"
    for d in (a, bdir):
        d.mkdir()
    runs = {  # (dir, task, run): outcomes
        (a, "t1", "v"): [1, 1, 0, 0], (a, "t1", "c"): [0, 0, 0, 0],
        (a, "t2", "v"): [1, 0, 0, 0], (a, "t2", "c"): [1, 0, 0, 0],
        (a, "t1", "v@s1"): [1, 0, 1, 0], (a, "t1", "c@s1"): [1, 0, 1, 0],
        (a, "t2", "v@s1"): [0, 0, 0, 0], (a, "t2", "c@s1"): [0, 1, 0, 0],
        (bdir, "t1", "v"): [1, 1, 1, 0], (bdir, "t1", "c"): [1, 1, 0, 0],
        (bdir, "t2", "v"): [0, 0, 1, 1], (bdir, "t2", "c"): [0, 0, 1, 0],
        (bdir, "t1", "v@s1"): [1, 1, 1, 1],  # no control at this seed, and t2 lacks it: not paired
    }
    for (d, t, r), wins in runs.items():
        _episodes(d / f"{t}_full_{r}.json", [bool(w) for w in wins])
    out = tmp_path / "pooled.json"
    assert pool.main(["--work", str(a), str(bdir), "--variant", "v", "--control", "c", "--tasks", "t1", "t2",
                      "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert [r["pooled_diff"] for r in got["pairs"]] == pytest.approx([25.0, -12.5, 25.0])
    assert got["mean"] == pytest.approx(12.5) and got["lo"] <= 12.5 <= got["hi"]
    assert "+12.5" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        pool.main(["--work", str(tmp_path / "missing"), "--variant", "v", "--tasks", "t1", "t2"])


def test_the_report_names_the_evidence_run_it_retrained(tmp_path):
    """The report's header says which `bora demo` config built the evidence run (not always evidence_core)."""
    assert b.evidence_title(tmp_path) == f"no {tmp_path / 'configs' / 'demo.yaml'}"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text(
        "tasks: [press_button]\ntitle: BORA on the simulated robot (bora demo)\n")
    assert b.evidence_title(tmp_path) == "'BORA on the simulated robot (bora demo)': press_button"
