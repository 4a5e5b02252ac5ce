"""Tasks: the unit users think in (data, features, head, loss, metrics, export)."""

from kerlm.tasks.base import Task
from kerlm.tasks.classification import ClassificationTask
from kerlm.tasks.multitask import MultiTask
from kerlm.tasks.qa import QATask
from kerlm.tasks.seq2seq import Seq2SeqTask, SummarizationTask, TranslationTask

TASKS = {"sentiment": ClassificationTask, "translation": TranslationTask,
         "summarization": SummarizationTask, "qa": QATask, "multitask": MultiTask}


def get_task(config):
    """The task object named by `config.task`."""
    if config.task not in TASKS:
        raise ValueError(f"Unknown task {config.task!r}; known: {sorted(TASKS)}")
    return TASKS[config.task](config)


__all__ = ["Task", "ClassificationTask", "MultiTask", "QATask", "Seq2SeqTask",
           "SummarizationTask", "TranslationTask",
           "TASKS", "get_task"]
