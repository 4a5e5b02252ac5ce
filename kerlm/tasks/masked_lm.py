"""Masked-LM pretraining (BERT) of an encoder on plain text; a fill-mask SavedModel.

    python apps/train.py --flagfile=configs/pretrain_masked_lm.flags --model_dir=runs/mlm
    python apps/train.py --flagfile=configs/sentiment.flags --model=runs/mlm/backbone ...

Blocks of `--sequence_length` tokens (`[CLS]` + packed text + `[SEP]`, documents joined
with `[SEP]`) have `--mask_rate` of their pieces selected (at most `--max_predictions`):
80 % become `[MASK]`, 10 % a random piece, 10 % stay; the head predicts the originals.
`--whole_word_masking` selects whole words (a piece and its `##` continuations). The
backbone (`MODEL_DIR/backbone/`, with its WordPiece vocabulary) is what fine-tuning starts
from: classification and QA take it with `--model=MODEL_DIR/backbone`.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kerlm import heads, tokenizers
from kerlm.config import ConfigError, field
from kerlm.heads.losses import SmoothedSparseCrossentropy
from kerlm.preprocessing import markers, packing, pretraining
from kerlm.tasks import registry
from kerlm.tasks.pretraining import CorpusConfig, PretrainingTask

MASK = "[MASK]"


@dataclasses.dataclass
class MaskedLMConfig(CorpusConfig):
    mask_rate: float = field(0.15, "Fraction of the pieces of a block selected for "
                                   "prediction (BERT: 0.15).")
    max_predictions: int = field(0, "Most selected pieces per block; 0: 16 % of "
                                    "--sequence_length (BERT's 20 for 128).")
    whole_word_masking: bool = field(False, "Select whole words: a piece and the "
                                            "continuation pieces after it together.")


@registry.register("masked_lm", MaskedLMConfig)
class MaskedLMTask(PretrainingTask):
    """BERT's masked-LM objective on an encoding backbone (see the module docstring)."""

    capability = "encode"

    # Assets -------------------------------------------------------------------------------
    def learn_tokenizer(self, texts):
        return tokenizers.WordPieceTokenizer.learn(texts, self.config.model.vocabulary_size)

    def check_tokenizer(self, tokenizer):
        if tokenizer.mask_id is None or tokenizer.start_id is None:
            raise ConfigError(f"--model={self.config.model.preset}: its vocabulary has no "
                              "mask token, which --task=masked_lm needs (give a WordPiece "
                              "vocabulary with [MASK], or a preset)")

    # Features -----------------------------------------------------------------------------
    def max_predictions(self):
        return self.options.max_predictions or max(1, round(0.16 * self.options.sequence_length))

    def continuation(self):
        """Per id: is it a piece continuing a word (WordPiece `##x`; a SentencePiece piece
        without the `▁` word start)? For whole-word masking."""
        vocabulary = self.tokenizer.vocabulary
        special = set(self.tokenizer.special_ids)
        if any(token.startswith("##") for token in vocabulary):
            flags = [token.startswith("##") for token in vocabulary]
        else:
            flags = [not token.startswith("\u2581") and i not in special
                     for i, token in enumerate(vocabulary)]
        return np.array(flags, bool)

    def examples(self, tokens, training, batch_size):
        tokenizer, length = self.tokenizer, self.options.sequence_length
        start = tf.constant([tokenizer.start_id], tf.int32)
        end = tf.constant([tokenizer.end_id], tf.int32)
        ds = packing.blocks(tokens, length - 2).map(
            lambda block: tf.concat([start, tf.cast(block, tf.int32), end], 0))
        ds = ds.batch(batch_size, drop_remainder=True)
        options = self.options
        continuation = self.continuation() if options.whole_word_masking else None

        def mask(ids):
            masked = pretraining.mask_tokens(
                ids, vocabulary_size=tokenizer.vocabulary_size, mask_id=tokenizer.mask_id,
                unselectable_ids=tokenizer.special_ids, rate=options.mask_rate,
                max_predictions=self.max_predictions(), continuation=continuation)
            features = {"token_ids": masked["token_ids"],
                        "padding_mask": tf.ones_like(ids),
                        "mask_positions": masked["mask_positions"]}
            return features, masked["mask_ids"], masked["mask_weights"]

        return ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def num_tokens(self, features):
        return tf.size(features["token_ids"])  # packed: every position is text

    # Model --------------------------------------------------------------------------------
    def build_model(self, backbone):
        return heads.MaskedLM(backbone)

    def loss(self):
        return SmoothedSparseCrossentropy(0.0)  # mean over the real predictions

    def weighted_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="masked_accuracy")]

    def headline(self, report):
        return (f"masked-token accuracy {report['masked_accuracy']:.4f}  loss "
                f"{report['loss']:.4f}  perplexity {report['perplexity']:.2f}")

    # Prediction and export ----------------------------------------------------------------
    def predict(self, model, inputs):
        """`[{"output": text with each [MASK] filled, "tokens": [...], "scores": [...]}]`."""
        result = self.serving_default(model)(tf.constant(list(inputs)))
        out = []
        for text, tokens, scores, count in zip(
                result["text"].numpy(), result["tokens"].numpy(), result["scores"].numpy(),
                result["num_masks"].numpy()):
            out.append({"output": text.decode("utf-8"),
                        "tokens": [t.decode("utf-8") for t in tokens[:count]],
                        "scores": [round(float(s), 4) for s in scores[:count]]})
        return out

    def serving_functions(self, model):
        """`serving_default`: `text` with `[MASK]` markers → the most likely piece for each
        (`tokens`, `scores`: its probability, `num_masks`) and the filled `text`."""
        tokenizer, length = self.tokenizer, self.options.sequence_length
        vocabulary = tf.constant(tokenizer.vocabulary)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            ids = markers.marked_ids(tokenizer, text, MASK, [tokenizer.mask_id])[:, :length - 2]
            rows = ids.nrows()
            ids = tf.concat([tf.fill([rows, 1], tokenizer.start_id), ids,
                             tf.fill([rows, 1], tokenizer.end_id)], axis=1)
            token_ids = ids.to_tensor()
            is_mask = tf.equal(token_ids, tokenizer.mask_id)
            positions = tf.ragged.boolean_mask(
                tf.broadcast_to(tf.range(tf.shape(token_ids)[1]), tf.shape(token_ids)),
                is_mask)
            logits = model({"token_ids": token_ids,
                            "padding_mask": tf.cast(token_ids != 0, tf.int32),
                            "mask_positions": positions.to_tensor()}, training=False)
            probabilities = tf.nn.softmax(logits, axis=-1)
            best = tf.argmax(probabilities, -1, output_type=tf.int32)
            count = positions.row_lengths()
            valid = tf.sequence_mask(count, tf.shape(best)[1])
            scores = tf.where(valid, tf.reduce_max(probabilities, -1), 0.0)
            filled = tf.tensor_scatter_nd_update(
                token_ids, tf.where(is_mask), tf.boolean_mask(best, valid))
            return {"tokens": tf.where(valid, tf.gather(vocabulary, best), ""),
                    "scores": scores, "num_masks": tf.cast(count, tf.int32),
                    "text": tokenizer.detokenize(filled)}

        return {"serving_default": serve}, [tokenizer]

    def warmup_inputs(self):
        return {"serving_default": {"text": [f"The {MASK} of the Union is strong."]}}
