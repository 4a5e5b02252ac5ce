"""Extractive QA: readers, windows and offsets, span labels and decoding, SQuAD metrics, the
span head learning, and a tiny run end to end (train, evaluate, predict, export, load
without kerlm, serve)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import requests
import tensorflow as tf

from conftest import run_app, start_server, wait_until_serving
from kerlm.data import squad
from kerlm.data.readers import DataError
from kerlm.metrics.squad import exact_match, f1, normalize_answer, squad_report
from kerlm.preprocessing import QAPreprocessor, best_spans, byte_span, span_labels
from kerlm.tokenizers import SentencePieceTokenizer, WordPieceTokenizer
from kerlm.tokenizers.word_piece import RESERVED_TOKENS

VOCAB = RESERVED_TOKENS + ["who", "wrote", "when", "?", "tolstoy", "war", "and", "peace",
                           "in", "1869", ".", "the", "caf", "##e", "na", "##ive",
                           "moscow", "was", "born"]
WORDPIECE = WordPieceTokenizer(VOCAB)
CONTEXT = "Tolstoy wrote War and Peace in 1869. The café naïve was born in Moscow."


def squad_file(tmp_path, qas, context=CONTEXT, version="1.1", name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": version, "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": qas}]}]}), encoding="utf-8")
    return str(path)


# Readers ------------------------------------------------------------------------------------
def test_squad_v1_v2_and_jsonl_records(tmp_path):
    qas = [{"id": "a", "question": "Who wrote War and Peace?",
            "answers": [{"text": "Tolstoy", "answer_start": 0},
                        {"text": "Tolstoy wrote", "answer_start": 0}]},
           {"id": "b", "question": "Who painted it?", "answers": [], "is_impossible": True}]
    records = squad.read_qa(squad_file(tmp_path, qas, version="v2.0"))
    assert [r.fields["id"] for r in records] == ["a", "b"]
    assert [len(r.fields["answers"]) for r in records] == [2, 0]
    lines = [{"question": "When?", "context": CONTEXT,
              "answers": [{"text": "1869", "answer_start": CONTEXT.index("1869")}]},
             {"question": "Why?", "context": CONTEXT, "answers": []}]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    records = squad.read_qa(str(path))
    assert records[0].fields["answers"][0]["text"] == "1869" and not records[1].fields["answers"]


def test_answer_start_that_misses_the_text_names_file_question_and_texts(tmp_path):
    qas = [{"id": "q7", "question": "When?", "answers": [{"text": "1869", "answer_start": 30}]}]
    with pytest.raises(DataError) as error:
        squad.read_qa(squad_file(tmp_path, qas))
    message = str(error.value)
    assert "data.json" in message and "qas[0]" in message and "'q7'" in message
    assert "'1869'" in message and "answer_start 30" in message and "' 186'" in message
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "When?", "context": CONTEXT, "answers": []}) + "\n"
                    + json.dumps({"question": "When?", "context": CONTEXT,
                                  "answers": [{"text": "1870", "answer_start": 31}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: .*'1870' does not match"):
        squad.read_qa(str(path))
    path.write_text(json.dumps({"question": "When?", "context": CONTEXT}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'answers' is missing"):
        squad.read_qa(str(path))
    with pytest.raises(DataError, match="no answers and not marked is_impossible"):
        squad.read_qa(squad_file(tmp_path, [{"id": "x", "question": "Q?", "answers": []}]))


# Windows, offsets, labels and decoding ------------------------------------------------------
def test_offsets_point_at_the_original_text_with_accents_and_case():
    pre = QAPreprocessor(WORDPIECE, sequence_length=64, max_query_length=16)
    ids, starts, ends = pre.tokenizer.tokenize_with_offsets(tf.constant([CONTEXT]))
    raw = CONTEXT.encode("utf-8")
    pieces = [raw[s:e].decode("utf-8", "replace")
              for s, e in zip(starts[0].numpy(), ends[0].numpy())]
    assert pieces[:8] == ["Tolstoy", "wrote", "War", "and", "Peace", "in", "1869", "."]
    tokens = [VOCAB[i] for i in ids[0].numpy()]
    assert tokens[9:13] == ["caf", "##e", "na", "##ive"]
    assert "".join(pieces[9:11]) == "café" and pieces[11] == "na"  # pieces stay in the word
    assert raw[starts[0, 11]:ends[0, 12]].decode() == "naïve"


def test_windows_cover_the_context_with_the_stride():
    pre = QAPreprocessor(WORDPIECE, sequence_length=12, max_query_length=3, doc_stride=2)
    rows = {k: v.numpy() for k, v in pre(tf.constant(["who wrote war and peace ?", "when ?"]),
                                         tf.constant([CONTEXT, "in 1869 ."])).items()}
    context_pieces = int(WORDPIECE.tokenize_with_offsets(tf.constant([CONTEXT]))[0]
                         .row_lengths()[0])
    room = 12 - 3 - 3  # question cut to 3 pieces
    windows = int((rows["example_index"] == 0).sum())
    assert windows == 1 + -(-(context_pieces - room) // 2)
    assert (rows["example_index"] == 1).sum() == 1
    first = rows["token_ids"][0]
    assert first[:5].tolist() == [2, VOCAB.index("who"), VOCAB.index("wrote"),
                                  VOCAB.index("war"), 3]  # [CLS] question (cut) [SEP]
    assert rows["segment_ids"][0].tolist() == [0] * 5 + [1] * 7
    seen = set()  # every context piece is in some window, in order
    for row in np.flatnonzero(rows["example_index"] == 0):
        starts = rows["token_start"][row]
        window = starts[starts >= 0]
        assert len(window) <= room and (np.diff(window) > 0).all()
        seen.update(window.tolist())
    assert len(seen) == context_pieces


def test_span_labels_mark_the_answer_pieces_or_cls():
    pre = QAPreprocessor(WORDPIECE, sequence_length=12, max_query_length=3, doc_stride=2)
    rows = {k: v.numpy() for k, v in pre(tf.constant(["when ?", "who ?"]),
                                         tf.constant([CONTEXT, CONTEXT])).items()}
    answer = byte_span(CONTEXT, CONTEXT.index("War and Peace"), "War and Peace")
    labels = span_labels(rows, [answer, None])
    raw = CONTEXT.encode()
    found = []
    for row, (start, end) in enumerate(labels):
        if rows["example_index"][row] == 1 or (start, end) == (0, 0):
            assert (start, end) == (0, 0)
            continue
        found.append(raw[rows["token_start"][row, start]:rows["token_end"][row, end]])
    assert found and set(found) == {b"War and Peace"}  # each window holding all of it
    # windows that hold only part of the answer are labelled [CLS]
    partial = [row for row in range(len(labels)) if rows["example_index"][row] == 0
               and tuple(labels[row]) == (0, 0)
               and np.isin(rows["token_start"][row], [14, 18, 22]).any()]
    assert partial


def test_best_spans_across_windows_length_limit_null_and_characters():
    pre = QAPreprocessor(WORDPIECE, sequence_length=12, max_query_length=3, doc_stride=2)
    contexts = tf.constant([CONTEXT, CONTEXT, "in 1869 ."])
    rows = pre(tf.constant(["when ?"] * 3), contexts)
    numpy_rows = {k: v.numpy() for k, v in rows.items()}
    logits = np.zeros((len(numpy_rows["example_index"]), 2, 12), "float32")

    def put(example, text, score):  # a high start/end logit on `text` in its last window
        byte_start, byte_end = byte_span(CONTEXT, CONTEXT.index(text), text)
        for row in np.flatnonzero(numpy_rows["example_index"] == example)[::-1]:
            starts, ends = numpy_rows["token_start"][row], numpy_rows["token_end"][row]
            if byte_start in starts and byte_end in ends:
                logits[row, 0, list(starts).index(byte_start)] = score
                logits[row, 1, list(ends).index(byte_end)] = score
                return

    put(0, "1869", 5.0)
    put(0, "naïve", 9.0)  # a stronger span in a later window wins
    put(1, "War and Peace", 4.0)
    out = {k: v.numpy() for k, v in best_spans(tf.constant(logits), rows, contexts).items()}
    answers = [a.decode() for a in out["answer"]]
    assert answers[:2] == ["naïve", "War and Peace"]
    for i in range(2):  # character offsets into the original string
        assert CONTEXT[out["start"][i]:out["end"][i]] == answers[i]
    assert 0 < out["score"][0] <= 1
    short = best_spans(tf.constant(logits), rows, contexts, max_answer_length=2)
    assert short["answer"].numpy()[1].decode() != "War and Peace"  # 3 pieces: too long
    logits[:, :, 0] = 50.0  # [CLS] beats every span: v2.0 models answer nothing
    empty = best_spans(tf.constant(logits), rows, contexts, allow_null=True)
    assert empty["answer"].numpy().tolist() == [b""] * 3
    assert empty["start"].numpy().tolist() == [-1] * 3
    assert best_spans(tf.constant(logits), rows, contexts)["answer"].numpy()[1] != b""


def reference_n_best(logits, rows, contexts, max_answer_length, n):
    """Brute force: every valid span of every window, best first, each span once."""
    answers = []
    for example, context in enumerate(contexts):
        candidates = []
        for row in np.flatnonzero(rows["example_index"] == example):
            inside = np.flatnonzero(rows["token_start"][row] >= 0)
            for s in inside:
                for e in inside[(inside >= s) & (inside < s + max_answer_length)]:
                    candidates.append((-(logits[row, 0, s] + logits[row, 1, e]),
                                       rows["token_start"][row][s], rows["token_end"][row][e]))
        seen, ranked = set(), []
        for _, start, end in sorted(candidates):
            if (start, end) not in seen:
                seen.add((start, end))
                ranked.append(context.encode()[start:end].decode())
        answers.append(ranked[:n])
    return answers


def test_n_best_spans_are_ranked_across_windows_once_each():
    pre = QAPreprocessor(WORDPIECE, sequence_length=12, max_query_length=3, doc_stride=2)
    contexts = [CONTEXT, "in 1869 ."]
    rows = {k: v.numpy() for k, v in pre(tf.constant(["when ?"] * 2),
                                         tf.constant(contexts)).items()}
    logits = np.random.default_rng(0).normal(size=(len(rows["example_index"]), 2, 12))
    logits = logits.astype("float32")
    byte_start, byte_end = byte_span(CONTEXT, CONTEXT.index("Peace"), "Peace")
    holding = [row for row in np.flatnonzero(rows["example_index"] == 0)
               if byte_start in rows["token_start"][row]]
    assert len(holding) > 1  # overlapping windows: "Peace" is a candidate in each
    for n, row in enumerate(holding):
        logits[row, 0, list(rows["token_start"][row]).index(byte_start)] = 8.0 - n
        logits[row, 1, list(rows["token_end"][row]).index(byte_end)] = 8.0 - n

    def decode(**options):
        out = best_spans(tf.constant(logits), {k: tf.constant(v) for k, v in rows.items()},
                         tf.constant(contexts), **options)
        return {k: v.numpy() for k, v in out.items()}

    out = decode(n_best_size=5)
    assert out["n_best_answer"].shape == (2, 5)
    ranked = [[a.decode() for a in answers] for answers in out["n_best_answer"]]
    assert ranked == reference_n_best(logits, rows, contexts, 30, 5)
    assert ranked[0][0] == "Peace" and ranked[0].count("Peace") == 1
    assert [a.decode() for a in out["answer"]] == [r[0] for r in ranked]
    assert (out["start"] == out["n_best_start"][:, 0]).all()
    for context, answers, starts, ends in zip(contexts, ranked, out["n_best_start"],
                                              out["n_best_end"]):
        assert [context[s:e] for s, e in zip(starts, ends)] == answers
    assert ((out["n_best_score"] > 0) & (out["n_best_score"] <= 1)).all()
    # "in 1869 ." has 3 context pieces, so 3 one-piece spans: the 4th and 5th are padding.
    short = decode(max_answer_length=1, n_best_size=5)
    assert short["n_best_start"][1].tolist()[3:] == [-1, -1]
    assert short["n_best_answer"][1, 3:].tolist() == [b"", b""]
    assert short["n_best_score"][1, 3:].tolist() == [0.0, 0.0]
    assert [a.decode() for a in short["n_best_answer"][1, :3]] == \
        reference_n_best(logits, rows, contexts, 1, 5)[1]
    single = decode()  # n_best_size=1: the answer alone
    assert set(single) == {"answer", "start", "end", "score"}
    assert single["answer"].tolist() == out["answer"].tolist()
    from kerlm import tasks
    from kerlm.config import ConfigError
    with pytest.raises(ConfigError, match="--n_best_size must be at least 1, got 0"):
        tasks.get_task(tasks.default_config("qa", {"qa.n_best_size": 0}))


# Metrics ------------------------------------------------------------------------------------
def test_squad_metrics_match_the_official_script_by_hand():
    assert normalize_answer("The Quick, brown  FOX.") == "quick brown fox"
    assert exact_match("a Denver Broncos", ["Denver Broncos"]) == 1.0
    assert exact_match("Broncos", ["Denver Broncos"]) == 0.0
    # precision 1/1, recall 1/2 → 2/3; the best of the gold answers counts
    assert f1("Broncos", ["Denver Broncos", "Carolina Panthers"]) == pytest.approx(2 / 3)
    assert f1("Denver Broncos win", ["Denver Broncos"]) == pytest.approx(0.8)
    assert f1("", []) == 1.0 and f1("Denver", []) == 0.0 and exact_match("", []) == 1.0
    report = squad_report(["Denver Broncos", "Panthers", ""], [["Denver Broncos"],
                                                               ["Carolina Panthers"], []])
    assert report["exact_match"] == pytest.approx(200 / 3)
    assert report["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)


# The head learns ----------------------------------------------------------------------------
@pytest.mark.slow
def test_span_head_learns_to_find_the_token_after_a_marker():
    """Random contexts where the answer is the two tokens after marker token 5: a tiny
    encoder with the span head finds it on held-out rows (chance: ~1/30 per position)."""
    from kerlm.heads import SpanLabeler
    from kerlm.models import EncoderBackbone
    rng = np.random.default_rng(0)
    n, length = 1200, 32
    ids = rng.integers(6, 40, (n, length)).astype("int32")
    ids[:, 0], ids[:, 1] = 2, 3
    marker = rng.integers(2, length - 3, n)
    ids[np.arange(n), marker] = 5
    labels = np.stack([marker + 1, marker + 2], axis=1).astype("int32")
    features = {"token_ids": ids, "padding_mask": np.ones_like(ids),
                "segment_ids": np.ones_like(ids)}
    keras.utils.set_random_seed(1)
    model = SpanLabeler(EncoderBackbone(vocabulary_size=40, num_layers=2, hidden_dim=32,
                                        num_heads=2, intermediate_dim=64, dropout=0.0,
                                        max_sequence_length=length), dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = {k: v[:1000] for k, v in features.items()}
    model.fit(train, labels[:1000], batch_size=50, epochs=30, verbose=0)
    predicted = np.asarray(model.predict({k: v[1000:] for k, v in features.items()},
                                         verbose=0)).argmax(-1)
    assert (predicted == labels[1000:]).all(axis=1).mean() > 0.9


# End to end ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    """A tiny encoder on 800 embedded training questions, 40 steps, exported."""
    from kerlm.data import wiki_cloze_qa
    root = tmp_path_factory.mktemp("qa")
    for split, n in (("train", 800), ("dev", 30), ("test", 30)):
        records = wiki_cloze_qa.load(split)[:n]
        with open(root / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({k: r.fields[k] for k in ("question", "context",
                                                              "answers")}) + "\n")
    model_dir, export_dir = str(root / "model"), str(root / "exports")
    result = run_app("train", "--task=qa", "--model=encoder_tiny", "--vocabulary_size=2000",
                     "--sequence_length=96", "--max_query_length=32", "--doc_stride=32",
                     "--batch_size=32", "--train_steps=40", "--log_every_steps=20",
                     "--n_best_size=3", f"--train_data={root / 'train.jsonl'}",
                     f"--eval_data={root / 'dev.jsonl'}", f"--test_data={root / 'test.jsonl'}",
                     f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    return {"model_dir": model_dir, "export_path": os.path.join(export_dir, "qa", "1"),
            "stdout": result.stdout, "root": root}


def test_training_and_evaluate_report_squad_metrics_and_baselines(qa_run):
    model_dir = qa_run["model_dir"]
    dev = json.load(open(os.path.join(model_dir, "dev_metrics.json")))
    assert {"exact_match", "f1", "num_examples", "examples"} <= set(dev)
    assert dev["num_examples"] == 30 and "dev exact_match" in qa_run["stdout"]
    run_app("evaluate", f"--model_dir={model_dir}")
    test = json.load(open(os.path.join(model_dir, "test_metrics.json")))
    assert set(test) == {"model", "sentence_overlap_baseline", "cloze_gap_baseline"}
    # the cloze gap knows how the questions were made: far above the sentence baseline
    assert test["cloze_gap_baseline"]["f1"] > 2 * test["sentence_overlap_baseline"]["f1"]
    assert test["sentence_overlap_baseline"]["exact_match"] < 5


def test_evaluate_on_the_natural_questions_with_the_baselines(qa_run):
    """`--split=natural`: the embedded natural questions (not the run's --test_data), with
    the baselines; the cloze gap is no help on questions that are not cloze sentences."""
    model_dir = qa_run["model_dir"]
    result = run_app("evaluate", f"--model_dir={model_dir}", "--split=natural")
    natural = json.load(open(os.path.join(model_dir, "natural_metrics.json")))
    assert set(natural) == {"model", "sentence_overlap_baseline", "cloze_gap_baseline"}
    assert {r["num_examples"] for r in natural.values()} == {252}
    assert natural["cloze_gap_baseline"]["exact_match"] < 5
    assert "(252 examples)" in result.stdout


def test_natural_split_is_qa_only_and_ignores_the_test_data():
    from kerlm import tasks
    qa = tasks.get_task(tasks.default_config("qa", {"data.test_data": "mine.jsonl"}))
    assert qa.evaluation_splits() == ("dev", "test", "natural")
    records = qa.read("natural")
    assert len(records) >= 150 and records[0].fields["id"] == "natural-0001"
    assert "natural" not in tasks.get_task(tasks.default_config("sentiment")) \
        .evaluation_splits()


def test_evaluate_refuses_a_split_the_task_lacks_in_one_line(tmp_path):
    """Checked from config.json alone, before the run's assets or model are loaded."""
    from kerlm import tasks
    for task, split, choices in [("sentiment", "natural", "dev, test"),
                                 ("qa", "tset", "dev, test, natural")]:
        model_dir = tmp_path / task
        tasks.default_config(task).save(str(model_dir))
        result = run_app("evaluate", f"--model_dir={model_dir}", f"--split={split}",
                         check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        name = tasks.registry.get(task).name
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: --split={split}: the {name} task has no such split; choose from "
            f"{choices}")


LONG = " ".join([CONTEXT] * 12)  # about 200 pieces: several windows of 96


def test_export_answers_with_offsets_without_kerlm(qa_run):
    """A fresh process with TensorFlow + tensorflow-text only gets the same answers as the
    task in-process, and every answer is its context's text at [start, end)."""
    from kerlm import tasks, training
    model_dir = qa_run["model_dir"]
    task = tasks.restore_task(model_dir)
    pairs = [("Who wrote War and Peace?", CONTEXT), ("When was it written?", LONG),
             ("Where?", "Moscow")]
    expected = task.answer(training.load_model(model_dir), pairs)
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        f"model = tf.saved_model.load({qa_run['export_path']!r})\n"
        "pairs = json.loads(sys.stdin.read())\n"
        "out = model.signatures['serving_default'](question=tf.constant([p[0] for p in pairs]),"
        " context=tf.constant([p[1] for p in pairs]))\n"
        "out = {k: v.numpy().tolist() for k, v in out.items()}\n"
        "out['answer'] = [a.decode() for a in out['answer']]\n"
        "out['n_best_answer'] = [[a.decode() for a in row] for row in out['n_best_answer']]\n"
        "assert 'kerlm' not in sys.modules\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", script], input=json.dumps(pairs),
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["answer"] == [e["answer"] for e in expected]
    assert served["start"] == [e["start"] for e in expected]
    for (_, context), answer, start, end in zip(pairs, served["answer"], served["start"],
                                                served["end"]):
        assert answer and context[start:end] == answer
    assert np.allclose(served["score"], [e["score"] for e in expected], atol=1e-5)
    # --n_best_size=3: the ranked spans, the answer first, each its context's text.
    assert np.asarray(served["n_best_start"]).shape == (3, 3)
    for (_, context), expect, answers, starts, ends in zip(
            pairs, expected, served["n_best_answer"], served["n_best_start"],
            served["n_best_end"]):
        assert answers[0] == expect["answer"]
        assert [context[s:e] for s, e in zip(starts, ends) if s >= 0] == \
            [a for a in answers if a] == [n["answer"] for n in expect["n_best"]]
        found = [(s, e) for s, e in zip(starts, ends) if s >= 0]
        assert found and len(set(found)) == len(found)


