"""Help monitor and its calibration on hand-built value sequences (issue 19); expectations by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bora_policy.runtime.help_calibration import (
    CalibrationEpisode,
    calibrate,
    calibrate_threshold,
    episode_score,
    load_monitor_config,
    main,
)
from bora_policy.runtime.help_monitor import HelpMonitor, HelpMonitorConfig


def steps(cfg: HelpMonitorConfig, seq) -> list[int]:
    return [d.step for d in HelpMonitor(cfg).run(seq)]


def cfg(**kw) -> HelpMonitorConfig:
    base = dict(threshold=0.3, hysteresis=0.0, min_interval_s=0.0, persist_steps=1, grace_steps=0, control_hz=10.0)
    base.update(kw)
    return HelpMonitorConfig(**base)


def test_flat_profile_never_asks():
    assert steps(cfg(), [0.5] * 200) == []
    assert steps(cfg(), [0.3] * 200) == []  # at the threshold is not below it
    assert steps(cfg(threshold=None), [-5.0] * 50) == []  # not calibrated: never asks


def test_hysteresis_rearms_only_above_threshold_plus_margin():
    seq = [0.5, 0.2, 0.35, 0.25, 0.45, 0.2]
    assert steps(cfg(hysteresis=0.1), seq) == [1, 5]  # 0.35 < 0.4 does not re-arm; 0.45 does
    assert steps(cfg(hysteresis=0.0), seq) == [1, 3, 5]  # without it the dip at step 3 asks again


def test_value_hovering_at_threshold_asks_once():
    rng = np.random.default_rng(0)
    seq = 0.3 + rng.uniform(-0.04, 0.04, 300)
    assert len(steps(cfg(hysteresis=0.05), seq)) == 1
    assert len(steps(cfg(hysteresis=0.0), seq)) > 50


def test_minimum_interval():
    seq = [0.5, 0.2] * 10  # low at every odd step, re-armed at every even one
    # 0.5 s at 10 Hz = 5 steps: after step 1 the next allowed low is step 7 (step 3, 5 are too soon)
    assert steps(cfg(min_interval_s=0.5), seq) == [1, 7, 13, 19]
    assert steps(cfg(min_interval_s=0.0), seq) == list(range(1, 20, 2))


def test_persistence_and_grace():
    assert steps(cfg(persist_steps=3), [0.5, 0.2, 0.2, 0.5, 0.2, 0.2, 0.2]) == [6]
    assert steps(cfg(grace_steps=4), [0.1] * 10) == [4]


def test_request_fields_and_predicted_steps_to_failure():
    m = HelpMonitor(cfg(failure_value=0.0))
    q = [0.5, 0.25, 0.1, 0.05, -0.1, -0.2, -0.3, -0.4]
    assert m.update(0, q, q, index=0) is None
    d = m.update(1, q, q, index=1)  # q_1 = 0.25 < 0.3; q_4 = -0.1 is the first <= 0: 3 steps ahead
    assert (d.step, d.reason, d.value, d.threshold, d.predicted_steps_to_failure) == (1, "low_value", 0.25, 0.3, 3)
    # no failure level known: unknown
    d = HelpMonitor(cfg()).update(0, q, q, index=1)
    assert d.predicted_steps_to_failure == -1
    # from the falling history when the chunk does not reach the level: 0.6, 0.5, 0.4, 0.25 -> slope
    # of the fit -0.115/step; (0.25 - 0) / 0.115 = 2.17 -> 3
    m = HelpMonitor(cfg(failure_value=0.0))
    for t, x in enumerate([0.6, 0.5, 0.4]):
        assert m.update(t, [x, x], None, 0) is None
    d = m.update(3, [0.25, 0.25], None, 0)
    assert d.predicted_steps_to_failure == 3


def test_signal_kinds_and_no_critic():
    q, v = [0.5, 0.4, 0.1], [0.2, 0.6, 0.6]
    assert HelpMonitor(cfg(signal="q")).update(0, q, v, 1) is None  # q_1 = 0.4
    assert HelpMonitor(cfg(signal="q_ahead")).update(0, q, v, 1).value == pytest.approx(0.1)
    assert HelpMonitor(cfg(signal="v")).update(0, q, v, 0).value == pytest.approx(0.2)
    assert HelpMonitor(cfg()).update(0, None, None, 0) is None


def test_negative_advantage_reason():
    m = HelpMonitor(cfg(advantage_threshold=-0.2))
    q, v = [0.5, 0.5], [0.8, 0.8]
    d = m.update(0, q, v, 0, advantage=[-0.3, -0.3])
    assert (d.reason, d.value, d.threshold) == ("negative_advantage", -0.3, -0.2)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="signal"):
        HelpMonitorConfig(signal="w")
    with pytest.raises(ValueError, match="min_interval_s"):
        HelpMonitorConfig(min_interval_s=-1)
    with pytest.raises(ValueError, match="threshold"):
        HelpMonitorConfig(threshold=float("nan"))
    with pytest.raises(ValueError, match="unknown field"):
        HelpMonitorConfig.from_dict({"thresold": 0.1})


def test_episode_score_closed_form():
    x = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert episode_score(x, 1, 0) == 0.1
    assert episode_score(x, 1, 2) == 0.2
    assert episode_score(x, 2, 0) == 0.3  # window maxima 0.5, 0.4, 0.4, 0.3
    assert episode_score(x, 1, 5) == float("inf")


def test_calibration_picks_the_quantile():
    scores = [0.1 * i for i in range(1, 11)]  # 0.1 .. 1.0
    assert calibrate_threshold(scores[::-1], 0.2) == pytest.approx(0.3)  # 2 of 10 (0.1, 0.2) below
    assert calibrate_threshold(scores, 0.0) == pytest.approx(0.1)  # none below
    assert calibrate_threshold(scores, 0.25) == pytest.approx(0.3)  # floor(2.5) = 2
    with pytest.raises(ValueError, match="false-request rate"):
        calibrate_threshold(scores, 1.0)


def test_calibrate_per_task_replays_the_target_rate():
    eps = []
    for i in range(1, 11):  # successes: flat 1.0 with one dip to 0.1 i
        eps.append(CalibrationEpisode("a", True, np.array([1.0] * 10 + [0.1 * i] + [1.0] * 10)))
    for _ in range(4):  # failures: value falls to -0.5 over the last 10 steps
        eps.append(CalibrationEpisode("a", False, np.concatenate([np.ones(20), np.linspace(0.5, -0.5, 10)])))
    eps.append(CalibrationEpisode("b", True, np.ones(20) * 0.7))
    eps.append(CalibrationEpisode("b", True, np.ones(20) * 0.9))
    base = HelpMonitorConfig(persist_steps=1, grace_steps=0, hysteresis=0.0)
    res = calibrate(eps, 0.2, base)
    a = res["a"]
    assert a["monitor"]["threshold"] == pytest.approx(0.3)
    assert a["false_request_rate"] == pytest.approx(0.2) and a["recall"] == 1.0
    # first value < 0.3 in linspace(0.5, -0.5, 10) is index 2 (0.2778): step 22 of 30 -> lead 8 steps
    assert a["median_lead_steps"] == 8
    # failure level: median of the last 5 steps of the failures
    assert a["monitor"]["failure_value"] == pytest.approx(float(np.median(np.linspace(0.5, -0.5, 10)[-5:])))
    assert res["b"]["monitor"]["threshold"] == pytest.approx(0.7) and res["b"]["recall"] is None


def test_cli_writes_and_loads(tmp_path, capsys):
    f = tmp_path / "eps.jsonl"
    lines = [{"task": "t", "success": True, "signal": [1.0, 1.0, 0.1 * i, 1.0]} for i in range(1, 11)]
    lines.append({"task": "t", "success": None, "signal": [0.0] * 4})  # no outcome: skipped
    f.write_text("\n".join(json.dumps(x) for x in lines))
    out = tmp_path / "help.yaml"
    rc = main(["calibrate", str(f), "--out", str(out), "--false-rate", "0.1", "--persist-steps", "1",
               "--grace-steps", "0"])
    assert rc == 0
    c = load_monitor_config(out, "t", min_interval_s=1.0)
    assert c.threshold == pytest.approx(0.2) and c.min_interval_s == 1.0 and c.persist_steps == 1
    with pytest.raises(ValueError, match="no entry for task 'x'"):
        load_monitor_config(out, "x")
    assert main(["calibrate", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
