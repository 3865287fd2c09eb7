"""``bora eval critic``: AUROC at fixed control steps, MC calibration and TD error, hand-computed."""

import json

import numpy as np
import pytest

from bora_policy.common.rewards import RewardConfig
from bora_trainer.cli import main as bora_main
from bora_trainer.eval_critic import (
    auroc_by_step,
    calibration,
    episode_targets,
    main,
    mc_returns,
    second_half_min,
    window_steps,
)


def test_window_is_fixed_steps_up_to_the_shortest_episode():
    assert window_steps([23, 40, 31], 5) == [5, 10, 15, 20]
    assert window_steps([21], 5) == [5, 10, 15, 20]  # step 20 = the 21st value exists
    assert window_steps([20], 5) == [5, 10, 15]
    assert window_steps([4, 50], 5) == []
    with pytest.raises(ValueError):
        window_steps([10], 0)


def _ep(success, values):
    return {"seed": 0, "success": success, "steps": len(values), "values": list(values)}


def test_auroc_uses_fixed_steps_not_midpoints():
    # a critic whose value only rises with time: successes are short (12 steps), failures long (30).
    # At a fixed step both classes have the same value -> AUROC 0.5 (a midpoint rule would give 0:
    # the successes' midpoint value 0.6 < the failures' 1.5).
    rising = lambda n: [0.1 * t for t in range(n)]  # noqa: E731
    eps = [_ep(True, rising(12)), _ep(True, rising(12)), _ep(False, rising(30)), _ep(False, rising(30))]
    rows = auroc_by_step(eps, every=5)
    assert [r["step"] for r in rows] == [5, 10]
    assert [r["auroc"] for r in rows] == [0.5, 0.5]


def test_auroc_per_step_hand_computed():
    # step 5 values: successes 0.9, 0.4; failures 0.4, 0.1 -> (1 + 1) + (0.5 + 1) = 3.5 of 4
    # step 10 values: successes 0.8, 0.7; failures 0.2, 0.3 -> 4 of 4
    def ep(success, v5, v10):
        v = [0.0] * 11
        v[5], v[10] = v5, v10
        return _ep(success, v)

    eps = [ep(True, 0.9, 0.8), ep(True, 0.4, 0.7), ep(False, 0.4, 0.2), ep(False, 0.1, 0.3)]
    rows = auroc_by_step(eps, every=5)
    assert [r["auroc"] for r in rows] == [0.875, 1.0]
    assert rows[0]["n_success"] == 2 and rows[0]["n_failure"] == 2
    assert second_half_min(rows) == 1.0  # the second half of [5, 10] is [10]


def test_one_class_gives_no_auroc():
    rows = auroc_by_step([_ep(True, [0.0] * 12), _ep(True, [1.0] * 12)], every=5)
    assert all(r["auroc"] is None for r in rows)
    assert second_half_min(rows) is None


def test_mc_returns_and_td_hand_computed():
    assert mc_returns(np.array([1.0, 2.0, 3.0]), 0.5).tolist() == [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]
    cfg = RewardConfig(success_reward=1.0, time_penalty=0.1, failure_reward=0.0)
    # success in 3 steps: r = [-0.1, -0.1, 0.9], done on the last step
    v, g, td = episode_targets(_ep(True, [0.5, 0.6, 0.8]), 0.9, cfg)
    assert g == pytest.approx([-0.1 + 0.9 * (-0.1) + 0.81 * 0.9, -0.1 + 0.9 * 0.9, 0.9])
    assert td == pytest.approx([-0.1 + 0.9 * 0.6 - 0.5, -0.1 + 0.9 * 0.8 - 0.6, 0.9 - 0.8])
    # failure (time limit, truncated): r = [-0.1, -0.1]; the last step has no TD error
    v, g, td = episode_targets(_ep(False, [0.2, 0.3]), 0.9, cfg)
    assert g == pytest.approx([-0.1 - 0.09, -0.1])
    assert td == pytest.approx([-0.1 + 0.9 * 0.3 - 0.2])


def test_calibration_of_a_perfect_critic():
    cfg = RewardConfig(success_reward=1.0, time_penalty=0.0)
    # V equal to the MC return: success of n steps -> gamma^(n-1-t); failure -> 0
    eps = [_ep(True, [0.9 ** (n - 1 - t) for t in range(n)]) for n in (5, 8, 11)] + [_ep(False, [0.0] * 9)]
    c = calibration(eps, 0.9, cfg, bins=4)
    assert c["bias"] == pytest.approx(0.0, abs=1e-12) and c["rmse"] == pytest.approx(0.0, abs=1e-12)
    assert c["corr"] == pytest.approx(1.0) and c["td_abs"] == pytest.approx(0.0, abs=1e-12)
    assert sum(b["n"] for b in c["curve"]) == 5 + 8 + 11 + 9
    for b in c["curve"]:
        assert b["v_mean"] == pytest.approx(b["g_mean"])


def test_cli_through_bora_eval(tmp_path):
    res = {"method": "BORA-Offline", "task": "press_button", "object_set": "standard", "trials": 4, "successes": 2,
           "episodes": [_ep(True, [0.1 * t for t in range(12)]), _ep(True, [0.1 * t for t in range(15)]),
                        _ep(False, [-0.01 * t for t in range(20)]), _ep(False, [0.0] * 20)]}
    f = tmp_path / "eval.json"
    f.write_text(json.dumps(res))
    (tmp_path / "other.json").write_text(json.dumps({"not": "an eval"}))  # ignored inside a directory
    out = tmp_path / "critic"
    assert bora_main(["eval", "critic", str(tmp_path), "--out", str(out)]) == 0
    data = json.loads((out / "critic_eval.json").read_text())
    (g,) = data["groups"]
    assert g["group"] == ["BORA-Offline", "press_button"]
    assert [r["step"] for r in g["auroc"]] == [5, 10]
    # step 5: successes 0.5, 0.5 vs failures -0.05, 0 -> 1; step 10: 1.0, 1.0 vs -0.1, 0 -> 1
    assert [r["auroc"] for r in g["auroc"]] == [1.0, 1.0] and g["target_met"]
    assert (out / g["plot"]).stat().st_size > 0
    assert "target >= 0.8 met" in (out / "critic_eval.md").read_text()


def test_cli_errors(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"method": "x"}))
    assert main([str(bad), "--out", str(tmp_path)]) == 2
    assert "not a `bora eval` result" in capsys.readouterr().err
    novals = tmp_path / "nv.json"
    novals.write_text(json.dumps({"method": "m", "task": "t", "episodes": [{"success": True, "steps": 3}]}))
    assert main([str(novals), "--out", str(tmp_path)]) == 2
    assert "no episodes with critic values" in capsys.readouterr().err
