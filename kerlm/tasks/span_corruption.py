"""T5 span-corruption pretraining of an encoder-decoder on plain text; a span-filling
SavedModel.

    python apps/train.py --flagfile=configs/pretrain_span_corruption.flags --model_dir=runs/t5
    python apps/train.py --flagfile=configs/translation_en_es.flags --model=runs/t5/backbone ...

Each packed block of text (SentencePiece, `</s>` between documents) has `--noise_density`
of its tokens dropped in spans of mean length `--mean_noise_span_length`; the encoder
reads the rest with one sentinel (`<extra_id_0>`, `<extra_id_1>`, ...) per span, and the
decoder writes `<extra_id_0> span 0 <extra_id_1> span 1 ... </s>`. Block lengths follow
T5's arithmetic, so encoder inputs are exactly `--sequence_length` tokens. The vocabulary
reserves `--extra_ids` sentinel ids after its pieces.
"""

import dataclasses

import keras
import tensorflow as tf

from kerlm import heads, tokenizers
from kerlm.config import ConfigError, field
from kerlm.heads.losses import SmoothedSparseCrossentropy
from kerlm.preprocessing import markers, packing, pretraining
from kerlm.tasks import decoding, registry
from kerlm.tasks.pretraining import CorpusConfig, PretrainingTask

SENTINEL = r"<extra_id_\d+>"


@dataclasses.dataclass
class SpanCorruptionConfig(CorpusConfig, decoding.DecodingConfig):
    noise_density: float = field(0.15, "Fraction of a block's tokens that are corrupted.")
    mean_noise_span_length: float = field(3.0, "Mean length of a corrupted span.")
    extra_ids: int = field(32, "Sentinel ids the learned SentencePiece vocabulary reserves "
                               "(a block needs one per span).")


