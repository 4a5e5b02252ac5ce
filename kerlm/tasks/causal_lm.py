"""Causal-LM pretraining (GPT) on plain text, and text generation as a task.

    python apps/train.py --flagfile=configs/pretrain_causal_lm.flags --model_dir=runs/clm
    python apps/predict.py --model_dir=runs/clm --text="The state of the Union" \\
        --sampler=top_p --temperature=0.8 --max_decode_length=40 --stop=.

Documents (SentencePiece, `</s>` after each) are packed into blocks; the decoder learns the
next token through its tied output embedding. Evaluation scores every token of the split
once and reports perplexity per token and per word (words = whitespace-separated words
plus one end of text per document, so models with different vocabularies compare) beside
a Kneser-Ney word bigram trained on the same training text. The export
(`saved_models/causal_lm/<v>/`) continues prompts in the graph (`serving_default`,
`greedy`, `beam_search`, `top_k`, `top_p`, the last four with a per-prompt `max_length`)
and scores texts (`score`: the natural-log likelihood of the text's tokens and its end
token, and how many tokens that is), so perplexity needs nothing but the SavedModel.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from kerlm import baselines, heads, tokenizers
from kerlm.config import ConfigError, field
from kerlm.heads.losses import SmoothedSparseCrossentropy
from kerlm.preprocessing import packing
from kerlm.tasks import decoding, registry
from kerlm.tasks.pretraining import CorpusConfig, PretrainingTask

STOP_SEPARATOR = "|"
DEFAULT_NEW_TOKENS = 64


@dataclasses.dataclass
class CausalLMConfig(CorpusConfig, decoding.DecodingConfig):
    stop_strings: str = field("", "Text generation: cut each continuation before the first "
                                  f"of these strings (several separated by "
                                  f"'{STOP_SEPARATOR}'); empty: none.", resumable=True)


@registry.register("causal_lm", CausalLMConfig)
class CausalLMTask(PretrainingTask):
    """GPT's next-token objective on a causal backbone; prompts in, continuations out."""

    capability = "causal"

    # Assets -------------------------------------------------------------------------------
    def learn_tokenizer(self, texts):
        return tokenizers.SentencePieceTokenizer.learn(texts,
                                                       self.config.model.vocabulary_size)

    def check_tokenizer(self, tokenizer):
        if not tokenizer.reversible or tokenizer.end_id is None:
            raise ConfigError(f"--model={self.config.model.preset} has a "
                              f"{type(tokenizer).__name__}, which does not detokenize "
                              "exactly; --task=causal_lm generates text with a SentencePiece "
                              "vocabulary (give a kerlm causal_lm run's backbone/, or a preset)")

    # Features -----------------------------------------------------------------------------
    def examples(self, tokens, training, batch_size):
        length = self.options.sequence_length
        if training:  # blocks of length + 1: inputs [:-1], targets [1:]
            ds = packing.blocks(tokens, length + 1).map(
                lambda b: (tf.cast(b[:-1], tf.int32), tf.cast(b[1:], tf.int32),
                           tf.ones([length], tf.float32)))
        else:  # every token predicted once
            ds = packing.shifted_blocks(tokens, length, self.separator_id)
        ds = ds.batch(batch_size, drop_remainder=training).map(
            lambda x, y, w: ({"token_ids": x, "padding_mask": tf.cast(w > 0, tf.int32)}, y, w))
        return ds.prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    def new_model(self):
        return self.build_model(self.backbone(positions=self.options.sequence_length))

    def build_model(self, backbone):
        return heads.CausalLM(backbone)

    def loss(self):
        return SmoothedSparseCrossentropy(0.0)

    def weighted_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]

    # Evaluation ---------------------------------------------------------------------------
    def evaluate(self, model, records):
        """Summed NLL over every token of `records`: loss and perplexity per token, and
        per word (`baselines.count_words`)."""
        @tf.function
        def step(x, y, w):
            logits = model(x, training=False)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
            hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
            return tf.reduce_sum(nll * w), tf.reduce_sum(hits * w), tf.reduce_sum(w)

        nll = correct = tokens = 0.0
        for x, y, w in self.dataset(records, training=False):
            a, b, c = step(x, y, w)
            nll, correct, tokens = nll + float(a), correct + float(b), tokens + float(c)
        words, documents = _count(records.documents())
        return {"loss": nll / tokens, "token_perplexity": math.exp(nll / tokens),
                "word_perplexity": math.exp(nll / words), "token_accuracy": correct / tokens,
                "num_tokens": int(tokens), "num_words": words,
                "num_examples": documents}

    def baseline_reports(self, train_records, records):
        """An interpolated Kneser-Ney word bigram trained on the training text."""
        bigram = baselines.KneserNeyBigram().fit(train_records.documents())
        total, words = bigram.log_likelihood(records.documents())
        return {"kneser_ney_bigram_baseline": {
            "word_perplexity": math.exp(-total / words), "num_words": words,
            "num_examples": _count(records.documents())[1]}}

    def headline(self, report):
        names = {"token_perplexity": "perplexity per token", "word_perplexity": "per word",
                 "token_accuracy": "token accuracy"}
        return "  ".join(f"{label} {report[key]:.4g}" for key, label in names.items()
                         if key in report)

    # Generation ---------------------------------------------------------------------------
    def max_new_tokens(self):
        """`--max_decode_length` (default 64), at most what the backbone's positions leave
        after `</s>` and one prompt token."""
        wanted = self.options.max_decode_length or DEFAULT_NEW_TOKENS
        return max(1, min(wanted, self.options.sequence_length - 2))

    def prompt_ids(self, prompts, new_tokens):
        """`(ids, mask)` `[batch, prompt width + new_tokens]`: `</s>` (the document start
        the model saw in training) and each prompt's last tokens, right-padded, so that
        prompt and continuation fit the backbone's positions."""
        keep = max(self.options.sequence_length - self.max_new_tokens() - 1, 1)
        ids = tf.cast(self.tokenizer.tokenize(prompts), tf.int32)[:, -keep:]
        ids = tf.concat([tf.fill([ids.nrows(), 1], self.separator_id), ids], axis=1)
        dense = tf.pad(ids.to_tensor(), [[0, 0], [0, new_tokens]])
        mask = tf.sequence_mask(ids.row_lengths(), tf.shape(dense)[1])
        return dense, mask, ids.row_lengths()

    def generate_graph(self, model, prompts, sampler, max_lengths=None):
        """Prompts → continuations (strings), in TensorFlow ops (what the SavedModel runs).
        `max_lengths` (int32 `[batch]`) caps each continuation's tokens."""
        limit = self.max_new_tokens()
        if max_lengths is not None:
            max_lengths = tf.clip_by_value(tf.cast(max_lengths, tf.int32), 1, limit)
            limit = tf.reduce_max(max_lengths)
        ids, mask, lengths = self.prompt_ids(prompts, limit)
        token_ids, keep = model.generate_ids(ids, mask, sampler, (self.separator_id,),
                                             prompt_length=tf.shape(ids)[1] - limit)
        generated = tf.logical_and(keep, tf.logical_not(mask))
        if max_lengths is not None:
            position = tf.range(tf.shape(ids)[1])[None] - tf.cast(lengths, tf.int32)[:, None]
            generated = tf.logical_and(generated, position < max_lengths[:, None])
        generated = tf.logical_and(generated, token_ids != self.separator_id)
        return self.tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, generated))

    def score_graph(self, model, texts):
        """`(log_likelihood, num_tokens)` of each text: its tokens and the end token after
        `</s>`, or its first `--sequence_length` tokens if it is longer."""
        ids = tf.cast(self.tokenizer.tokenize(texts), tf.int32)
        rows = ids.nrows()
        sequence = tf.concat([tf.fill([rows, 1], self.separator_id), ids,
                              tf.fill([rows, 1], self.separator_id)], axis=1)
        sequence = sequence[:, :self.options.sequence_length + 1].to_tensor()
        x, y = sequence[:, :-1], sequence[:, 1:]
        mask = tf.sequence_mask(tf.minimum(ids.row_lengths() + 1,
                                           self.options.sequence_length), tf.shape(y)[1])
        logits = model({"token_ids": x, "padding_mask": tf.cast(mask, tf.int32)},
                       training=False)
        picked = -tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)
        weights = tf.cast(mask, tf.float32)
        return (tf.reduce_sum(picked * weights, -1),
                tf.reduce_sum(tf.cast(mask, tf.int32), -1))

    def stop(self, text):
        """`text` cut before the first `--stop_strings` string."""
        for stop in filter(None, self.options.stop_strings.split(STOP_SEPARATOR)):
            text = text.split(stop, 1)[0]
        return text

    def predict(self, model, inputs):
        """`[{"output": continuation}]` for a list of prompts, decoded as configured."""
        serve = self.serving_default(model)
        outputs = []
        for start in range(0, len(inputs), self.config.train.batch_size):
            batch = tf.constant(list(inputs[start:start + self.config.train.batch_size]))
            outputs += [self.stop(t.decode("utf-8")) for t in serve(batch)["text"].numpy()]
        return [{"output": text} for text in outputs]

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        """`serving_default` (`prompt` → `text`, the configured decoding), `greedy`,
        `beam_search`, `top_k`, `top_p` (`prompt`, `max_length` → `text`; k, p and the
        temperature as configured) and `score` (`text` → `log_likelihood`, `num_tokens`)."""
        prompt_spec = tf.TensorSpec([None], tf.string, name="prompt")
        length_spec = tf.TensorSpec([None], tf.int32, name="max_length")
        default = decoding.sampler(self.options)
        functions, samplers = {}, [default]

        @tf.function(input_signature=[prompt_spec])
        def serve(prompt):
            return {"text": self.generate_graph(model, prompt, default)}

        functions["serving_default"] = serve
        for signature, name in (("greedy", "greedy"), ("beam_search", "beam"),
                                ("top_k", "top_k"), ("top_p", "top_p")):
            samplers.append(decoding.sampler(self.options, name))
            functions[signature] = tf.function(self._generate_function(model, samplers[-1]),
                                               input_signature=[prompt_spec, length_spec])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def score(text):
            log_likelihood, num_tokens = self.score_graph(model, text)
            return {"log_likelihood": log_likelihood, "num_tokens": num_tokens}

        functions["score"] = score
        return functions, [self.tokenizer, decoding.tracked(samplers)]

    def _generate_function(self, model, sampler):
        def generate(prompt, max_length):
            return {"text": self.generate_graph(model, prompt, sampler, max_length)}
        return generate

    def warmup_inputs(self):
        prompt = ["The state of the Union"]
        return {"serving_default": {"prompt": prompt},
                "greedy": {"prompt": prompt, "max_length": [8]},
                "score": {"text": ["The state of the Union is strong."]}}


def perplexity(log_likelihoods, num_tokens):
    """Perplexity from summed natural-log likelihoods and token counts (e.g. the `score`
    signature's outputs over a text collection).

    >>> round(perplexity([-2 * np.log(4.0)], [2]), 6)
    4.0
    """
    return float(np.exp(-np.sum(log_likelihoods) / np.sum(num_tokens)))


def _count(documents):
    """`(predicted words as baselines.count_words counts them, documents)`, in one pass."""
    words = count = 0
    for document in documents:
        words, count = words + baselines.count_words([document]), count + 1
    return words, count
