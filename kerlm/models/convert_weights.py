"""Copy named checkpoint tensors into a backbone's weights, checking every shape first.

A converter describes a checkpoint as a `Checkpoint` (names → numpy arrays, read on demand)
and lists `(kerlm weight path, checkpoint name, layout, index)` entries; `transfer` checks all
of them and assigns only if every tensor is present, every shape fits and no checkpoint
tensor is left over, else raises one ValueError naming each problem (tensor, shapes, weight).

A `Layout` says how a checkpoint stores a weight: `SAME` (as kerlm does), `FLAT` (a bias
`[heads * head_dim]` for `[heads, head_dim]`), `dense(in_axes)` (a `[in, out]` matrix, as
Keras and GPT-2's Conv1D store it) or `linear(in_axes)` (PyTorch's `[out, in]`); `in_axes` is
how many leading axes of the kerlm kernel are inputs (`[hidden, heads, head_dim]` has 1,
the attention output's `[heads, head_dim, hidden]` has 2).

Example:
>>> import numpy as np, keras
>>> layer = keras.layers.Dense(3, name="d")
>>> layer.build((None, 2))
>>> checkpoint = Checkpoint({"w": np.ones((3, 2)), "b": np.zeros(3), "bad": np.zeros(1)},
...                        "toy.safetensors")
>>> plan = [("d/kernel", "w", linear(1), None), ("d/bias", "b", SAME, None)]
>>> try:
...     transfer(layer, plan, checkpoint)
... except ValueError as error:
...     print(error)
Cannot load toy.safetensors into Dense:
  unused checkpoint tensors: 'bad'
>>> transfer(layer, plan, Checkpoint({"w": np.ones((3, 2)), "b": np.zeros(3)}, "toy"))
>>> keras.ops.convert_to_numpy(layer.kernel).tolist()
[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
"""

import fnmatch
import math

import keras
import numpy as np

MAX_LISTED = 12  # names listed per kind of problem in an error message


class Layout:
    """How a checkpoint stores a weight: its expected shape and the conversion to kerlm's."""

    def __init__(self, name, source_shape, convert):
        self.name = name
        self.source_shape = source_shape  # kerlm shape -> the checkpoint shape it needs
        self.convert = convert  # (checkpoint array, kerlm shape) -> kerlm array

    def __repr__(self):
        return self.name


SAME = Layout("same layout", tuple, lambda array, shape: array)
FLAT = Layout("flattened", lambda shape: (math.prod(shape),),
              lambda array, shape: array.reshape(shape))


def dense(in_axes=1):
    """`[in, out]` matrices (Keras, GPT-2's Conv1D) for a kernel with `in_axes` input axes."""
    return Layout("[in, out] matrix",
                  lambda shape: (math.prod(shape[:in_axes]), math.prod(shape[in_axes:])),
                  lambda array, shape: array.reshape(shape))


def linear(in_axes=1):
    """PyTorch `Linear` weights, `[outputs, inputs]`, for a kernel with `in_axes` input axes."""
    return Layout("PyTorch [out, in] matrix",
                  lambda shape: (math.prod(shape[in_axes:]), math.prod(shape[:in_axes])),
                  lambda array, shape: array.T.reshape(shape))


class Checkpoint:
    """Named tensors read on demand as float32, remembering which ones were used.

    `tensors` maps names to arrays or to zero-argument functions returning them;
    `description` names the checkpoint in errors; names matching an `ignore` glob (buffers,
    pretraining heads) are never reported as unused.
    """

    def __init__(self, tensors, description, ignore=()):
        self.tensors = dict(tensors)
        self.description = description
        self.ignore = tuple(ignore)
        self.used = set()

    def __contains__(self, name):
        return name in self.tensors

    def __getitem__(self, name):
        value = self.tensors[name]
        self.used.add(name)
        return np.asarray(value() if callable(value) else value, dtype="float32")

    def unused(self):
        """Names neither read nor ignored, in order."""
        return [name for name in self.tensors if name not in self.used
                and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ignore)]


def _listed(names):
    shown = ", ".join(repr(n) for n in names[:MAX_LISTED])
    return shown + (f", ... ({len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def _describe(path, index):
    if index is None:
        return repr(path)
    parts = index if isinstance(index, tuple) else (index,)
    return repr(path) + "[" + ", ".join(":" if p == slice(None) else str(p) for p in parts) + "]"


def transfer(model, plan, checkpoint):
    """Assign every `(weight path, tensor name, layout, index)` of `plan` from `checkpoint`.

    `index` (or None) selects the part of the kerlm weight the tensor fills, e.g.
    `(slice(None), 0)` for the query third of a fused `[hidden, 3, heads, head_dim]` kernel.
    Nothing is assigned unless every check passes; then every weight of `model` has a value.
    """
    variables = {v.path: v for v in model.weights}
    values, missing, problems = {}, [], []
    for path, name, layout, index in plan:
        if path not in variables:
            problems.append(f"kerlm {type(model).__name__} has no weight {path!r} "
                            f"(for checkpoint tensor {name!r})")
            continue
        full_shape = tuple(variables[path].shape)
        shape = full_shape if index is None else np.empty(full_shape, "bool")[index].shape
        if name not in checkpoint:
            missing.append(name)
            continue
        array = checkpoint[name]
        expected = tuple(layout.source_shape(shape))
        if array.shape != expected:
            problems.append(
                f"checkpoint tensor {name!r} has shape {array.shape}, but kerlm weight "
                f"{_describe(path, index)} of shape {shape} needs {expected} ({layout})")
            continue
        value = layout.convert(array, shape)
        if index is None:
            values[path] = value
        else:
            values.setdefault(path, np.zeros(full_shape, "float32"))[index] = value
    if missing:
        problems.append(f"tensors missing from the checkpoint: {_listed(missing)}")
    unused = checkpoint.unused()
    if unused:
        problems.append(f"unused checkpoint tensors: {_listed(unused)}")
    unset = [path for path in variables if path not in values]
    if unset and not problems:
        problems.append(f"kerlm weights the checkpoint does not set: {_listed(unset)}")
    if problems:
        raise ValueError(f"Cannot load {checkpoint.description} into {type(model).__name__}:\n  "
                         + "\n  ".join(problems))
    for path, value in values.items():
        variables[path].assign(keras.ops.cast(value, variables[path].dtype))
