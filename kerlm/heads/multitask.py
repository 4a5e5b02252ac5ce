"""Several task heads on one shared backbone, trained together on mixed batches."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlm")
class MultiTaskModel(keras.Model):
    """Heads that share one backbone object (its variables exist once), called per task.

    `heads` maps a task name to a head built on the same backbone (e.g. a `Classifier` and
    a `SpanLabeler` reading the encoder of an `EncoderDecoderBackbone`, and `Seq2SeqLM`s
    using its decoder). Inputs and outputs are dicts keyed by task; a batch may hold any
    subset of the tasks, and only those heads run.

    Training (TF Model Garden's joint multi-task trainer): `compile(optimizer,
    tasks={name: {"loss", "weight", "metrics", "weighted_metrics"}})`. The loss of a step is
    `Σ weight · loss` over the tasks in the batch (for a batch split between tasks in
    proportion to their mixture rates, weight = the task's share of the batch, which makes
    it the mean loss over the batch's examples). Each task's loss and metrics are logged
    under `<task>_loss`, `<task>_<metric>` (`val_...` on validation data). Targets are
    `y[task]`, or `{"labels", "sample_weight"}` for masked token losses.

    Example:
    >>> import numpy as np
    >>> from kerlm.heads import Classifier, SpanLabeler
    >>> from kerlm.models import EncoderBackbone
    >>> backbone = EncoderBackbone(vocabulary_size=30, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> model = MultiTaskModel({"sentiment": Classifier(backbone, num_classes=2),
    ...                         "qa": SpanLabeler(backbone)})
    >>> ids, mask = np.array([[2, 7, 3]]), np.array([[1, 1, 1]])
    >>> out = model({"qa": {"token_ids": ids, "padding_mask": mask, "segment_ids": 0 * ids}})
    >>> list(out), tuple(out["qa"].shape)
    (['qa'], (1, 2, 3))
    >>> len(model.trainable_weights) == len(backbone.trainable_weights) + 2 + 2  # 2 dense
    True
    """

    def __init__(self, heads, **kwargs):
        super().__init__(**kwargs)
        if not heads:
            raise ValueError("MultiTaskModel needs at least one head")
        backbones = {id(head.backbone) for head in heads.values()}
        if len(backbones) != 1:
            raise ValueError("Every head of a MultiTaskModel must be built on the same "
                             f"backbone object; {', '.join(heads)} use {len(backbones)}")
        self.heads = dict(heads)
        self.backbone = next(iter(heads.values())).backbone
        self.task_objectives = {}
        self.built = True  # the heads are functional models, built on construction

    def call(self, inputs, training=None):
        unknown = sorted(set(inputs) - set(self.heads))
        if unknown:
            raise ValueError(f"No head for task(s) {unknown}; heads: {sorted(self.heads)}")
        return {name: self.heads[name](features, training=training)
                for name, features in inputs.items()}

    def compile(self, optimizer="adam", tasks=None, **kwargs):
        """`tasks`: `{name: {"loss": Loss, "weight": float (default 1), "metrics": [...],
        "weighted_metrics": [...] (updated with the sample weight)}}`. Metric names are
        prefixed with the task's name; each task also gets a `<task>_loss` mean."""
        super().compile(optimizer=optimizer, **kwargs)
        objectives = {}
        for name, spec in (tasks or {}).items():
            if name not in self.heads:
                raise ValueError(f"compile(tasks=...) names {name!r}, which has no head")
            objectives[name] = dict(
                loss=spec["loss"], weight=float(spec.get("weight", 1.0)),
                tracker=keras.metrics.Mean(name=f"{name}_loss"),
                metrics=[_renamed(m, name) for m in spec.get("metrics", [])],
                weighted_metrics=[_renamed(m, name) for m in spec.get("weighted_metrics", [])])
        self.task_objectives = objectives
        # Tracked as attributes, so that fit/evaluate report and reset them.
        self.task_metrics = [m for o in objectives.values()
                             for m in [o["tracker"], *o["metrics"], *o["weighted_metrics"]]]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for name, predictions in y_pred.items():
            objective = self.task_objectives[name]
            labels, weights = _targets(y[name])
            loss = objective["loss"](labels, predictions, sample_weight=weights)
            objective["tracker"].update_state(loss)
            total = total + objective["weight"] * ops.cast(loss, "float32")
        losses = self.losses
        if losses:
            total = total + ops.sum(ops.stack([ops.cast(v, "float32") for v in losses]))
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        for name, predictions in y_pred.items():
            objective = self.task_objectives[name]
            labels, weights = _targets(y[name])
            for metric in objective["metrics"]:
                metric.update_state(labels, predictions)
            for metric in objective["weighted_metrics"]:
                metric.update_state(labels, predictions, sample_weight=weights)
        return self.get_metrics_result()

    def get_config(self):
        heads = {}
        for name, head in self.heads.items():
            config = head.get_config()
            config.pop("backbone")
            heads[name] = {"class_name": keras.saving.get_registered_name(type(head)),
                           "config": config}
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.layers.serialize(self.backbone), "heads": heads}

    @classmethod
    def from_config(cls, config):
        # The head classes are registered: importing this module imports `kerlm.heads`.
        backbone = keras.layers.deserialize(config["backbone"])
        heads = {name: keras.saving.get_registered_object(spec["class_name"])(
                     backbone=backbone, **spec["config"])
                 for name, spec in config["heads"].items()}
        return cls(heads, name=config["name"], trainable=config.get("trainable", True))


def _targets(target):
    if isinstance(target, dict):
        return target["labels"], target.get("sample_weight")
    return target, None


def _renamed(metric, task):
    """A fresh copy of `metric` named `<task>_<its name>`."""
    config = metric.get_config()
    config["name"] = f"{task}_{config['name']}"
    return type(metric).from_config(config)
