"""Answer raw inputs with a trained run: texts from flags, a file or stdin → JSON lines.

    python apps/predict.py --model_dir=runs/sentiment --text="Great phone" --text="Awful."
    echo "Great phone" | python apps/predict.py --model_dir=runs/sentiment --input_file=-
    python apps/predict.py --model_dir=runs/translation_en_es --text="God is love."
    python apps/predict.py --model_dir=runs/qa --question="Who wrote it?" \
        --context="Tolstoy wrote War and Peace."

Classification answers `{"text", "label", "probabilities"}`; translation, summarization,
text generation (`causal_lm`: prompt → continuation) and span filling (`span_corruption`)
`{"text", "output"}`, decoded as the run's config says unless the decoding flags
(`--sampler`, `--top_k`, `--top_p`, `--temperature`, `--beam_width`, `--max_decode_length`,
`--sampling_seed`, `--stop`) say otherwise; masked_lm fills `[MASK]`s;
QA `{"text", "answer", "start", "end", "score"}`, where each text (or input line) is a JSON
object `{"question": ..., "context": ...}` (or give `--question` and `--context`).

One output line per input, in order: the `--text` values, then every line of
`--input_file`. An empty (or all-whitespace) text or line is not given to the model; its
output line is `{"text": "", "skipped": "empty text"}`, so output line N always answers
input N (`paste` and `wc -l` line up). No input at all (an empty file) prints nothing.

Search (`sentence_embedding` runs): the `--top_k` passages of `--corpus` (one per line, or
JSONL with `--text_field`) nearest each `--query` by cosine, one JSON line per query
`{"query", "results": [{"rank", "score", "text"}]}`. The corpus's embeddings are saved in
`MODEL_DIR/embeddings/` with a fingerprint of the corpus file and the model, and reused
while both are unchanged:

    python apps/predict.py --model_dir=runs/sentence_embedding --corpus=passages.txt \
        --query="a text editor for the terminal" --top_k=5

Without a run, a checkpoint directory embeds as it comes (its tokenizer, and its
sentence-transformers pooling, normalization and `max_seq_length`; no training), its
embeddings cached under `--cache_dir` (default `kerlm_embeddings/` beside the corpus), in
a folder named after the checkpoint, with a fingerprint of the corpus file and of the
checkpoint on disk (`config.json`, every file's size and mtime) and the embedding options:

    python apps/predict.py --task=sentence_embedding --model=checkpoints/all-MiniLM-L6-v2 \
        --corpus=passages.txt --query="a text editor for the terminal" --top_k=5

Start-up: TensorFlow is imported after the flags are parsed, TensorBoard not at all; up to
the task's `eager_predict_limit` texts (64 for classification) are answered eagerly,
without tracing the serving function (most of a one-text call's time after the imports).
"""

import contextlib
import json
import os
import sys

from absl import app, flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir(required=False)
flags.DEFINE_string("task", None, "Without --model_dir: sentence_embedding, to search "
                                  "--corpus with the --model checkpoint as it comes.")
flags.DEFINE_string("model", None, "Without --model_dir (with --task=sentence_embedding): "
                                   "a checkpoint directory to embed with, untrained.")
flags.DEFINE_string("cache_dir", None, "sentence_embedding: where --corpus's embeddings are "
                                       "cached (default MODEL_DIR/embeddings, or "
                                       "kerlm_embeddings/ beside the corpus with --model).")
flags.DEFINE_multi_string("text", [], "A text to answer (repeat the flag for several).")
flags.DEFINE_string("input_file", None, "A file with one text per line ('-' for stdin).")
flags.DEFINE_string("question", None, "QA: a question about --context.")
flags.DEFINE_string("context", None, "QA: the text holding the answer to --question.")
flags.DEFINE_string("corpus", None, "sentence_embedding: passages to search (.txt: one per "
                                    "line; .jsonl: --text_field), with --query and --top_k.")
