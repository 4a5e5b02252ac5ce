"""What the pretraining objectives share: a plain-text corpus, streamed and packed.

`masked_lm`, `causal_lm` and `span_corruption` (one module each) read a corpus, never
labelled records: users' files by `--train_data` / `--eval_data` / `--test_data` (each a
comma list of paths or globs of `.txt[.gz]`, `.jsonl[.gz]` or `.tfrecord[.gz]`, see
`kerlm.data.corpus`), or the embedded default. The corpus streams (`tf.data` over the
files, shuffled by file and in a document buffer); only a bounded sample is held in
memory, to learn the vocabulary. Documents become one token stream with a separator
after each, cut into full blocks (`kerlm.preprocessing.packing`): no step is spent on
padding. A stream has no known size: give `--train_steps` (and `--validation_interval`
for evaluations and checkpoints on the way).

The embedded default (`--embedded_corpus=mixed`): the State of the Union addresses of
1790–1997 (public domain; those of 1998–2009 are dev, 2010–2021 test) plus the English text
of the other embedded sets' training splits (Wikipedia paragraphs, Debian package
descriptions, Bible verses in English); never the UCI sentiment sentences (whose imdb
domain is the held-out cross-domain test). `--embedded_corpus=sotu`: the addresses only.
`--embedded_corpus=bilingual`: `mixed` plus the Spanish Bible training verses, so that a
backbone meant for en→es translation has Spanish pieces in its vocabulary (mBART / mT5
pretrain on every language they translate). Dev and test are the held-out addresses in
every case.
"""

import dataclasses
import re

import warnings

import numpy as np

from kerlm import tokenizers
from kerlm.config import ConfigError, TaskConfig, field
from kerlm.data import bible_en_es, corpus, debian_summaries, state_of_the_union, \
    wiki_cloze_qa
from kerlm.data.readers import DataError
from kerlm.preprocessing import packing
from kerlm.tasks.base import Task


@dataclasses.dataclass
class CorpusConfig(TaskConfig):
    text_field: str = field("text", "Corpus files: the text field of JSONL records, or the "
                                    "bytes feature of TFRecord tf.train.Examples.")
    one_document_per_line: bool = field(False, "Plain-text corpus files: every non-empty "
                                               "line is a document (default: documents "
                                               "are separated by blank lines).")
    embedded_corpus: str = field("mixed", "Without --train_data: 'sotu' (State of the "
                                          "Union addresses), 'mixed' (plus the English "
                                          "text of the embedded sets' training splits) "
                                          "or 'bilingual' (mixed plus the Spanish Bible "
                                          "training verses).",
                                 choices=["mixed", "sotu", "bilingual"])
    vocabulary_sample_chars: int = field(4_000_000, "Characters of training text the "
                                                    "vocabulary is learned from (taken from "
                                                    "every source in turn).")
    shuffle_buffer: int = field(2000, "Documents in the training stream's shuffle buffer.")


def _embedded_sources(split, which):
    """`{source name: zero-argument generator of documents}` of the embedded corpus."""
    sources = {f"state_of_the_union:{split}": lambda: state_of_the_union.documents(split)}
    if which in ("mixed", "bilingual") and split == "train":
        sources.update({
            "wiki_cloze_qa:train": lambda: iter(dict.fromkeys(
                r.fields["context"] for r in wiki_cloze_qa.load("train"))),
            "debian_summaries:train": lambda: (r.fields["document"]
                                               for r in debian_summaries.load("train")),
            "bible_en_es:train": lambda: (r.fields["en"] for r in bible_en_es.load("train")),
        })
    if which == "bilingual" and split == "train":
        sources["bible_en_es:train:es"] = lambda: (r.fields["es"]
                                                   for r in bible_en_es.load("train"))
    return sources


class Corpus:
    """The documents of one split: `sources` (file paths or embedded source names) and
    `read(source)`, a generator of a source's documents. `corpus[:n]` keeps the first n
    documents (of the first sources): a small corpus for tests."""

    def __init__(self, sources, read, limit=None, sampler=None):
        self.sources, self.read, self.limit = list(sources), read, limit
        self.sampler = sampler

    def __getitem__(self, item):
        if not isinstance(item, slice) or item.start or item.step:
            raise TypeError("a Corpus takes [:n] only")
        return Corpus(self.sources, self.read, item.stop)

    def documents(self):
        """Every document, in order."""
        count = 0
        for source in self.sources:
            for document in self.read(source):
                if self.limit is not None and count >= self.limit:
                    return
                count += 1
                yield document

    def stream(self, shuffle, seed, shuffle_buffer):
        """The documents as a `tf.data.Dataset` of strings (`packing.documents`)."""
        if self.limit is not None:
            return packing.documents(lambda _: self.documents(), ["head"])
        return packing.documents(self.read, self.sources, shuffle, seed, shuffle_buffer)

    def sample(self, max_chars):
        """Texts for learning a vocabulary: documents from every source in turn until
        `max_chars` characters, cut into pieces of at most ~2,000 characters at
        sentence ends (SentencePiece skips longer "sentences"). Files are sampled by
        `kerlm.data.corpus.sample` (one open at a time, however many there are)."""
        if self.sampler is not None and self.limit is None:
            return [piece for text in self.sampler(max_chars) for piece in _pieces(text)]
        iterators = [iter(Corpus([s], self.read, self.limit).documents())
                     for s in self.sources]
        taken, pieces = 0, []
        while iterators and taken < max_chars:
            for it in list(iterators):
                document = next(it, None)
                if document is None:
                    iterators.remove(it)
                    continue
                document = document[:max_chars - taken]
                taken += len(document)
                pieces += _pieces(document)
        return pieces


