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
