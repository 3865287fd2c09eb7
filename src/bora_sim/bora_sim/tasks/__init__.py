"""The five tasks of the paper (Section 4.1, Table 4), as an explicit name -> class table."""

from __future__ import annotations

from bora_sim.tasks.base import Task, TaskStatus
from bora_sim.tasks.open_box import OpenBox
from bora_sim.tasks.pick_and_place import PickAndPlace
from bora_sim.tasks.pick_plush_toy import PickPlushToy
from bora_sim.tasks.press_button import PressButton
from bora_sim.tasks.pull_tissue import PullTissue

TASKS: dict[str, type[Task]] = {
    "pick_plush_toy": PickPlushToy,
    "pick_and_place": PickAndPlace,
    "open_box": OpenBox,
    "pull_tissue": PullTissue,
    "press_button": PressButton,
}


def get_task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "TaskStatus", "get_task_class"]
