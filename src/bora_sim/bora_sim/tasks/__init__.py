"""The five tasks of the paper (Section 4.1, Table 4), as an explicit name -> class table."""

from __future__ import annotations

from bora_sim.tasks.base import Task, TaskStatus
from bora_sim.tasks.pick_plush_toy import PickPlushToy

TASKS: dict[str, type[Task]] = {
    "pick_plush_toy": PickPlushToy,
}


def get_task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "TaskStatus", "get_task_class"]