@registry.register("span_corruption", SpanCorruptionConfig)
class SpanCorruptionTask(PretrainingTask):
    """T5's span-corruption objective on an encoder-decoder (see the module docstring)."""

    # Its encoder and decoder blocks have fixed lengths, yet XLA gave x0.95 on CPU
    # (bench/distribute_speed.py): not worth the compile time.
    jit_compile = False
    capability = "seq2seq"

    def lengths(self):
        """`(raw tokens per block, target tokens)` for `--sequence_length` inputs."""
        options = self.options
        return pretraining.span_corruption_lengths(
            options.sequence_length, options.noise_density, options.mean_noise_span_length)

    def spans(self):
        raw, _ = self.lengths()
        noise = max(1, round(raw * self.options.noise_density))
        return max(1, round(noise / self.options.mean_noise_span_length))

    # Assets -------------------------------------------------------------------------------
    def learn_tokenizer(self, texts):
        return tokenizers.SentencePieceTokenizer.learn(
            texts, self.config.model.vocabulary_size, extra_ids=self.options.extra_ids)

    def check_tokenizer(self, tokenizer):
        needed = self.spans()
        if not tokenizer.reversible or len(tokenizer.sentinel_ids) < needed:
            raise ConfigError(
                f"--task=span_corruption needs a SentencePiece vocabulary with at least "
                f"{needed} sentinel ids (one per span of a --sequence_length="
                f"{self.options.sequence_length} block); "
                f"--model={self.config.model.preset} has a {type(tokenizer).__name__} with "
                f"{len(tokenizer.sentinel_ids)} (learn one: give a preset, --extra_ids)")

    # Features -----------------------------------------------------------------------------
    def examples(self, tokens, training, batch_size):
        raw, _ = self.lengths()
        tokenizer, options = self.tokenizer, self.options
        sentinels = tokenizer.sentinel_ids[:self.spans()]
        seed = self.config.train.seed

        def corrupt(index, block):
            inputs, targets = pretraining.span_corrupt(
                tf.cast(block, tf.int32), sentinel_ids=sentinels, end_id=tokenizer.end_id,
                noise_density=options.noise_density,
                mean_noise_span_length=options.mean_noise_span_length,
                seed=tf.stack([tf.constant(seed, tf.int64), index]))
            decoder = tf.concat([[tokenizer.start_id], targets[:-1]], 0)
            features = {"encoder_token_ids": inputs,
                        "encoder_padding_mask": tf.ones_like(inputs),
                        "decoder_token_ids": decoder,
                        "decoder_padding_mask": tf.ones_like(decoder)}
            return features, targets, tf.ones(tf.shape(targets), tf.float32)

        ds = packing.blocks(tokens, raw).enumerate().map(
            corrupt, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    def new_model(self):
        return self.build_model(self.backbone(positions=max(self.lengths()[1] + 1,
                                                            self.options.sequence_length)))

    def build_model(self, backbone):
        return heads.Seq2SeqLM(backbone)

    def loss(self):
        return SmoothedSparseCrossentropy(0.0)

    def weighted_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    def headline(self, report):
        return (f"target token accuracy {report['token_accuracy']:.4f}  loss "
                f"{report['loss']:.4f}  perplexity {report['perplexity']:.2f}")

    # Prediction and export ----------------------------------------------------------------
    def fill_graph(self, model, text, sampler):
        """Text with `<extra_id_N>` markers → the text with each marker replaced by the
        span the model generates for it, in TensorFlow ops."""
        tokenizer, length = self.tokenizer, self.options.sequence_length
        sentinels = list(tokenizer.sentinel_ids)
        ids = markers.marked_ids(tokenizer, text, SENTINEL, sentinels, regex=True)
        ids = tf.concat([ids[:, :length - 1], tf.fill([ids.nrows(), 1], tokenizer.end_id)], 1)
        features = {"encoder_token_ids": ids.to_tensor(),
                    "encoder_padding_mask": tf.cast(ids.to_tensor() != 0, tf.int32)}
        limit = self.options.max_decode_length or self.lengths()[1]
        batch = tf.shape(text)[0]
        prompt = tf.pad(tf.fill([batch, 1], tokenizer.start_id), [[0, 0], [0, limit]])
        prompt_mask = tf.pad(tf.ones([batch, 1], tf.bool), [[0, 0], [0, limit]])
        generated, keep = model.generate_ids(prompt, prompt_mask, sampler,
                                             (tokenizer.end_id,), inputs=features,
                                             prompt_length=1)
        generated = tf.where(keep, generated, 0)[:, 1:]
        # The generated spans: tokens after the i-th sentinel belong to span i.
        is_sentinel = generated >= sentinels[0]
        span = tf.cumsum(tf.cast(is_sentinel, tf.int32), axis=1) - 1
        word = tf.logical_and(span >= 0, tf.logical_not(is_sentinel))
        parts = tf.strings.split(tf.strings.regex_replace(text, SENTINEL, "\x1f"), "\x1f")
        count = tf.cast(parts.row_lengths(), tf.int32) - 1  # markers per text
        spans = tf.ragged.boolean_mask(generated, word)
        span_of = tf.ragged.boolean_mask(span, word)
        # Each text's span tokens grouped by span (they come in span order):
        # [batch × (sentinels + 1), tokens], detokenized, then one fill per marker.
        row = tf.repeat(tf.range(batch), tf.cast(spans.row_lengths(), tf.int32))
        key = row * (len(sentinels) + 1) + span_of.flat_values
        grouped = tf.RaggedTensor.from_value_rowids(
            spans.flat_values, key, nrows=batch * (len(sentinels) + 1))
        texts = tf.reshape(tokenizer.detokenize(grouped), [batch, len(sentinels) + 1])
        fills = tf.RaggedTensor.from_tensor(texts, lengths=count)
        before = parts[:, :-1]
        pieces = tf.RaggedTensor.from_row_lengths(
            tf.strings.join([before.flat_values, fills.flat_values]),
            tf.cast(count, tf.int64))
        last = tf.gather(parts.flat_values, parts.row_limits() - 1)
        return tf.strings.join([tf.strings.reduce_join(pieces, axis=-1), last])

    def predict(self, model, inputs):
        """`[{"output": the text with its <extra_id_N> spans filled}]`."""
        result = self.serving_default(model)(tf.constant(list(inputs)))["text"].numpy()
        return [{"output": text.decode("utf-8")} for text in result]

    def serving_functions(self, model):
        """`serving_default`: `text` with `<extra_id_N>` markers → `text` with the spans
        filled (the configured decoding)."""
        sampler = decoding.sampler(self.options)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            return {"text": self.fill_graph(model, text, sampler)}

        return {"serving_default": serve}, [self.tokenizer, decoding.tracked([sampler])]

    def warmup_inputs(self):
        return {"serving_default": {"text": ["The state of the <extra_id_0> is strong."]}}
