"""Data readers (JSONL/CSV/TSV), classification helpers and embedded data sets.

Pure Python: nothing here imports TensorFlow (but the TFRecord corpus reader, when used).

- :mod:`kerlm.data.readers`: ``read_records``, ``Record``, ``DataError``.
- :mod:`kerlm.data.classification`: ``LabelVocabulary``, ``texts_and_labels``.
- :mod:`kerlm.data.uci_sentiment`: the embedded UCI sentiment sentences, ``load()``.
- :mod:`kerlm.data.bible_en_es`, :mod:`kerlm.data.debian_en_de`,
  :mod:`kerlm.data.debian_summaries`: embedded translation and summarization pairs, split
  so that near-duplicates never cross splits; :mod:`kerlm.data.embedded` picks one by task.
- :mod:`kerlm.data.corpus`: plain-text corpora for pretraining (``resolve_files``,
  ``read_documents``, ``scan``, ``sample``); :mod:`kerlm.data.state_of_the_union`: the
  embedded State of the Union addresses, ``documents(split)``.
- :mod:`kerlm.data.batching`: ``bucketed_batches``, ``pad_batch``, ``batch_features``
  (length-bucketed, teacher-forcing batches; numpy) and ``sequence_ids`` (which runs a
  preprocessor, so it imports TensorFlow when called).
"""