def test_predict_and_rest_serving(qa_run, tmp_path):
    result = run_app("predict", f"--model_dir={qa_run['model_dir']}",
                     "--question=Who wrote War and Peace?", f"--context={CONTEXT}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"]
    bad = run_app("predict", f"--model_dir={qa_run['model_dir']}", "--text=not json",
                  check=False)
    assert bad.returncode != 0 and "input 1: QA input must be a JSON object" in bad.stderr
    base_path = os.path.dirname(qa_run["export_path"])
    process, url, log = start_server(tmp_path, "--model_name=qa",
                                     f"--model_base_path={base_path}")
    try:
        wait_until_serving(process, f"{url}/v1/models/qa", log)
        response = requests.post(f"{url}/v1/models/qa:predict", json={"instances": [
            {"question": "Who wrote War and Peace?", "context": CONTEXT}]}, timeout=60)
        assert response.status_code == 200, response.text
        prediction = response.json()["predictions"][0]
        assert prediction["answer"] == answer["answer"]
        assert {"start", "end", "score"} <= set(prediction)
        assert prediction["n_best_answer"][0] == answer["answer"]
        assert [n["answer"] for n in answer["n_best"]] == \
            [a for a in prediction["n_best_answer"] if a]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cloze_questions_extend_only_training_data_with_valid_answers():
    from kerlm import tasks
    task = tasks.get_task(tasks.default_config("qa", {"qa.cloze_questions": 2}))
    given = tasks.get_task(tasks.default_config("qa"))
    train, plain = task.read("train"), given.read("train")
    assert len(train) > len(plain) * 1.5
    made = train[len(plain):]
    contexts = {r.fields["context"] for r in plain}
    questions = {r.fields["question"] for r in plain}
    for r in made:
        answer = r.fields["answers"][0]
        assert r.fields["context"] in contexts and r.fields["question"] not in questions
        start = answer["answer_start"]
        assert r.fields["context"][start:start + len(answer["text"])] == answer["text"]
        assert r.fields["question"].endswith("?") and ("<In what year>" in r.fields["question"]
                                                      or "<Who or what>" in r.fields["question"])
    assert len(task.read("dev")) == len(given.read("dev"))


