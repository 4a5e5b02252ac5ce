"""Text-to-text tasks (translation, summarization): raw text in, generated text out."""

import dataclasses

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kerlm import baselines, heads, tokenizers
from kerlm.callbacks import GenerationExamples
from kerlm.config import ConfigError, TaskConfig, field
from kerlm.data import embedded
from kerlm.data.batching import batch_features, bucketed_batches, sequence_ids
from kerlm.heads.losses import SmoothedSparseCrossentropy
from kerlm.metrics import generation_report
from kerlm.preprocessing import Seq2SeqPreprocessor
from kerlm.tasks import decoding, registry
from kerlm.tasks.base import Task
from kerlm.tokenizers.sentence_piece import END_ID, START_ID

EXAMPLES = 4  # source / reference / output triples shown in reports and TensorBoard


@dataclasses.dataclass
class Seq2SeqConfig(TaskConfig, decoding.DecodingConfig):
    target_sequence_length: int = field(64, "Seq2seq tasks: maximum target tokens in "
                                            "training, and the default decoding length.")
    copy_attention: bool = field(False, "Seq2seq tasks: a pointer-generator output layer that "
                                        "can copy source tokens (names, numbers, rare words) "
                                        "as well as generate from the vocabulary.")
    label_smoothing: float = field(0.0, "Seq2seq tasks: label smoothing of the token "
                                        "cross-entropy.")


@dataclasses.dataclass
class TranslationConfig(Seq2SeqConfig):
    source_lang: str = field("en", "Translation: source language code, also the source "
                                   "field's name in the data files (JSONL key or column).")
    target_lang: str = field("es", "Translation: target language code and field name. "
                                   "Embedded data: en<->es (Bible), en<->de (Debian).")


@dataclasses.dataclass
class SummarizationConfig(Seq2SeqConfig):
    document_field: str = field("document", "Summarization: name of the document field.")
    summary_field: str = field("summary", "Summarization: name of the summary field.")


