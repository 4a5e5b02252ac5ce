"""Answer raw inputs with a trained run: texts from flags, a file or stdin → JSON lines.

    python apps/predict.py --model_dir=runs/sentiment --text="Great phone" --text="Awful."
    echo "Great phone" | python apps/predict.py --model_dir=runs/sentiment --input_file=-
    python apps/predict.py --model_dir=runs/translation_en_es --text="God is love."
    python apps/predict.py --model_dir=runs/qa --question="Who wrote it?" \
        --context="Tolstoy wrote War and Peace."

Classification answers `{"text", "label", "probabilities"}`; translation and
summarization `{"text", "output"}`, decoded as the run's config says (`--sampler`, ...);
QA `{"text", "answer", "start", "end", "score"}`, where each text (or input line) is a JSON
object `{"question": ..., "context": ...}` (or give `--question` and `--context`).
"""

import json
import sys

from absl import app, flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir()
flags.DEFINE_multi_string("text", [], "A text to answer (repeat the flag for several).")
flags.DEFINE_string("input_file", None, "A file with one text per line ('-' for stdin).")
flags.DEFINE_string("question", None, "QA: a question about --context.")
flags.DEFINE_string("context", None, "QA: the text holding the answer to --question.")
FLAGS = flags.FLAGS


def read_texts(text_flags, input_file):
    """The texts to answer: `--text` values, then non-empty lines of `input_file`."""
    texts = list(text_flags)
    if input_file:
        stream = sys.stdin if input_file == "-" else open(input_file, encoding="utf-8")
        with stream:
            texts += [line.rstrip("\n") for line in stream if line.strip()]
    if not texts:
        raise app.UsageError("Give texts with --text or --input_file")
    return texts


def main(_):
    texts = list(FLAGS.text)
    if (FLAGS.question is None) != (FLAGS.context is None):
        raise app.UsageError("Give --question and --context together")
    if FLAGS.question is not None:
        texts.append(json.dumps({"question": FLAGS.question, "context": FLAGS.context},
                                ensure_ascii=False))
    texts = read_texts(texts, FLAGS.input_file)
    from kerlm import config, tasks, training

    task = tasks.get_task(config.Config.load(FLAGS.model_dir))
    task.restore(FLAGS.model_dir)
    for text, answer in zip(texts, task.predict(training.load_model(FLAGS.model_dir), texts)):
        print(json.dumps({"text": text, **answer}, ensure_ascii=False))


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