def _weights(layer):
    return [np.array(w) for w in layer.weights]


@pytest.mark.parametrize("freeze", [True, False])
def test_qa_head_fine_tunes_on_a_saved_sentiment_backbone(trained_run, qa_run, tmp_path,
                                                          freeze):
    """Training writes MODEL_DIR/backbone (weights + vocabulary); a QA head trained on it
    with --freeze_backbone leaves every backbone weight as saved, and without it changes
    them."""
    from kerlm import models, training
    backbone_dir = os.path.join(trained_run["model_dir"], "backbone")
    assert os.path.exists(os.path.join(backbone_dir, "vocab.txt"))
    saved = _weights(models.Backbone.from_preset(backbone_dir))
    root = qa_run["root"]
    model_dir = str(tmp_path / "qa_on_sentiment")
    run_app("train", "--task=qa", f"--model={backbone_dir}", "--sequence_length=64",
            "--max_query_length=24", "--doc_stride=24", "--batch_size=16", "--train_steps=6",
            f"--train_data={root / 'train.jsonl'}", f"--eval_data={root / 'dev.jsonl'}",
            f"--model_dir={model_dir}", *(["--freeze_backbone"] if freeze else []))
    model = training.load_model(model_dir)
    tuned = _weights(model.backbone)
    same = [np.array_equal(a, b) for a, b in zip(saved, tuned)]
    assert len(saved) == len(tuned) and (all(same) if freeze else not all(same))
    head = model.get_layer("span_logits").kernel
    assert np.abs(np.array(head)).sum() > 0


