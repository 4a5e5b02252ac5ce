"""Reads TF Serving's `--model_config_file` (a text-format ModelServerConfig protobuf).

Only ``model_config_list { config { name: ... base_path: ... } ... }`` is supported, which is
all that serving SavedModels by name needs, with each config's `model_version_policy`
(TF Serving's `ServableVersionPolicy`): which integer versions under `base_path` are served.

    model_version_policy { latest { num_versions: 2 } }      # the 2 highest versions
    model_version_policy { all {} }                          # every version
    model_version_policy { specific { versions: 1 versions: 3 } }   # or versions: [1, 3]

Without one, TF Serving's default applies: the latest version only. Other `config` fields
(`version_labels`, `logging_config`, ...) are accepted and ignored with a warning. No
dependency on tensorflow-serving-api.

>>> parse_model_config('''
... model_config_list {
...   config { name: 'sentiment' base_path: "/models/sentiment" model_platform: "tensorflow" }
... }''')
{'sentiment': '/models/sentiment'}
>>> parse_model_server_config('''model_config_list { config {
...   name: 'a' base_path: '/m/a' model_version_policy { specific { versions: [3, 1] } } } }''')
{'a': ModelConfig(base_path='/m/a', version_policy=VersionPolicy(kind='specific', versions=(1, 3)))}
"""

import ast
import dataclasses
import re
import typing

from absl import logging

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[\w.+-]+)
  | (?P<punct>[{}<>\[\]:,;])
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
            fields.append((text, value))
        elif value == "[":
            values, i = _parse_list(tokens, i + 1, text, value_line)
            fields.extend((text, v) for v in values)
        else:
            value, i = _parse_scalar(tokens, i, text)
            fields.append((text, value))
        if i < len(tokens) and tokens[i][1] in (",", ";"):
            i += 1


def _parse_scalar(tokens, i, field):
    """The string or word value at tokens[i]; returns (value, next i)."""
    kind, value, line = tokens[i]
    if kind == "string":
        return ast.literal_eval(value), i + 1
    if kind == "word":
        return value, i + 1
    raise ValueError(f"line {line}: field '{field}' has no value before {value!r}")


def _parse_list(tokens, i, field, line):
    """Scalars of ``[a, b, ...]`` after its '['; returns (values, next i)."""
    values = []
    while i < len(tokens) and tokens[i][1] != "]":
        if values:
            if tokens[i][1] != ",":
                raise ValueError(f"line {tokens[i][2]}: expected ',' or ']' in the list of "
                                 f"field '{field}', got {tokens[i][1]!r}")
            i += 1
        if i == len(tokens):
            break
        value, i = _parse_scalar(tokens, i, field)
        values.append(value)
    if i == len(tokens):
        raise ValueError(f"line {line}: missing ']' after the list of field '{field}'")
    return values, i + 1


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve: TF Serving's `ServableVersionPolicy`.

    `kind` is "latest" (the `num_versions` highest, at least 1: TF Serving's default with
    one), "all", or "specific" (those of `versions` found on disk).

    >>> VersionPolicy().select([1, 2, 3]), VersionPolicy("latest", num_versions=2).select([1, 2, 3])
    ([3], [2, 3])
    >>> VersionPolicy("specific", versions=(1, 9)).select([1, 2, 3]), ALL.select([1, 2, 3])
    ([1], [1, 2, 3])
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: typing.Tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"unknown version policy '{self.kind}': expected latest, all or "
                             "specific")

    def __repr__(self):
        if self.kind == "latest":
            return f"VersionPolicy(kind='latest', num_versions={self.num_versions})"
        if self.kind == "specific":
            return f"VersionPolicy(kind='specific', versions={self.versions})"
        return "VersionPolicy(kind='all')"

    def select(self, available):
        """The versions of `available` (integers) to serve, ascending."""
        available = sorted(available)
        if self.kind == "latest":
            return available[-max(self.num_versions, 1):]
        if self.kind == "all":
            return available
        return [v for v in available if v in self.versions]

    def missing(self, available):
        """Versions a "specific" policy names that are not in `available`."""
        return sorted(set(self.versions) - set(available)) if self.kind == "specific" else []


LATEST = VersionPolicy()
ALL = VersionPolicy("all")


class ModelConfig(typing.NamedTuple):
    """One `config` of a ModelServerConfig: where the versions are, which to serve."""

    base_path: str
    version_policy: VersionPolicy = LATEST


def _integer(value, field):
    if not isinstance(value, str) or not re.fullmatch(r"\+?\d+", value):
        raise ValueError(f"'{field}' must be a non-negative integer, got {value!r}")
    return int(value)


def _version_policy(name, fields):
    """A VersionPolicy from the fields of `model_version_policy { ... }`."""
    where = f"model '{name}': model_version_policy"
    if not isinstance(fields, list) or len(fields) != 1 or not isinstance(fields[0][1], list):
        raise ValueError(f"{where} must hold exactly one of 'latest {{ num_versions: N }}', "
                         "'all {}' or 'specific { versions: N ... }'")
    kind, body = fields[0]
    allowed = {"latest": {"num_versions"}, "all": set(), "specific": {"versions"}}
    if kind not in allowed:
        raise ValueError(f"{where}: unknown policy '{kind}' (expected latest, all or specific)")
    unknown = sorted({field for field, _ in body} - allowed[kind])
    if unknown:
        raise ValueError(f"{where} {kind}: unknown fields {unknown}")
    if kind == "latest":
        values = [_integer(v, "num_versions") for _, v in body]
        if len(values) > 1:
            raise ValueError(f"{where} latest: num_versions is given twice")
        return VersionPolicy("latest", num_versions=max(values or [1]))
    if kind == "specific":
        versions = tuple(sorted({_integer(v, "versions") for _, v in body}))
        if not versions:
            raise ValueError(f"{where} specific: no versions listed")
        return VersionPolicy("specific", versions=versions)
    return ALL


def parse_model_server_config(text):
    """Returns {model name: ModelConfig} from a ModelServerConfig in protobuf text format.

    Raises:
      ValueError: for malformed text, unsupported top-level fields, a config without a
        name or base_path, with a duplicate name, or with a malformed model_version_policy.
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
            policy = LATEST
            if "model_version_policy" in values:
                policy = _version_policy(name, values.pop("model_version_policy"))
            if values:
                logging.warning("Model '%s': ignoring config fields %s", name, sorted(values))
            models[name] = ModelConfig(base_path, policy)
    if not models:
        raise ValueError("no 'model_config_list { config { ... } }' found")
    return models


def parse_model_config(text):
    """Returns {model name: base path} from a ModelServerConfig in protobuf text format.

    The version policies are checked but left out; `parse_model_server_config` has them.

    Raises:
      ValueError: as `parse_model_server_config`.
    """
    return {name: config.base_path
            for name, config in parse_model_server_config(text).items()}
