"""The task registry: a task module registers its class and options dataclass by name.

    @registry.register("qa", QAConfig)
    class QATask(Task): ...

`--task`'s choices, the flags of each task and the task section of `config.json` all
come from here, so a new task is one new module under `kerlm/tasks/` (modules there are
imported by `kerlm.tasks`). Aliases keep old names working (`sentiment` is
`classification`).
"""

import dataclasses

from kerlm.config import ConfigError

_TASKS = {}
_ALIASES = {}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    task_class: type
    options_class: type
    aliases: tuple


def register(name, options_class, aliases=()):
    """Class decorator: register a Task subclass as `--task=name` (and `aliases`) with
    `options_class` (a `kerlm.config.TaskConfig` subclass) as its options."""
    def decorate(task_class):
        for key in (name, *aliases):
            if key in _TASKS or key in _ALIASES:
                raise ValueError(f"task {key!r} is registered twice")
        _TASKS[name] = TaskSpec(name, task_class, options_class, tuple(aliases))
        _ALIASES.update({alias: name for alias in aliases})
        task_class.name = name
        return task_class
    return decorate


def get(name):
    """The TaskSpec of a task name or alias; a ConfigError listing the known ones."""
    spec = _TASKS.get(_ALIASES.get(name, name))
    if spec is None:
        raise ConfigError(f"Unknown task {name!r}; known: {', '.join(names())}")
    return spec


def names(aliases=True):
    """Registered task names (and aliases), sorted."""
    return sorted([*_TASKS, *(_ALIASES if aliases else ())])


def specs():
    """Every TaskSpec, in name order."""
    return [_TASKS[name] for name in sorted(_TASKS)]