def test_freeze_backbone_needs_a_trained_backbone(tmp_path):
    result = run_app("train", "--task=qa", "--model=encoder_tiny", "--freeze_backbone",
                     "--train_steps=1", f"--model_dir={tmp_path / 'm'}", check=False)
    assert result.returncode != 0
    assert "--freeze_backbone keeps a trained backbone fixed" in result.stderr


# SentencePiece QA features (one vocabulary with translation and summarization) -------------
SP_CONTEXT = "Tolstoy  wrote War and Peace in 1869.  Café naïve à Paris,   42 ans!"
SP_TEXTS = ["Tolstoy wrote War and Peace in 1869.", "The café naïve was born in Moscow.",
            "Café naïve à Paris, 42 ans!", "Who wrote War and Peace?", "When was it written?"]


@pytest.fixture(scope="module")
def sp_tokenizer():
    return SentencePieceTokenizer.learn(SP_TEXTS * 30, 80)


def sp_rows(pre, questions, contexts):
    return {k: v.numpy() for k, v in pre(tf.constant(questions), tf.constant(contexts)).items()}


def test_sentencepiece_offsets_skip_the_whitespace_of_a_leading_marker(sp_tokenizer):
    pre = QAPreprocessor(sp_tokenizer, sequence_length=64, max_query_length=8)
    ids, starts, ends = (t[0].numpy() for t in pre.tokenizer.tokenize_with_offsets(
        tf.constant([SP_CONTEXT])))
    tokens = [pre.tokenizer.vocabulary[i] for i in ids]
    raw = SP_CONTEXT.encode("utf-8")
    # tensorflow-text puts the whitespace before a word into its "▁word" piece
    import tensorflow_text
    _, tf_starts, _ = tensorflow_text.SentencepieceTokenizer(
        model=sp_tokenizer.proto).tokenize_with_offsets(tf.constant([SP_CONTEXT]))
    tf_starts = tf_starts[0].numpy()
    word = next(i for i, t in enumerate(tokens) if t.startswith("▁w"))  # "Tolstoy  wrote"
    assert raw[tf_starts[word]:starts[word]] == b"  " and raw[starts[word]:].startswith(b"w")
    lone = [i for i, t in enumerate(tokens) if t == "▁"]  # whitespace only: no offsets
    assert lone and all(starts[i] == ends[i] == -1 for i in lone)
    kept = np.flatnonzero(starts >= 0)
    assert len(kept) == len(tokens) - len(lone)
    pieces = [raw[starts[i]:ends[i]].decode("utf-8") for i in kept]
    assert all(p and p == p.strip() for p in pieces)  # no whitespace at either end
    assert "".join(pieces) == "".join(SP_CONTEXT.split())  # all the text, accents intact
    for a, b in zip(kept[:-1], kept[1:]):  # in order; only whitespace between pieces
        assert ends[a] <= starts[b] and not raw[ends[a]:starts[b]].strip()
    for text in ["Tolstoy", "Café", "naïve", "à", "Paris", "1869", "42", "!"]:
        start, end = byte_span(SP_CONTEXT, SP_CONTEXT.index(text), text)
        assert start in starts and end in ends, text


