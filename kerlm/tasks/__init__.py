"""Tasks: the unit users think in (data, features, head, loss, metrics, export).

Every module in this package is imported here, and each task module registers itself
(`registry.register`), so adding a task is adding a module.

Example:
>>> config = default_config("qa", {"qa.doc_stride": 64})
>>> config.options.doc_stride, get_task(config).name
(64, 'qa')
>>> "classification" in registry.names() and registry.get("sentiment").name
'classification'
"""

import importlib
import pkgutil

from kerlm.config import Config, apply_overrides, read_config_file
from kerlm.tasks import registry
from kerlm.tasks.base import Task

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def get_task(config):
    """The task object `config.task` names, configured by `config`."""
    return registry.get(config.task).task_class(config)


def default_config(task, overrides=None):
    """The default Config of `task`, with `{"section.field": value}` overrides (the
    task's own options are `"<task>.field"`)."""
    config = Config(task=task, options=registry.get(task).options_class())
    return apply_overrides(config, overrides) if overrides else config


def config_from_dict(values):
    """A Config from its saved dict (today's layout or kerlm 0.x's)."""
    return Config.from_dict(values, registry.get(values.get("task", Config.task)).options_class)


def load_config(model_dir):
    """The Config saved in `model_dir` by apps/train.py; a ConfigError if there is none."""
    return config_from_dict(read_config_file(model_dir))


def restore_task(model_dir):
    """The task of the run in `model_dir`, with the assets training saved (vocabulary,
    labels) loaded: what evaluate, predict and export start from."""
    task = get_task(load_config(model_dir))
    task.restore(model_dir)
    return task


__all__ = ["Task", "registry", "get_task", "default_config", "config_from_dict",
           "load_config", "restore_task"]
