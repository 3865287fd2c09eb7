"""bench/bench_operator.py with a trained offline run as the watched policy (``--policies trained``)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from bench_operator import run_task  # noqa: E402


def test_trained_policy_is_watched_and_rescued(frozen_vla):
    """A random-init run never reaches the button: the configured operator (grace 1 s, patience 1.5 s at
    10 Hz) takes over for "no progress" and presses it; the row's figures follow from its one episode."""
    r = run_task("press_button", "trained", takeovers=1, max_episodes=1, seed0=2,
                 op_over={"budget": 2, "grace_s": 1.0, "patience_s": 1.5}, run=str(frozen_vla.run_dir))
    (ep,) = r["episodes_detail"]
    assert ep["reasons"][0] == "no progress"
    assert r["takeover_episodes"] == 1 and r["rescued"] == int(ep["success"]) == 1
    assert r["operator_share"] == pytest.approx(ep["operator_steps"] / ep["steps"])
    assert 0 < ep["operator_steps"] < ep["steps"]


def test_trained_policy_needs_its_run():
    with pytest.raises(ValueError, match="--runs entry for task 'open_box'"):
        run_task("open_box", "trained", takeovers=1, max_episodes=1, seed0=0, run=None)


def test_shadow_operator_only_watches(frozen_vla):
    """--shadow: the operator's takeover is recorded, not executed, so a random-init run that never reaches the
    button fails alone; the takeover it would have made (after the 1 s grace) was needed."""
    r = run_task("press_button", "trained", takeovers=1, max_episodes=1, seed0=2,
                 op_over={"budget": 2, "grace_s": 1.0, "patience_s": 1.5}, run=str(frozen_vla.run_dir), shadow=True)
    (ep,) = r["episodes_detail"]
    assert not ep["success"]
    assert ep["shadow_reason"] == "no progress" and ep["shadow_takeover_step"] >= 10
    assert (r["shadow_takeovers"], r["needed"], r["false_takeovers"], r["missed_failures"]) == (1, 1, 0, 0)


def test_shadow_summary_counts_by_hand():
    """Four episodes: a success taken over (false), a success left alone, a failure taken over (needed), a failure
    missed: precision 1/2, false-takeover rate 1/2, one missed failure."""
    from bench_operator import shadow_summary

    def ep(success, step, reason):
        return {"success": success, "steps": 80 if success else 140, "shadow_takeover_step": step,
                "shadow_reason": reason}

    eps = [ep(True, 40, "no progress"), ep(True, None, None), ep(False, 50, "object slipping"), ep(False, None, None)]
    r = shadow_summary("pick_and_place", "trained", eps, 1.0)
    assert (r["autonomous_successes"], r["shadow_takeovers"], r["needed"], r["false_takeovers"]) == (2, 2, 1, 1)
    assert r["precision"] == 0.5 and r["false_takeover_rate"] == 0.5 and r["missed_failures"] == 1
    assert r["reasons_success_failure"] == {"no progress": [1, 0], "object slipping": [0, 1]}
    assert r["false_takeover_steps"] == [40] and r["success_steps"] == [80, 80]
