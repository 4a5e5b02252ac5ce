"""The embedded natural questions (kerlm/data/wiki_natural_qa): real questions on the test
articles of wiki_cloze_qa, each answered by a verbatim span at its answer_start."""

import collections
import re

import pytest

from kerlm.data import wiki_cloze_qa, wiki_natural_qa


SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@pytest.fixture(scope="module")
def records():
    return wiki_natural_qa.load()


def _words(text):
    return re.findall(r"\w+", text.lower())


def _longest_shared_run(question, context):
    """The most words in a row the question shares with the context."""
    words, text, best = _words(question), f" {' '.join(_words(context))} ", 0
    for i in range(len(words)):
        while i + best < len(words) and f" {' '.join(words[i:i + best + 1])} " in text:
            best += 1
    return best


def test_count_ids_and_answers_at_their_offsets(records):
    assert len(records) >= 150
    ids = [r.fields["id"] for r in records]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"natural-\d{4}", i) for i in ids)
    for r in records:
        (answer,) = r.fields["answers"]
        text, start = answer["text"], answer["answer_start"]
        assert text.strip() == text and 0 < len(text) <= 80, r.fields["id"]
        assert r.fields["context"][start:start + len(text)] == text, r.fields["id"]


def test_contexts_are_the_test_articles_paragraphs_and_all_articles_are_asked(records):
    test = wiki_cloze_qa.load("test")
    paragraphs = {(r.fields["title"], r.fields["context"]) for r in test}
    assert all((r.fields["title"], r.fields["context"]) in paragraphs for r in records)
    per_article = collections.Counter(r.fields["title"] for r in records)
    assert set(per_article) == {r.fields["title"] for r in test} and len(per_article) == 9
    assert min(per_article.values()) >= 5
    assert len({r.fields["context"] for r in records}) >= 100  # spread over many paragraphs
    train_dev = {r.fields["context"] for split in ("train", "dev")
                 for r in wiki_cloze_qa.load(split)}
    assert not train_dev & {r.fields["context"] for r in records}


def test_questions_are_natural_not_cloze_nor_copied_sentences(records):
    starts = collections.Counter()
    for r in records:
        question, context = r.fields["question"], r.fields["context"]
        assert "<" not in question and "Who or what" not in question
        assert "In what year>" not in question and question.endswith("?"), question
        for sentence in SENTENCE_END.split(context):
            words = _words(sentence)
            if len(words) >= 3:
                assert f" {' '.join(words)} " not in f" {' '.join(_words(question))} ", \
                    question
        # paraphrased: only names and titles are shared word for word
        assert _longest_shared_run(question, context) <= 8, question
        starts[_words(question)[0]] += 1
    assert not {"is", "are", "was", "were", "does", "do", "did", "can", "has"} & set(starts)
    assert {"who", "what", "when", "where", "which", "how"} <= set(starts)
    assert starts.most_common(1)[0][1] < len(records) / 2  # varied question words


def test_load_knows_one_split():
    with pytest.raises(ValueError, match="unknown split 'train'"):
        wiki_natural_qa.load("train")
