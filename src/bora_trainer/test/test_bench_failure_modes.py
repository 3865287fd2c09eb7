"""bench/failure_modes.py on hand-made episodes whose categories are known in advance."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import failure_modes as fm  # noqa: E402


def _ep(seed, success, progress):
    return {"seed": seed, "success": success, "final": {"task_progress": progress}}


def test_categories_and_lost_successes():
    ref = [_ep(0, True, 0.9), _ep(1, True, 0.95), _ep(2, False, 0.0), _ep(3, True, 0.8)]
    run = [_ep(0, False, 0.01), _ep(1, False, 0.75), _ep(2, True, 0.9), _ep(3, False, 0.3)]
    c = fm.counts(run, ref)
    assert c["all"] == {"success": 1, "not moved": 1, "part way": 1, "near the goal": 1}
    # seeds 0, 1, 3 succeeded in the reference and failed here: not moved, near the goal, part way
    assert c["lost"] == {"not moved": 1, "part way": 1, "near the goal": 1}
    assert fm.category(_ep(9, False, 0.05)) == "part way"  # the threshold belongs to the upper category
    assert "lost" not in fm.counts(run)


def test_an_episode_without_its_final_state_is_refused():
    with pytest.raises(ValueError, match="final.task_progress"):
        fm.category({"seed": 4, "success": False})
