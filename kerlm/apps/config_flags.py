"""The training config's absl flags, generated from the config dataclasses and the task
registry, so the flags and `config.json` never drift apart.

Shared fields are flags of their own name (`--model` for `model.preset`); each task's
options are flags too, accepted only with that `--task` (`--helpfull` lists them under
their task); `--params_override=path=value` sets any field by its path in config.json.
"""

import dataclasses
import json

from absl import flags

from kerlm import config as config_lib
from kerlm.tasks import registry

FLAGS = flags.FLAGS


def _define(name, field, flag_values, module_name=None, choices=None):
    """One absl flag for a config field, of the field's type."""
    kwargs = dict(flag_values=flag_values, module_name=module_name)
    default, help_text = field.default, field.metadata["help"]
    choices = choices or field.metadata.get("choices")
    if choices:
        flags.DEFINE_enum(name, default, choices, help_text, **kwargs)
    elif isinstance(default, bool):
        flags.DEFINE_bool(name, default, help_text, **kwargs)
    elif isinstance(default, int):
        flags.DEFINE_integer(name, default, help_text, **kwargs)
    elif isinstance(default, float):
        flags.DEFINE_float(name, default, help_text, **kwargs)
    else:
        flags.DEFINE_string(name, default, help_text, **kwargs)


def _task_fields(spec):
    """The flag fields of a task's options (a multi-task run's `members` is no flag)."""
    return [f for f in dataclasses.fields(spec.options_class) if f.name != "members"]


def _owners():
    """`{flag name: [tasks whose options have it]}` over the registered tasks."""
    owners = {}
    for spec in registry.specs():
        for f in _task_fields(spec):
            owners.setdefault(f.name, []).append(spec.name)
    return owners


def define_config_flags(flag_values=FLAGS):
    """Define one flag per shared config field (`--model` for `model.preset`, else the
    field's name) and per field of every registered task's options; `--helpfull` lists
    the latter under their task. A flag several tasks have is defined once."""
    for path, field in config_lib.shared_fields():
        _define(config_lib.flag_name(path, field), field, flag_values,
                choices=registry.names() if path == "task" else None)
    defined = set()
    for spec in registry.specs():
        module = f"kerlm task --task={spec.name}"
        for field in _task_fields(spec):
            if field.name in defined:
                flag_values.register_flag_by_module(module, flag_values[field.name])
            else:
                _define(field.name, field, flag_values, module_name=module)
                defined.add(field.name)
    flags.DEFINE_multi_string(
        "params_override", [], "Set a config field by its path in config.json, e.g. "
        "multitask.members.qa.sequence_length=256 (values are read as JSON, else as "
        "strings; repeat the flag for several).", flag_values=flag_values)


def config_from_flags(flag_values=FLAGS):
    """`(Config, explicit)`: the config the flags describe, and the paths set explicitly.

    A task option given for a `--task` that has no such option is a ConfigError naming
    the tasks it belongs to.
    """
    task = flag_values["task"].value
    spec = registry.get(task)
    shared, explicit = {}, set()
    for path, field in config_lib.shared_fields():
        name = config_lib.flag_name(path, field)
        shared[path] = flag_values[name].value
        if flag_values[name].present:
            explicit.add(path)
    given = {}
    for name, owners in _owners().items():
        if not flag_values[name].present:
            continue
        if not spec.options_class.owns(name):
            raise config_lib.ConfigError(
                f"--{name} is an option of --task={', --task='.join(owners)}, not of "
                f"--task={task}")
        given[name] = flag_values[name].value
    config = config_lib.Config(task=task, options=spec.options_class.from_flags(given))
    config = config_lib.apply_overrides(config, {p: v for p, v in shared.items()
                                                 if p != "task"})
    explicit |= {p for p in config.flat() if p.startswith(f"{task}.") and
                 p.rpartition(".")[2] in given}
    overrides = dict(_override(item) for item in flag_values["params_override"].value)
    explicit |= set(overrides)
    return config_lib.apply_overrides(config, overrides), explicit


def _override(item):
    """`("path", value)` from `--params_override=path=value`."""
    path, sep, text = item.partition("=")
    if not sep:
        raise config_lib.ConfigError(f"--params_override={item!r}: expected path=value")
    try:
        return path.strip(), json.loads(text)
    except json.JSONDecodeError:
        return path.strip(), text
