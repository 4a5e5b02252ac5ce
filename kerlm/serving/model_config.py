"""Reads TF Serving's `--model_config_file` (a text-format ModelServerConfig protobuf).

Only ``model_config_list { config { name: ... base_path: ... } ... }`` is supported, which is
all that serving SavedModels by name needs; other `config` fields (`model_platform`,
`model_version_policy`, ...) are accepted and ignored with a warning: every version found is
served. No dependency on tensorflow-serving-api.

>>> parse_model_config('''
... model_config_list {
...   config { name: 'sentiment' base_path: "/models/sentiment" model_platform: "tensorflow" }
... }''')
{'sentiment': '/models/sentiment'}
"""

import ast
import re

from absl import logging

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[\w.+-]+)
  | (?P<punct>[{}<>:,;])
""", re.VERBOSE)
_CLOSING = {"{": "}", "<": ">"}


def _tokenize(text):
    """Yields (kind, text, line) tokens; raises ValueError on a character that fits none."""
    pos, line = 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"line {line}: unexpected character {text[pos]!r}")
        if match.lastgroup != "space":
            yield match.lastgroup, match.group(), line
        line += match.group().count("\n")
        pos = match.end()


def _parse_fields(tokens, i, closer):
    """Parses `name: value` / `name { ... }` fields up to `closer`; returns (fields, next i)."""
    fields = []
    while True:
        if i == len(tokens):
            if closer is None:
                return fields, i
            raise ValueError(f"missing '{closer}' at the end of the file")
        kind, text, line = tokens[i]
        if text == closer:
            return fields, i + 1
        if kind != "word":
            raise ValueError(f"line {line}: expected a field name, got {text!r}")
        i += 1
        if i < len(tokens) and tokens[i][1] == ":":
            i += 1
        if i == len(tokens):
            raise ValueError(f"line {line}: field '{text}' has no value")
        value_kind, value, value_line = tokens[i]
        if value in _CLOSING:
            value, i = _parse_fields(tokens, i + 1, _CLOSING[value])
        elif value_kind == "string":
            value, i = ast.literal_eval(value), i + 1
        elif value_kind == "word":
            i += 1
        else:
            raise ValueError(f"line {value_line}: field '{text}' has no value before {value!r}")
        fields.append((text, value))
        if i < len(tokens) and tokens[i][1] in (",", ";"):
            i += 1


def parse_model_config(text):
    """Returns {model name: base path} from a ModelServerConfig in protobuf text format.

    Raises:
      ValueError: for malformed text, unsupported top-level fields, or a config without a
        name or base_path, or with a duplicate name.
    """
    fields, _ = _parse_fields(list(_tokenize(text)), 0, None)
    models = {}
    for field, model_list in fields:
        if field != "model_config_list" or not isinstance(model_list, list):
            raise ValueError(f"unsupported top-level field '{field}': expected "
                             "'model_config_list { config { ... } }'")
        for field, config in model_list:
            if field != "config" or not isinstance(config, list):
                raise ValueError(f"unexpected field '{field}' in model_config_list")
            values = dict(config)
            name, base_path = values.pop("name", None), values.pop("base_path", None)
            if not isinstance(name, str) or not isinstance(base_path, str):
                raise ValueError("every config needs a name and a base_path string, got "
                                 f"{dict(config)}")
            if name in models:
                raise ValueError(f"model '{name}' is configured twice")
            if values.pop("model_platform", "tensorflow") != "tensorflow":
                raise ValueError(f"model '{name}': only model_platform 'tensorflow' is served")
            if values:
                logging.warning("Model '%s': ignoring config fields %s", name, sorted(values))
            models[name] = base_path
    if not models:
        raise ValueError("no 'model_config_list { config { ... } }' found")
    return models
