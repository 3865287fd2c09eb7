"""bora_sim.env.task_state: the task's state in a step's info as plain JSON values (hand-made infos)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bora_sim.env import task_state


def test_keeps_the_task_state_and_drops_the_episode_keys():
    info = {"success": False, "step": 7, "time_s": 0.7, "object": "cube", "object_set": "standard",
            "variation": {"x": 0.5}, "task_progress": np.float64(0.123456), "in_basket": np.bool_(True),
            "hand_contacts": np.int64(3), "corners": np.array([[1.23456, 2.0]]), "phase": "lift"}
    out = task_state(info)
    assert out == {"task_progress": 0.1235, "in_basket": True, "hand_contacts": 3, "corners": [[1.2346, 2.0]],
                   "phase": "lift"}
    assert type(out["in_basket"]) is bool and type(out["hand_contacts"]) is int
    assert json.loads(json.dumps(out)) == out


def test_an_unknown_value_is_refused_naming_the_key():
    with pytest.raises(TypeError, match=r"info\['pose'\] is a object"):
        task_state({"pose": object()})