def test_sentencepiece_windows_cover_the_context_with_the_stride(sp_tokenizer):
    pre = QAPreprocessor(sp_tokenizer, sequence_length=16, max_query_length=4,
                                      doc_stride=3)
    assert (pre.tokenizer.start_id, pre.tokenizer.end_id, pre.tokenizer.pad_id) == (2, 3, 0)
    rows = sp_rows(pre, ["Who wrote War and Peace?", "When?"], [SP_CONTEXT, "in 1869."])
    ids = pre.tokenizer.tokenize_with_offsets(tf.constant([SP_CONTEXT]))[0][0].numpy()
    question = sp_tokenizer.tokenize(tf.constant(["Who wrote War and Peace?"]))[0]
    room = 16 - 3 - 4  # question cut to 4 pieces
    windows = np.flatnonzero(rows["example_index"] == 0)
    assert len(windows) == 1 + -(-(len(ids) - room) // 3) and len(windows) > 3
    assert rows["example_index"].tolist()[-1] == 1 and (rows["example_index"] == 1).sum() == 1
    assert rows["token_ids"][0, :6].tolist() == [2, *question.numpy()[:4], 3]
    assert rows["segment_ids"][0].tolist() == [0] * 6 + [1] * 10
    for k, row in enumerate(windows):  # window k holds context pieces k·stride…, then [SEP]
        n = int(rows["padding_mask"][row].sum()) - 7
        assert n == min(room, len(ids) - 3 * k)
        assert rows["token_ids"][row, 6:6 + n].tolist() == ids[3 * k:3 * k + n].tolist()
        assert rows["token_ids"][row, 6 + n] == 3 and (rows["token_ids"][row, 7 + n:] == 0).all()
        assert (rows["token_start"][row, :6] == -1).all() and rows["token_start"][row, 6 + n] == -1
    seen = set(rows["token_start"][windows][rows["token_start"][windows] >= 0].tolist())
    all_starts = pre.tokenizer.tokenize_with_offsets(tf.constant([SP_CONTEXT]))[1][0].numpy()
    assert seen == set(all_starts[all_starts >= 0].tolist())


def test_sentencepiece_span_labels_and_best_spans_recover_exact_answers(sp_tokenizer):
    pre = QAPreprocessor(sp_tokenizer, sequence_length=24, max_query_length=5,
                                      doc_stride=4)
    answers = ["Tolstoy", "War and Peace", "1869", "naïve", "Café naïve à Paris", "42 ans",
               "Paris,   42", None]
    rows = sp_rows(pre, ["Who wrote War and Peace?"] * len(answers), [SP_CONTEXT] * len(answers))
    spans = [a and byte_span(SP_CONTEXT, SP_CONTEXT.index(a), a) for a in answers]
    labels = span_labels(rows, spans)
    raw = SP_CONTEXT.encode("utf-8")
    logits = np.zeros((len(labels), 2, 24), "float32")
    later = []
    for example, answer in enumerate(answers):
        mine = np.flatnonzero(rows["example_index"] == example)
        labelled = [row for row in mine if tuple(labels[row]) != (0, 0)]
        if answer is None:
            assert not labelled
            logits[mine, :, 0] = 5.0  # [CLS] wins: no answer
            continue
        assert labelled, answer
        for row in labelled:  # the labelled pieces hold exactly the answer
            start, end = labels[row]
            assert raw[rows["token_start"][row, start]:rows["token_end"][row, end]] == \
                answer.encode("utf-8")
        row = labelled[-1]
        later.append(row != mine[0])
        logits[row, 0, labels[row, 0]] = logits[row, 1, labels[row, 1]] = 10.0
    assert sum(later) >= 3  # several answers come from a later window
    contexts = tf.constant([SP_CONTEXT] * len(answers))
    out = {k: v.numpy() for k, v in best_spans(tf.constant(logits), rows, contexts,
                                               allow_null=True).items()}
    found = [a.decode("utf-8") for a in out["answer"]]
    assert found == [a or "" for a in answers]
    for i, answer in enumerate(answers[:-1]):  # character offsets into the original string
        assert (out["start"][i], out["end"][i]) == (SP_CONTEXT.index(answer),
                                                    SP_CONTEXT.index(answer) + len(answer))
    assert (out["start"][-1], out["end"][-1]) == (-1, -1)


def test_sentencepiece_config_round_trip_tf_data_and_saved_model(sp_tokenizer, tmp_path):
    pre = QAPreprocessor(sp_tokenizer, sequence_length=20, max_query_length=5,
                                      doc_stride=4, name="sp_qa")
    config = json.loads(json.dumps(pre.get_config()))
    assert isinstance(config["tokenizer"]["config"]["proto"], str) and config["doc_stride"] == 4
    again = QAPreprocessor.from_config(config)
    assert again.tokenizer.proto == sp_tokenizer.proto
    assert again.vocabulary_size == pre.vocabulary_size > 4
    questions, contexts = ["Who wrote War and Peace?", "When?"], [SP_CONTEXT, "Café à Paris"]
    rows = sp_rows(pre, questions, contexts)
    assert len(rows["example_index"]) > 2
    for other in (sp_rows(again, questions, contexts),
                  next(iter(tf.data.Dataset.from_tensor_slices((questions, contexts))
                            .batch(2).map(pre)))):
        assert set(other) == set(rows)
        for key in rows:
            np.testing.assert_array_equal(np.asarray(other[key]), rows[key])

    module = tf.Module()
    module.pre = pre
    text = tf.TensorSpec([None], tf.string)
    module.serve = tf.function(lambda q, c: module.pre(q, c), input_signature=[text, text])
    tf.saved_model.save(module, str(tmp_path / "sp_qa"))
    served = tf.saved_model.load(str(tmp_path / "sp_qa")).serve(tf.constant(questions),
                                                               tf.constant(contexts))
    for key in rows:
        np.testing.assert_array_equal(served[key].numpy(), rows[key])
    with pytest.raises(ValueError, match="leaves no room"):
        QAPreprocessor(sp_tokenizer, sequence_length=8, max_query_length=5)