flags.DEFINE_multi_string("query", [], "sentence_embedding: a text to search --corpus for.")
flags.DEFINE_string("text_field", "text", "sentence_embedding: the JSONL field of a passage.")
EMBEDDINGS_DIR = "embeddings"  # MODEL_DIR/embeddings/CORPUS.npy (+ .json: its fingerprint)
# --model without a run: CORPUS_DIR/kerlm_embeddings/CHECKPOINT/CORPUS.npy (+ .json)
CHECKPOINT_EMBEDDINGS_DIR = "kerlm_embeddings"
CHECKPOINT_TASKS = ("sentence_embedding",)  # the --task values that work without a run
# Decoding, for the tasks that generate (causal_lm, translation, summarization,
# span_corruption): they override the run's config for this call only.
flags.DEFINE_enum("sampler", None, ["greedy", "beam", "top_k", "top_p", "random"],
                  "Decoding: greedy, beam search, top-k, top-p (nucleus) or random sampling.")
flags.DEFINE_integer("beam_width", None, "Beam search: number of beams.")
flags.DEFINE_integer("top_k", None, "top_k sampling: sample among the k most likely tokens; "
                                   "with --corpus: passages per query (default 10).")
flags.DEFINE_float("top_p", None, "top_p sampling: smallest token set with this mass.")
flags.DEFINE_float("temperature", None, "Sampling temperature (divides the logits).")
flags.DEFINE_integer("max_decode_length", None, "Most generated tokens per input.")
flags.DEFINE_integer("sampling_seed", None, "Seed of the random samplers.")
flags.DEFINE_multi_string("stop", [], "causal_lm: cut each continuation before the first "
                                      "of these strings (repeat the flag for several).")
DECODING_FLAGS = ("sampler", "beam_width", "top_k", "top_p", "temperature",
                  "max_decode_length", "sampling_seed")
FLAGS = flags.FLAGS

SKIPPED = {"skipped": "empty text"}


def read_texts(text_flags, input_file):
    """The inputs in order: `text_flags`, then every line of `input_file` (without its
    line break), empty lines included."""
    texts = list(text_flags)
    if input_file:
        stream = sys.stdin if input_file == "-" else open(input_file, encoding="utf-8")
        with stream:
            texts += [line.rstrip("\r\n") for line in stream]
    return texts


def answer(texts, model_dir):
    """One answer dict per text: the task's prediction, or `SKIPPED` for an empty text.
    The run's config is always read (a wrong `--model_dir` is an error); its model only
    if some text is not empty."""
    from kerlm import config  # noqa: PLC0415 (no TensorFlow)

    config.read_config_file(model_dir)
    wanted = [i for i, text in enumerate(texts) if text.strip()]
    answers = [SKIPPED] * len(texts)
    if not wanted:
        return answers
    from kerlm import tasks, training  # noqa: PLC0415 (imports TensorFlow)

    task = tasks.get_task(_with_decoding(tasks.load_config(model_dir)))
    task.restore(model_dir)
    model = training.load_model(model_dir)
    inputs = [texts[i] for i in wanted]
    with _eager_for_few(task, len(inputs)):
        for i, prediction in zip(wanted, task.predict(model, inputs)):
            answers[i] = prediction
    return answers


def _with_decoding(config):
    """The run's config with the decoding flags given (a flag the task has no option for
    is a one-line error)."""
    from kerlm.config import ConfigError, apply_overrides  # noqa: PLC0415 (no TensorFlow)

    given = {name: FLAGS[name].value for name in DECODING_FLAGS
             if FLAGS[name].value is not None}
    if FLAGS.stop:
        given["stop_strings"] = "|".join(FLAGS.stop)
    fields = config.options.to_dict()
    unknown = sorted(name if name != "stop_strings" else "stop" for name in given
                     if name not in fields)
    if unknown:
        raise ConfigError(f"--{', --'.join(unknown)}: not an option of --task={config.task} "
                          "(decoding flags are for the tasks that generate text)")
    return apply_overrides(config, {f"{config.task}.{k}": v for k, v in given.items()})


@contextlib.contextmanager
def _eager_for_few(task, count):
    """Run tf.functions eagerly for a few inputs of a task whose prediction is one pass
    (`task.eager_predict_limit`): tracing the serving function costs ~0.6 s, an eager
    call of a small model ~0.1 s, and predict.py calls it once. (Decoding tasks loop over
    tokens in their functions: they stay traced.)"""
    import tensorflow as tf  # noqa: PLC0415

    before = tf.config.functions_run_eagerly()
    few = count <= task.eager_predict_limit
    tf.config.run_functions_eagerly(before or few)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(before)