class Seq2SeqTask(Task):
    """Shared machinery: a SentencePiece vocabulary for both sides, teacher-forced training
    on an encoder-decoder backbone with label smoothing, length-bucketed batches, cached
    decoding (any sampler of `kerlm.generation`), and a text → text SavedModel."""

    capability = "seq2seq"

    def __init__(self, config):
        super().__init__(config)
        self.preprocessor = None

    # Data ---------------------------------------------------------------------------------
    def texts(self, records):
        """`(sources, targets)` lists of strings."""
        source, target = self.fields()
        return ([r.fields[source] for r in records], [r.fields[target] for r in records])

    def vocabulary_texts(self, records):
        """Sources and targets: one vocabulary for both sides."""
        sources, targets = self.texts(records)
        return sources + targets

    # Assets -------------------------------------------------------------------------------
    def prepare(self, train_records, model_dir):
        preset = self.config.model.preset
        tokenizer = self.vocabulary(lambda: tokenizers.SentencePieceTokenizer.learn(
            self.vocabulary_texts(train_records), self.config.model.vocabulary_size))
        if not tokenizer.reversible:
            raise ConfigError(f"--model={preset} has a {type(tokenizer).__name__}, which "
                              f"does not detokenize exactly; --task={self.name} generates "
                              "text with a SentencePiece vocabulary (give a kerlm seq2seq or "
                              "multi-task run's backbone/, or a preset)")
        tokenizer.save(model_dir)
        self._make_preprocessor(tokenizer)

    def restore(self, model_dir):
        self._make_preprocessor(tokenizers.load(model_dir))

    def _make_preprocessor(self, tokenizer):
        self.preprocessor = Seq2SeqPreprocessor(tokenizer, self.options.sequence_length,
                                                self.options.target_sequence_length)

    # Features -----------------------------------------------------------------------------
    def _token_ids(self, texts, target):
        """Lists of token ids (special tokens included) for each text, tokenized in chunks."""
        return sequence_ids(self.preprocessor, texts, target)

    def _encoded(self, records):
        """`(source_ids, label_ids)`: per example, `tokens </s>` for both sides."""
        sources, targets = self.texts(records)
        return self._token_ids(sources, False), self._token_ids(targets, True)

    def dataset(self, records, training, batch_size=None):
        """`(features, labels, label mask)` batches of similar lengths (no padding to a fixed
        length). Training batches are re-bucketed and reshuffled every epoch."""
        source_ids, label_ids = self._encoded(records)
        lengths = [len(s) + len(t) for s, t in zip(source_ids, label_ids)]
        batch_size = batch_size or self.config.train.batch_size
        rng = np.random.default_rng(self.config.train.seed)

        def batches():
            if training:
                order = bucketed_batches(lengths, batch_size, rng)
            else:  # fixed, sorted by length: evaluation is fast and deterministic
                by_length = np.argsort(lengths, kind="stable")
                order = [by_length[i:i + batch_size] for i in range(0, len(lengths), batch_size)]
            for indices in order:
                yield batch_features(source_ids, label_ids, indices)

        matrix = tf.TensorSpec([None, None], tf.int32)
        spec = ({name: matrix for name in ("encoder_token_ids", "encoder_padding_mask",
                                           "decoder_token_ids", "decoder_padding_mask")},
                matrix, matrix)
        ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            -(-len(records) // batch_size)))
        return ds.prefetch(4)

    # Model --------------------------------------------------------------------------------
    def new_model(self):
        """The seq2seq LM on `--model` (a preset with positions for the decoding length, or
        a directory with its SentencePiece vocabulary)."""
        return self.build_model(self.backbone(positions=self.max_decode_length()))

    def build_model(self, backbone):
        """The seq2seq LM on `backbone` (`self.backbone()`, or a multi-task model's)."""
        self.check_backbone(backbone.capabilities, f"--model={self.config.model.preset}")
        return heads.Seq2SeqLM(backbone, copy_attention=self.options.copy_attention)

    def loss(self):
        return SmoothedSparseCrossentropy(self.options.label_smoothing)

    def metrics(self):
        return [keras_hub.metrics.Perplexity(from_logits=True, mask_token_id=0,
                                             name="perplexity")]

    def weighted_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    # Decoding -----------------------------------------------------------------------------
    def max_decode_length(self):
        """Most tokens a target may have, the start token included."""
        options = self.options
        return (options.max_decode_length or options.target_sequence_length - 1) + 1

    def sampler(self, name=None):
        return decoding.sampler(self.options, name)

    def decode_graph(self, model, text, sampler, max_lengths=None):
        """Strings → generated strings, in TensorFlow ops (what the SavedModel runs).

        `max_lengths` (int32 `[batch]`, optional) caps each output's generated tokens.
        """
        features = self.preprocessor(text)
        batch_size = tf.shape(text)[0]
        limit = self.max_decode_length()
        if max_lengths is not None:
            max_lengths = tf.clip_by_value(tf.cast(max_lengths, tf.int32), 1, limit - 1)
            limit = tf.reduce_max(max_lengths) + 1
        prompt = tf.pad(tf.fill([batch_size, 1], START_ID), [[0, 0], [0, limit - 1]])
        prompt_mask = tf.pad(tf.ones([batch_size, 1], tf.bool), [[0, 0], [0, limit - 1]])
        token_ids, mask = model.generate_ids(prompt, prompt_mask, sampler, (END_ID,),
                                             inputs=features, prompt_length=1)
        if max_lengths is not None:
            mask = tf.logical_and(mask, tf.range(limit)[None] <= max_lengths[:, None])
        return self.preprocessor.detokenize(tf.where(mask, token_ids, 0))

    def generate(self, model, texts, batch_size=None):
        """Generated strings for `texts`, through the graph the SavedModel exports. Texts
        are decoded in batches of similar length; results come back in input order."""
        serve = self.serving_default(model)
        batch_size = batch_size or self.config.train.batch_size
        order = np.argsort([len(t) for t in texts], kind="stable")
        outputs = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            indices = order[start:start + batch_size]
            result = serve(tf.constant([texts[i] for i in indices]))["text"].numpy()
            for i, text in zip(indices, result):
                outputs[i] = text.decode("utf-8")
        return outputs

    # Evaluation and prediction ------------------------------------------------------------
    def metric_names(self):
        """Which generation metrics the task reports ("bleu" and/or "rouge")."""
        raise NotImplementedError

    def teacher_forced(self, model, records):
        """Token accuracy and perplexity of the references under teacher forcing."""
        nll = correct = count = 0.0
        for features, labels, mask in self.dataset(records, training=False):
            logits = model(features, training=False)
            log_probs = tf.nn.log_softmax(logits, axis=-1)
            picked = tf.gather(log_probs, labels, batch_dims=2)
            mask = tf.cast(mask, tf.float32)
            nll -= float(tf.reduce_sum(picked * mask))
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                           tf.float32)
            correct += float(tf.reduce_sum(hits * mask))
            count += float(tf.reduce_sum(mask))
        return {"token_accuracy": correct / count, "perplexity": float(np.exp(nll / count))}

    def evaluate(self, model, records):
        sources, references = self.texts(records)
        outputs = self.generate(model, sources)
        report = generation_report(outputs, references, metrics=self.metric_names())
        report.update(self.teacher_forced(model, records))
        report["decoding"] = self.decoding_description()
        report["examples"] = [{"source": s, "reference": r, "output": o}
                              for s, r, o in zip(sources, references, outputs)][:EXAMPLES]
        return report

    def decoding_description(self):
        return decoding.describe(self.options, self.max_decode_length() - 1)

    def callbacks(self, log_dir, head=None):
        return [GenerationExamples(self, self.read("dev")[:EXAMPLES], log_dir, head)]

    def headline(self, report):
        """One line of the report's main figures."""
        keys = [k for k in ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "token_accuracy",
                            "perplexity") if k in report]
        return "  ".join(f"{k} {report[k]:.2f}" for k in keys)

    def predict(self, model, inputs):
        """`[{"output": str}]` for a list of source texts."""
        return [{"output": text} for text in self.generate(model, list(inputs))]

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        """`serving_default` (text → text with the configured decoding), `greedy` and
        `beam_search` (text and a per-example `max_length` → text)."""
        default = self.sampler()
        greedy = self.sampler("greedy")
        beam = self.sampler("beam")
        text_spec = tf.TensorSpec([None], tf.string, name="text")
        length_spec = tf.TensorSpec([None], tf.int32, name="max_length")

        @tf.function(input_signature=[text_spec])
        def serve(text):
            return {"text": self.decode_graph(model, text, default)}

        @tf.function(input_signature=[text_spec, length_spec])
        def serve_greedy(text, max_length):
            return {"text": self.decode_graph(model, text, greedy, max_length)}

        @tf.function(input_signature=[text_spec, length_spec])
        def serve_beam(text, max_length):
            return {"text": self.decode_graph(model, text, beam, max_length)}

        return ({"serving_default": serve, "greedy": serve_greedy, "beam_search": serve_beam},
                [self.preprocessor, decoding.tracked((default, greedy, beam))])


