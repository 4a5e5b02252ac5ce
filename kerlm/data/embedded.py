"""Registry of the embedded seq2seq data sets, for tasks that need a default.

Translation pairs are looked up by (source, target) language code; each
record's fields are named by language code, so a task reads
``r.fields[source_lang]`` and ``r.fields[target_lang]``. Summarization
records have ``document`` and ``summary``.

>>> sorted("-".join(pair) for pair in TRANSLATION)
['de-en', 'en-de', 'en-es', 'es-en']
>>> test = translation_pairs("es", "en", "test")
>>> len(test), test[0].fields["ref"]
(936, 'Esth 1:1')
>>> test[0].fields["es"][:26], test[0].fields["en"][:26]
('Y ACONTECIÓ en los días de', 'Now in the days of Ahasuer')
>>> len(translation_pairs("en", "de", "dev"))
1706
>>> translation_pairs("en", "fr", "train")
Traceback (most recent call last):
...
ValueError: no embedded translation data for en-fr; available pairs: de-en, en-de, en-es, es-en
>>> r = summarization("dev")[0]
>>> len(summarization("dev")), r.fields["summary"]
(2950, 'Slide and add puzzle game for text mode')
"""

from __future__ import annotations

from typing import List

from kerlm.data import bible_en_es, debian_en_de, debian_summaries
from kerlm.data.readers import Record

__all__ = ["TRANSLATION", "SUMMARIZATION", "translation_pairs", "summarization"]

# (source language, target language) -> module with load(split) and fields named by language.
TRANSLATION = {
    ("en", "es"): bible_en_es,
    ("es", "en"): bible_en_es,
    ("en", "de"): debian_en_de,
    ("de", "en"): debian_en_de,
}
SUMMARIZATION = debian_summaries


def translation_pairs(source_lang: str, target_lang: str, split: str) -> List[Record]:
    """Records of the embedded data set for ``source_lang -> target_lang``.

    Args:
      source_lang, target_lang: language codes, e.g. "en" and "es".
      split: "train", "dev" or "test" (None for all rows).

    Raises ValueError, naming the available pairs, for a pair with no data.
    """
    module = TRANSLATION.get((source_lang, target_lang))
    if module is None:
        available = ", ".join(sorted(f"{s}-{t}" for s, t in TRANSLATION))
        raise ValueError(f"no embedded translation data for {source_lang}-{target_lang}; "
                         f"available pairs: {available}")
    return module.load(split)


def summarization(split: str) -> List[Record]:
    """Records ``{"id", "package", "document", "summary", "split"}`` of the Debian summaries."""
    return SUMMARIZATION.load(split)
