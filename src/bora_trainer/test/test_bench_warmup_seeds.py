"""bench/warmup_seeds.py: successes per warm-up run and A - B over training seeds (hand-computed)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import warmup_seeds  # noqa: E402


def _eval(path: Path, successes: list[bool], seed0: int = 5) -> None:
    path.write_text(json.dumps({"episodes": [{"seed": seed0 + i, "success": s} for i, s in enumerate(successes)]}))


def test_two_warm_up_kinds_over_two_training_seeds(tmp_path):
    # A: seed 0 succeeds 2/2 + 1/2, seed 1 2/2 + 2/2; B: seed 0 0/2 + 1/2, seed 1 1/2 + 1/2
    a = {(0, "standard"): [True, True], (0, "unseen"): [True, False], (1, "standard"): [True, True],
         (1, "unseen"): [True, True]}
    b = {(0, "standard"): [False, False], (0, "unseen"): [False, True], (1, "standard"): [True, False],
         (1, "unseen"): [False, True]}
    for (s, o), v in a.items():
        _eval(tmp_path / f"a_s{s}_{o}.json", v)
    for (s, o), v in b.items():
        _eval(tmp_path / f"b_s{s}_{o}.json", v)
    out = tmp_path / "res"
    assert warmup_seeds.main(["--a", f"a=A={tmp_path}/a_s{{seed}}_{{set}}.json",
                              "--b", f"b=B={tmp_path}/b_s{{seed}}_{{set}}.json",
                              "--seeds", "0", "1", "--seed0", "5", "--trials", "2", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["successes"]["a/s0/standard"] == 2 and res["successes"]["b/s1/unseen"] == 1
    # per seed over both sets: seed 0 (3 - 1) / 4 = +50 points, seed 1 (4 - 2) / 4 = +50: mean +50, no spread
    assert res["a_minus_b"]["t"] == pytest.approx([50.0, 50.0, 50.0])
    assert res["a_minus_b"]["bootstrap"][0] == pytest.approx(50.0)
    assert "| 0 | 2 / 1 | 0 / 1 |" in out.with_suffix(".md").read_text()


def test_a_spec_without_placeholders_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        warmup_seeds.main(["--a", "a=A=x.json", "--b", "b=B=y_{seed}_{set}.json", "--seeds", "0", "--out",
                           str(tmp_path / "o")])
    assert "NAME=LABEL=PATTERN" in capsys.readouterr().err