def search(model_dir, corpus_path, queries, top_k, text_field="text", checkpoint=None,
           cache_dir=None):
    """One result dict per query: the `top_k` nearest passages of `corpus_path`; the
    corpus's embeddings cached under `cache_dir`, by default `model_dir/embeddings/` (see
    the module doc). `checkpoint` instead of `model_dir`: embed with that checkpoint
    directory as it comes (`SentenceEmbeddingTask.from_checkpoint`), cached by default in
    `kerlm_embeddings/` beside the corpus, in a folder named after the checkpoint."""
    from kerlm import export, tasks, training  # noqa: PLC0415 (imports TensorFlow)
    from kerlm.config import ConfigError  # noqa: PLC0415
    from kerlm.data import corpus  # noqa: PLC0415

    if checkpoint is not None:
        task, model = tasks.registry.get("sentence_embedding").task_class.from_checkpoint(
            checkpoint)
        model_fingerprint = task.checkpoint_fingerprint()
        base = cache_dir or os.path.join(os.path.dirname(os.path.abspath(corpus_path)),
                                         CHECKPOINT_EMBEDDINGS_DIR)
        cache_dir = os.path.join(base, os.path.basename(os.path.normpath(checkpoint)))
    else:
        task = tasks.restore_task(model_dir)
        if not hasattr(task, "corpus_embeddings"):
            raise ConfigError(f"--corpus: --task={task.config.task} does not search a "
                              "corpus (a sentence_embedding run does)")
        model = training.load_model(model_dir)
        model_fingerprint = export.fingerprint(task, model, task.export_name)
        cache_dir = cache_dir or os.path.join(model_dir, EMBEDDINGS_DIR)
    passages = list(corpus.read_documents(corpus_path, text_field, one_per_line=True))
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar; stdout is JSON lines
        vectors, reused = task.corpus_embeddings(model, corpus_path, passages,
                                                 model_fingerprint, cache_dir)
    print(f"{'Reused' if reused else 'Embedded'} {len(passages)} passages of {corpus_path}",
          file=sys.stderr)
    return task.search(model, vectors, passages, queries, top_k)


def _check_run_or_checkpoint():
    """`--model_dir` (a trained run), or `--task=sentence_embedding --model=DIR` with
    `--corpus` (a checkpoint as it comes): one of them, else a usage error."""
    checkpoint = FLAGS.model is not None or FLAGS.task is not None
    if FLAGS.model_dir is not None:
        if checkpoint:
            raise app.UsageError("--task and --model are for searching without a run; "
                                 "--model_dir's run has its own")
        return
    if not checkpoint:
        raise app.UsageError("Give --model_dir (a trained run), or --task=sentence_embedding "
                             "--model=DIR with --corpus and --query (a checkpoint as it "
                             "comes)")
    if FLAGS.task not in CHECKPOINT_TASKS or FLAGS.model is None or not FLAGS.corpus:
        raise app.UsageError("Without --model_dir, predict searches --corpus with a "
                             "checkpoint: give --task=sentence_embedding --model=DIR "
                             "--corpus=FILE --query=TEXT")


def main(_):
    _check_run_or_checkpoint()
    if FLAGS.corpus:
        if not FLAGS.query:
            raise app.UsageError("Give --query with --corpus")
        for result in search(FLAGS.model_dir, FLAGS.corpus, FLAGS.query, FLAGS.top_k or 10,
                             FLAGS.text_field, checkpoint=FLAGS.model,
                             cache_dir=FLAGS.cache_dir):
            print(json.dumps(result, ensure_ascii=False))
        return
    texts = list(FLAGS.text)
    if (FLAGS.question is None) != (FLAGS.context is None):
        raise app.UsageError("Give --question and --context together")
    if FLAGS.question is not None:
        texts.append(json.dumps({"question": FLAGS.question, "context": FLAGS.context},
                                ensure_ascii=False))
    if not texts and not FLAGS.input_file:
        raise app.UsageError("Give texts with --text or --input_file")
    texts = read_texts(texts, FLAGS.input_file)
    for text, result in zip(texts, answer(texts, FLAGS.model_dir)):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
