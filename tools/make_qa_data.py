"""Rebuild kerlm/data/wiki_cloze_qa/{train,dev,test}.json.gz from the shared SQuAD file.

    python tools/make_qa_data.py ../shared/data/qa/wiki_cloze_squad.json

Split by article (never by question or paragraph: questions of one article share its
sentences and names): in file order, article i goes to dev if i % 10 == 8, to test if
i % 10 == 9, else to train. Output is byte-identical on every run (gzip mtime 0).
"""

import gzip
import json
import os
import sys

OUT = os.path.join(os.path.dirname(__file__), "..", "kerlm", "data", "wiki_cloze_qa")


def split_of(index):
    return {8: "dev", 9: "test"}.get(index % 10, "train")


def main(source):
    with open(source, encoding="utf-8") as f:
        squad = json.load(f)
    splits = {name: [] for name in ("train", "dev", "test")}
    for i, article in enumerate(squad["data"]):
        splits[split_of(i)].append(article)
    for name, articles in splits.items():
        data = json.dumps({"version": squad.get("version", "1.1"), "data": articles},
                          ensure_ascii=False, sort_keys=True).encode("utf-8")
        with open(os.path.join(OUT, f"{name}.json.gz"), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
                f.write(data)
        questions = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
        paragraphs = sum(len(a["paragraphs"]) for a in articles)
        print(f"{name}: {len(articles)} articles, {paragraphs} paragraphs, {questions} questions")


if __name__ == "__main__":
    main(sys.argv[1])