def _pieces(text, size=2000):
    """`text` cut at sentence ends into pieces of at most about `size` characters."""
    out, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if current and len(current) + len(sentence) > size:
            out.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence[:size]
    return out + [current] if current else out


class PretrainingTask(Task):
    """A language-modelling objective on a plain-text corpus (see the module docstring).

    A subclass gives the tokenizer it learns (`learn_tokenizer`), what it needs of one
    (`check_tokenizer`), the separator between documents, and `examples(tokens,
    training, batch_size)`: the batches of `(features, targets, weights)` made from a
    token stream."""

    # Packed blocks have one shape, so XLA compiles the step once: x1.26 (masked LM) and
    # x1.28 (causal LM) tokens/s on CPU (bench/distribute_speed.py).
    jit_compile = True

    def __init__(self, config):
        super().__init__(config)
        self.tokenizer = None

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        return (self.options.text_field,)

    def embedded(self, split):
        sources = _embedded_sources(split, self.options.embedded_corpus)
        return Corpus(sources, lambda name: sources[name]())

    def read_file(self, path):
        """The corpus of a `--*_data` value (a comma list of paths or globs), checked in
        one streaming pass: a missing file, an empty one, undecodable bytes or a bad
        record is a one-line error naming the file (and line)."""
        options = self.options
        kwargs = dict(text_field=options.text_field,
                      one_per_line=options.one_document_per_line)
        try:
            files = corpus.resolve_files(path)
            corpus.scan(files, **kwargs)
        except DataError as e:
            raise ConfigError(str(e)) from e
        return Corpus(files, lambda f: corpus.read_documents(f, **kwargs),
                      sampler=lambda max_chars: corpus.sample(files, max_chars, **kwargs))

    def num_examples(self, records):
        return "a stream of"

    # Assets -------------------------------------------------------------------------------
    def learn_tokenizer(self, texts):
        raise NotImplementedError

    def check_tokenizer(self, tokenizer):
        """Raise a ConfigError if the objective cannot use `tokenizer`."""

    def prepare(self, train_records, model_dir):
        tokenizer = self.vocabulary(lambda: self.learn_tokenizer(
            train_records.sample(self.options.vocabulary_sample_chars)))
        self.check_tokenizer(tokenizer)
        tokenizer.save(model_dir)
        self.tokenizer = tokenizer

    def restore(self, model_dir):
        self.tokenizer = tokenizers.load(model_dir)

    @property
    def preprocessor(self):  # Task.backbone sizes a preset by its vocabulary
        return self.tokenizer

    # Features -----------------------------------------------------------------------------
    @property
    def separator_id(self):
        return self.tokenizer.end_id

    def dataset(self, records, training, batch_size=None):
        """Batches from the corpus `records`: repeated and shuffled for training (a
        stream: its size is unknown), in order once for evaluation."""
        options, train = self.options, self.config.train
        documents = records.stream(training, train.seed, options.shuffle_buffer)
        if training:
            documents = documents.repeat()
        else:  # a split of unknown size ends when it ends: Keras' warning is no news
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        tokens = packing.token_stream(documents, self.tokenizer, self.separator_id)
        return self.examples(tokens, training, batch_size or train.batch_size)

    def examples(self, tokens, training, batch_size):
        raise NotImplementedError

    # Evaluation ---------------------------------------------------------------------------
    def evaluate(self, model, records):
        """Keras' loss and metrics over the whole split (for masked_lm with masks drawn
        anew: `tf.random.set_seed` would clear the eager kernel cache, and with it a
        SentencePiece tokenizer's resource)."""
        self.compile_model(model, "adam")
        report = model.evaluate(self.dataset(records, training=False), verbose=0,
                                return_dict=True)
        report = {k: float(v) for k, v in report.items()}
        report["perplexity"] = float(np.exp(report["loss"]))
        report["num_examples"] = sum(1 for _ in records.documents())  # documents
        return report
