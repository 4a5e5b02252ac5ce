"""Quality of the README's sentiment recipe, in domain and across domains.

    python bench/sentiment_quality.py [--flagfile=configs/sentiment.flags] [--workdir=DIR]

Runs the committed recipe twice through the real apps, each beside the bag-of-words
logistic-regression baseline trained on the same data:
  1. in domain: the embedded train/dev/test split (all three domains);
  2. across domains: train and dev on the amazon and yelp sentences of the train and dev
     splits, test on every imdb sentence (all three splits: none was seen in training).
Prints a table (accuracy, macro-F1, wall time) and a final JSON line.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def app(name, *args):
    subprocess.run([sys.executable, os.path.join(ROOT, "apps", f"{name}.py"), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"text": r.fields["text"], "label": r.fields["label"]}) + "\n")
    return path


def run_recipe(name, flagfile, workdir, data_flags=()):
    model_dir = os.path.join(workdir, name)
    start = time.perf_counter()
    app("train", f"--flagfile={flagfile}", f"--model_dir={model_dir}", *data_flags)
    train_seconds = time.perf_counter() - start
    app("evaluate", f"--model_dir={model_dir}")
    with open(os.path.join(model_dir, "test_metrics.json")) as f:
        report = json.load(f)
    return {"train_seconds": round(train_seconds, 1), **{
        who: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["num_examples"]}
        for who, m in report.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flagfile", default=os.path.join(ROOT, "configs", "sentiment.flags"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="kerlm_quality_")
    os.makedirs(workdir, exist_ok=True)
    from kerlm.data import uci_sentiment

    cross = {split: write_jsonl(os.path.join(workdir, f"cross_{split or 'all'}.jsonl"),
                                uci_sentiment.load(split, domains=domains))
             for split, domains in [("train", ["amazon", "yelp"]), ("dev", ["amazon", "yelp"]),
                                    (None, ["imdb"])]}
    results = {
        "in_domain": run_recipe("in_domain", args.flagfile, workdir),
        "cross_domain": run_recipe("cross_domain", args.flagfile, workdir, [
            f"--train_data={cross['train']}", f"--eval_data={cross['dev']}",
            f"--test_data={cross[None]}"]),
    }
    print(f"{'setting':14s} {'system':22s} {'accuracy':>8s} {'macro-F1':>8s} {'n':>5s}")
    for setting, result in results.items():
        for who in ["model", "bag_of_words_baseline"]:
            m = result[who]
            print(f"{setting:14s} {who:22s} {m['accuracy']:8.4f} {m['macro_f1']:8.4f} {m['n']:5d}")
        print(f"{setting:14s} training took {result['train_seconds']:.0f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
