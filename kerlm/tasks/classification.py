"""Text classification (sentiment by default): raw text in, label and probabilities out."""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from kerlm import baselines, heads, preprocessing, tokenizers
from kerlm.config import ConfigError, TaskConfig, field
from kerlm.data import uci_sentiment
from kerlm.data.classification import LabelVocabulary, texts_and_labels
from kerlm.metrics import classification_report
from kerlm.tasks import registry
from kerlm.tasks.base import Task

LABELS_FILE = "labels.json"


@dataclasses.dataclass
class ClassificationConfig(TaskConfig):
    text_field: str = field("text", "Name of the text field (JSONL key or CSV/TSV column).")
    label_field: str = field("label", "Name of the label field.")
    pooling: str = field("mean", "How the classifier pools the sequence: mean over real "
                                 "tokens, first token (encoders), last real token (the "
                                 "natural choice for decoder-only models).",
                         choices=["mean", "first", "last"])


@registry.register("classification", ClassificationConfig, aliases=("sentiment",))
class ClassificationTask(Task):
    """Classify texts into the labels found in the training data.

    With no data files configured it trains on the embedded UCI sentiment sentences
    (positive / negative). Users' own JSONL/CSV/TSV files are read with `--text_field`
    and `--label_field`. `--task=sentiment` is an alias; exports go to
    `EXPORT_DIR/<--task or --export_name>/`.
    """

    eager_predict_limit = 64

    def __init__(self, config):
        super().__init__(config)
        self.preprocessor = None
        self.labels = None

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        """The (text, label) field names of the records this task reads."""
        if not self.config.data.train_data:  # the embedded sentences
            return "text", "label"
        return self.options.text_field, self.options.label_field

    def embedded(self, split):
        return uci_sentiment.load(split)

    def read_file(self, path):
        """A data file's records; once the labels are known (dev and test files), a record
        whose label training never saw is a one-line error naming its file and line, or
        with `--skip_bad_rows` left out and counted like other bad rows."""
        records = super().read_file(path)
        if self.labels is None:
            return records
        return self.labels.known(records, self.fields()[1],
                                 skip_bad_rows=self.config.data.skip_bad_rows)

    def texts_and_label_ids(self, records):
        text_field, label_field = self.fields()
        texts, _ = texts_and_labels(records, text_field, label_field)
        return texts, self.labels.encode(records, label_field)

    # Assets -------------------------------------------------------------------------------
    def vocabulary_texts(self, records):
        return texts_and_labels(records, *self.fields())[0]

    def check_backbone(self, capabilities, what):
        """Also refuse `--pooling=first` on a causal (decoder-only) backbone."""
        super().check_backbone(capabilities, what)
        if self.options.pooling == "first" and "encode" not in capabilities:
            raise ConfigError(f"--pooling=first is meaningless for {what}, a decoder-only "
                              "(causal) backbone; use --pooling=last or --pooling=mean")

    def prepare(self, train_records, model_dir):
        model_config = self.config.model
        tokenizer = self.vocabulary(lambda: tokenizers.WordPieceTokenizer.learn(
            self.vocabulary_texts(train_records), model_config.vocabulary_size))
        self.labels = LabelVocabulary.from_records(train_records, self.fields()[1])
        os.makedirs(model_dir, exist_ok=True)
        self.labels.save(os.path.join(model_dir, LABELS_FILE))
        tokenizer.save(model_dir)
        self._make_preprocessor(tokenizer)

    def assets(self):
        return {"labels": self.labels.labels}

    def restore(self, model_dir):
        self.labels = LabelVocabulary.load(os.path.join(model_dir, LABELS_FILE))
        self._make_preprocessor(tokenizers.load(model_dir))

    def _make_preprocessor(self, tokenizer):
        sequence_length = self.options.sequence_length
        self.preprocessor = preprocessing.TextPreprocessor(tokenizer, sequence_length)

    # Features -----------------------------------------------------------------------------
    def dataset(self, records, training, batch_size=None):
        texts, label_ids = self.texts_and_label_ids(records)
        ds = tf.data.Dataset.zip(preprocessing.tokenized(self.preprocessor, texts),
                                 tf.data.Dataset.from_tensor_slices(np.array(label_ids, "int32")))
        ds = ds.cache()
        if training:
            ds = ds.shuffle(len(texts), seed=self.config.train.seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or self.config.train.batch_size)
        ds = ds.map(lambda x, y: (preprocessing.trim_batch(x), y))
        return ds.prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    def build_model(self, backbone):
        """The classifier on `backbone` (`self.backbone(...)`, or a multi-task model's)."""
        try:
            return heads.Classifier(backbone, num_classes=len(self.labels),
                                    pooling=self.options.pooling,
                                    dropout=self.config.model.dropout)
        except ValueError as e:  # e.g. --pooling=first on a decoder-only backbone
            raise ConfigError(f"--model={self.config.model.preset} "
                              f"--pooling={self.options.pooling}: {e}") from e

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # Evaluation and prediction ------------------------------------------------------------
    def _probabilities(self, model, texts):
        """Class probabilities through the same traced function the SavedModel exports."""
        serve = self.serving_default(model)
        size = self.config.train.batch_size
        return np.concatenate([serve(tf.constant(texts[i:i + size]))["probabilities"].numpy()
                               for i in range(0, len(texts), size)])

    def evaluate(self, model, records):
        texts, label_ids = self.texts_and_label_ids(records)
        probabilities = self._probabilities(model, texts)
        report = classification_report(label_ids, probabilities.argmax(-1), self.labels.labels)
        picked = probabilities[np.arange(len(label_ids)), label_ids]
        report["loss"] = float(-np.mean(np.log(np.maximum(picked, 1e-12))))
        return report

    def baseline_reports(self, train_records, records):
        """TF-IDF logistic regression, trained on the training texts and labels."""
        train_texts, train_label_ids = self.texts_and_label_ids(train_records)
        texts, label_ids = self.texts_and_label_ids(records)
        predicted = baselines.bag_of_words(train_texts, train_label_ids, texts,
                                           len(self.labels), seed=self.config.train.seed)
        return {"bag_of_words_baseline": classification_report(label_ids, predicted,
                                                               self.labels.labels)}

    def headline(self, report):
        return f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}"

    def predict(self, model, inputs):
        """`[{"label": str, "probabilities": {label: float}}]` for a list of texts."""
        probabilities = self._probabilities(model, inputs)
        return [{"label": self.labels.labels[int(p.argmax())],
                 "probabilities": dict(zip(self.labels.labels, map(float, p)))}
                for p in probabilities]

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        label_names = tf.constant(self.labels.labels)
        preprocessor = self.preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            logits = model(preprocessing.trim_batch(preprocessor(text)), training=False)
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            return {"label": tf.gather(label_names, label_id), "label_id": label_id,
                    "probabilities": probabilities}

        return {"serving_default": serve}, [preprocessor]