@registry.register("translation", TranslationConfig)
class TranslationTask(Seq2SeqTask):
    """Translate `--source_lang` text into `--target_lang`; the data files' fields are
    named by language code (`{"en": ..., "es": ...}`). Without files it trains on the
    embedded Bible verses (en↔es) or Debian package descriptions (en↔de)."""

    def fields(self):
        return self.options.source_lang, self.options.target_lang

    def embedded(self, split):
        try:
            return embedded.translation_pairs(*self.fields(), split)
        except ValueError as e:
            raise ConfigError(f"{e} (or give --train_data/--eval_data)") from e

    def metric_names(self):
        return ("bleu",)

    def baseline_reports(self, train_records, records):
        """Copy-source, and word-by-word with a Dice dictionary from the training pairs."""
        sources, references = self.texts(records)
        word_by_word = baselines.WordByWord().fit(*self.texts(train_records))
        return {name: generation_report(outputs, references, metrics=("bleu",))
                for name, outputs in (("copy_source_baseline", sources),
                                      ("word_by_word_baseline",
                                       word_by_word.translate(sources)))}


@registry.register("summarization", SummarizationConfig)
class SummarizationTask(Seq2SeqTask):
    """Summarize `--document_field` into `--summary_field`. Without files it trains on the
    embedded Debian package descriptions → one-line synopses."""

    def fields(self):
        return self.options.document_field, self.options.summary_field

    def embedded(self, split):
        records = embedded.summarization(split)
        if self.fields() != ("document", "summary"):
            raise ConfigError("--document_field/--summary_field name fields of your own files;"
                              " give --train_data and --eval_data with them")
        return records

    def metric_names(self):
        return ("rouge",)

    def baseline_reports(self, train_records, records):
        """Lead-N words of the document, N chosen by ROUGE-L on the dev split."""
        n, _ = baselines.choose_lead_n(*self.texts(self.read("dev")))
        sources, references = self.texts(records)
        report = generation_report(baselines.lead_words(sources, n), references,
                                   metrics=("rouge",))
        return {f"lead_{n}_baseline": report}
