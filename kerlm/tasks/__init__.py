"""Tasks: the unit users think in (data, features, head, loss, metrics, export)."""

from kerlm.tasks.base import Task
from kerlm.tasks.classification import ClassificationTask

TASKS = {"sentiment": ClassificationTask}


def get_task(config):
    """The task object named by `config.task`."""
    if config.task not in TASKS:
        raise ValueError(f"Unknown task {config.task!r}; known: {sorted(TASKS)}")
    return TASKS[config.task](config)


__all__ = ["Task", "ClassificationTask", "TASKS", "get_task"]
