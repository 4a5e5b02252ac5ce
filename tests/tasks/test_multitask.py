"""One encoder-decoder backbone carrying sentiment, QA, translation and summarization heads:
shared weights, mixed training, per-task logs and evaluation, one SavedModel with a
signature per task (loaded without kerlm), fine-tuning from the multi-task backbone."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_app

TASK_NAMES = ("sentiment", "qa", "translation", "summarization")
SIZES = {"train": {"sentiment": 400, "qa": 300, "translation": 800, "summarization": 800},
         "dev": dict.fromkeys(TASK_NAMES, 12), "test": dict.fromkeys(TASK_NAMES, 12)}
TINY = ["--model=encoder_decoder_tiny", "--vocabulary_size=1500", "--sequence_length=64",
        "--target_sequence_length=32", "--max_query_length=24", "--doc_stride=24",
        "--batch_size=16", "--learning_rate=1e-3", "--log_every_steps=10",
        "--max_decode_length=8"]
INPUTS = {"sentiment": ["A wonderful phone, I love it.", "Terrible, it broke at once."],
          "translation": ["In the beginning God created the heavens and the earth."],
          "summarization": ["A library for parsing JSON documents in C, with a small API."],
          "qa": [{"question": "Who wrote War and Peace?",
                  "context": "War and Peace is a novel by Leo Tolstoy, published in 1869."}]}


def write_task_files(root):
    """`root/<split>/<task>.jsonl`: the first records of each task's embedded splits."""
    from kerlm import tasks
    dirs = {}
    for split, sizes in SIZES.items():
        dirs[split] = root / split
        dirs[split].mkdir()
        for name, n in sizes.items():
            records = tasks.get_task(tasks.default_config(name)).embedded(split)[:n]
            with open(dirs[split] / f"{name}.jsonl", "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r.fields, ensure_ascii=False) + "\n")
    return {split: str(d) for split, d in dirs.items()}


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    data = write_task_files(root)
    model_dir, export_dir = str(root / "model"), str(root / "exports")
    result = run_app("train", "--task=multitask", *TINY, "--train_steps=40",
                     "--mixture=temperature", f"--train_data={data['train']}",
                     f"--eval_data={data['dev']}", f"--test_data={data['test']}",
                     f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    return {"model_dir": model_dir, "data": data, "root": root, "stdout": result.stdout,
            "log": result.stderr,
            "export_path": os.path.join(export_dir, "kerlm_multitask", "1")}


def load_run(model_dir):
    from kerlm import tasks, training
    return tasks.restore_task(model_dir), training.load_model(model_dir)


def test_mixture_rates_and_batch_split():
    from kerlm.tasks.multitask import mixture_rates, split_batch
    sizes = {"a": 800, "b": 200, "c": 50}
    proportional = mixture_rates(sizes, "proportional")
    assert proportional == pytest.approx({"a": 800 / 1050, "b": 200 / 1050, "c": 50 / 1050})
    assert mixture_rates(sizes, "equal") == pytest.approx(dict.fromkeys("abc", 1 / 3))
    tempered = mixture_rates(sizes, "temperature", temperature=2.0)  # sqrt: 28.3, 14.1, 7.1
    assert tempered == pytest.approx({"a": 4 / 7, "b": 2 / 7, "c": 1 / 7})
    assert mixture_rates(sizes, "temperature", temperature=1.0) == pytest.approx(proportional)
    split = split_batch(tempered, 64)
    assert sum(split.values()) == 64 and split["a"] > split["b"] > split["c"] >= 1
    assert split_batch(proportional, 3) == {"a": 1, "b": 1, "c": 1}
    from kerlm.config import ConfigError
    with pytest.raises(ConfigError, match="cannot hold one example of each"):
        split_batch(proportional, 2)


def test_config_errors_name_the_flag(tmp_path):
    from kerlm import tasks
    from kerlm.config import ConfigError
    with pytest.raises(ConfigError, match="--tasks='sentiment,parsing'"):
        tasks.default_config("multitask", {"multitask.tasks": "sentiment,parsing"})
    (tmp_path / "sentiment.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"expected one file qa\.<jsonl.*found none"):
        tasks.get_task(tasks.default_config("multitask", {"multitask.tasks": "sentiment,qa",
                                                          "data.train_data": str(tmp_path)}))


def test_heads_share_one_backbone_and_a_step_on_one_task_moves_the_others(multitask_run):
    import keras
    import tensorflow as tf
    task, model = load_run(multitask_run["model_dir"])
    backbone = model.backbone
    assert all(head.backbone is backbone for head in model.heads.values())
    backbone_ids = {id(v) for v in backbone.weights}
    head_only = [v for head in model.heads.values() for v in head.weights
                 if id(v) not in backbone_ids]
    # Each variable once: the backbone's, then what each head adds (no copies).
    assert len({id(v) for v in model.weights}) == len(model.weights) == \
        len(backbone.weights) + len(head_only)
    assert {v.path.split("/")[0] for v in head_only} >= {"logits", "span_logits"}

    records = task.read("dev")
    probes = {name: next(iter(sub.dataset(records[name], training=False)))[0]
              for name, sub in task.tasks.items()}
    before = {name: np.asarray(model.heads[name](x, training=False))
              for name, x in probes.items()}
    task.batch_sizes = dict.fromkeys(TASK_NAMES, 4)
    task.compile_model(model, keras.optimizers.SGD(0.5))
    x, y = probes["sentiment"], next(iter(task.tasks["sentiment"].dataset(
        records["sentiment"], training=False)))[1]
    model.fit(tf.data.Dataset.from_tensors(({"sentiment": x}, {"sentiment": y})), verbose=0)
    after = {name: np.asarray(model.heads[name](x, training=False))
             for name, x in probes.items()}
    for name in TASK_NAMES:  # a sentiment-only step changed every task's outputs
        assert np.abs(after[name] - before[name]).max() > 1e-4, name


def test_training_logs_per_task_losses_and_metrics(multitask_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    log = multitask_run["log"]
    assert "Training multitask: 2300 examples" in log
    logs = os.path.join(multitask_run["model_dir"], "logs")
    tags = set()
    for sub in ("train", "validation"):
        accumulator = EventAccumulator(os.path.join(logs, sub)).Reload()
        tags |= {f"{sub}/{t}" for kind in ("tensors", "scalars")
                 for t in accumulator.Tags()[kind]}
    for tag in ("epoch_sentiment_loss", "epoch_sentiment_accuracy", "epoch_qa_loss",
                "epoch_qa_span_accuracy", "epoch_translation_loss",
                "epoch_translation_token_accuracy", "epoch_summarization_perplexity"):
        assert f"train/{tag}" in tags and f"validation/{tag}" in tags, tag
    assert "validation/translation_examples" in tags
    assert "validation/summarization_examples" in tags
    dev = json.load(open(os.path.join(multitask_run["model_dir"], "dev_metrics.json")))
    assert 0.0 <= dev["sentiment/accuracy"] <= 1.0 and "qa/exact_match" in dev
    assert "translation/bleu" in dev and "summarization/rougeL" in dev


def test_evaluate_reports_every_task_beside_its_baselines(multitask_run):
    model_dir = multitask_run["model_dir"]
    result = run_app("evaluate", f"--model_dir={model_dir}")
    report = json.load(open(os.path.join(model_dir, "test_metrics.json")))
    model = report["model"]
    for key in ("sentiment/accuracy", "qa/exact_match", "qa/f1", "translation/bleu",
                "summarization/rougeL"):
        assert isinstance(model[key], float), key
    assert {"sentiment/bag_of_words_baseline", "qa/sentence_overlap_baseline",
            "translation/copy_source_baseline"} <= set(report)
    assert any(k.startswith("summarization/lead_") for k in report)
    for name in TASK_NAMES:
        assert f"{name}:" in result.stdout


def test_predict_answers_inputs_naming_their_task(multitask_run):
    lines = [json.dumps({"task": name, **({"text": item} if isinstance(item, str) else item)})
             for name, items in INPUTS.items() for item in items]
    result = run_app("predict", f"--model_dir={multitask_run['model_dir']}",
                     *[f"--text={line}" for line in lines])
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["task"] for a in answers] == [json.loads(line)["task"] for line in lines]
    assert answers[0]["label"] in answers[0]["probabilities"]
    qa = next(a for a in answers if a["task"] == "qa")
    context = INPUTS["qa"][0]["context"]
    assert context[qa["start"]:qa["end"]] == qa["answer"]
    assert all(isinstance(a["output"], str) for a in answers
               if a["task"] in ("translation", "summarization"))
    bad = run_app("predict", f"--model_dir={multitask_run['model_dir']}",
                  '--text={"task": "parsing", "text": "x"}', check=False)
    assert bad.returncode == 2 and '"task" must be one of sentiment, qa' in bad.stderr


FRESH_PROCESS = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401 (registers the ops)
assert "kerlm" not in sys.modules
loaded = tf.saved_model.load(sys.argv[1])
inputs = json.loads(sys.argv[2])
out = {"signatures": sorted(loaded.signatures)}
for signature, kwargs in inputs.items():
    result = loaded.signatures[signature](**{k: tf.constant(v) for k, v in kwargs.items()})
    out[signature] = {k: v.numpy().tolist() for k, v in result.items()}
print(json.dumps(out, default=lambda b: b.decode("utf-8")))
"""


def directory_size(path, sub=""):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(path, sub, "**"),
                                                      recursive=True) if os.path.isfile(f))


def test_one_savedmodel_with_a_signature_per_task_and_one_copy_of_the_weights(
        multitask_run, tmp_path):
    from kerlm import export
    path = multitask_run["export_path"]
    inputs = {"sentiment": {"text": INPUTS["sentiment"]},
              "serving_default": {"text": INPUTS["sentiment"]},
              "qa": {"question": [INPUTS["qa"][0]["question"]],
                     "context": [INPUTS["qa"][0]["context"]]},
              "translate": {"text": INPUTS["translation"]},
              "summarize": {"text": INPUTS["summarization"]}}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, path, json.dumps(inputs)],
                            capture_output=True, text=True, timeout=300, check=True)
    served = json.loads(result.stdout)
    assert served["signatures"] == ["qa", "sentiment", "serving_default", "summarize",
                                    "translate"]
    assert served["serving_default"] == served["sentiment"]

    task, model = load_run(multitask_run["model_dir"])
    expected = task.predict(model, [json.dumps({"task": name, **(
        {"text": item} if isinstance(item, str) else item)})
        for name, items in INPUTS.items() for item in items])
    by_task = {}
    for answer in expected:
        by_task.setdefault(answer["task"], []).append(answer)
    assert [s.encode() for s in served["sentiment"]["label"]] == \
        [a["label"].encode() for a in by_task["sentiment"]]
    assert served["qa"]["answer"] == [by_task["qa"][0]["answer"]]
    assert served["translate"]["text"] == [by_task["translation"][0]["output"]]
    assert served["summarize"]["text"] == [by_task["summarization"][0]["output"]]
    assert os.path.exists(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))

    # The same heads exported one by one: four copies of the backbone.
    singles = [export.export_task(sub, model.heads[name], str(tmp_path), name=name)
               for name, sub in task.tasks.items()]
    single_weights = sum(directory_size(p, "variables") for p in singles)
    multi_weights = directory_size(path, "variables")
    print(f"variables: multi-task {multi_weights} bytes, four exports {single_weights}; "
          f"whole: {directory_size(path)} vs {sum(directory_size(p) for p in singles)}")
    assert multi_weights < 0.35 * single_weights
    assert directory_size(path) < 0.6 * sum(directory_size(p) for p in singles)


def test_fine_tune_heads_on_the_multitask_backbone(multitask_run, tmp_path):
    from kerlm import training
    backbone_dir = os.path.join(multitask_run["model_dir"], "backbone")
    assert os.path.exists(os.path.join(backbone_dir, "sentencepiece.model"))
    data = multitask_run["data"]
    frozen = str(tmp_path / "sentiment")
    run_app("train", "--task=sentiment", f"--model={backbone_dir}", "--freeze_backbone",
            "--sequence_length=64", "--train_steps=8", "--batch_size=16",
            f"--train_data={data['train']}/sentiment.jsonl",
            f"--eval_data={data['dev']}/sentiment.jsonl", f"--model_dir={frozen}")
    _, multitask_model = load_run(multitask_run["model_dir"])
    tuned = training.load_model(frozen)
    encoder = [w for w in tuned.backbone.weights if w.path.startswith("encoder_")]
    assert encoder
    original = {w.path: np.asarray(w) for w in multitask_model.backbone.weights}
    for w in encoder:  # frozen: the shared encoder is exactly the multi-task one
        np.testing.assert_array_equal(np.asarray(w), original[w.path])
    assert open(os.path.join(frozen, "sentencepiece.model"), "rb").read() == \
        open(os.path.join(backbone_dir, "sentencepiece.model"), "rb").read()

    translation = str(tmp_path / "translation")
    run_app("train", "--task=translation", f"--model={backbone_dir}", "--train_steps=4",
            "--batch_size=16", "--max_decode_length=8", "--sequence_length=64",
            f"--train_data={data['train']}/translation.jsonl",
            f"--eval_data={data['dev']}/translation.jsonl", f"--model_dir={translation}")
    moved = training.load_model(translation).backbone
    changed = [w.path for w in moved.weights
               if not np.array_equal(np.asarray(w), original[w.path])]
    assert changed  # not frozen: fine-tuning moved the backbone


def test_models_config_serves_the_multitask_model_beside_a_single_task_one(
        multitask_run, trained_run, tmp_path):
    """configs/models.config, its paths pointed at this test's exports, on the embedded
    server; a client of tensorflow_serving.apis (no kerlm) calls every signature."""
    import grpc
    import requests
    import tensorflow as tf
    from tensorflow_serving.apis import (get_model_metadata_pb2, predict_pb2,
                                         prediction_service_pb2_grpc)

    from conftest import ROOT, free_port, start_server, wait_until_serving
    from kerlm.serving import parse_model_config
    committed = open(os.path.join(ROOT, "configs", "models.config")).read()
    assert parse_model_config(committed)["kerlm_multitask"] == "saved_models/kerlm_multitask"
    exports = {"kerlm_multitask": os.path.dirname(multitask_run["export_path"]),
               "sentiment": os.path.join(trained_run["export_dir"], "sentiment")}
    lines = [line for line in committed.splitlines()
             if "config {" not in line or any(f'"{name}"' in line for name in exports)]
    text = "\n".join(lines)
    for name, path in exports.items():
        text = text.replace(f'"saved_models/{name}"', json.dumps(path))
    config = tmp_path / "models.config"
    config.write_text(text)
    assert parse_model_config(text) == exports

    port = free_port()
    process, url, log = start_server(tmp_path, f"--port={port}", f"--model_config_file={config}")
    try:
        wait_until_serving(process, url + "/v1/models/kerlm_multitask", log)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}"))
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "kerlm_multitask"
        metadata = get_model_metadata_pb2.SignatureDefMap()
        stub.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(metadata)
        assert set(metadata.signature_def) - {"__saved_model_init_op"} == {
            "sentiment", "qa", "translate", "summarize", "serving_default"}
        calls = {"sentiment": {"text": INPUTS["sentiment"]},
                 "qa": {"question": [INPUTS["qa"][0]["question"]],
                        "context": [INPUTS["qa"][0]["context"]]},
                 "translate": {"text": INPUTS["translation"]},
                 "summarize": {"text": INPUTS["summarization"]}}
        outputs = {}
        for signature, inputs in calls.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "kerlm_multitask"
            request.model_spec.signature_name = signature
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            response = stub.Predict(request, timeout=60)
            outputs[signature] = {k: tf.make_ndarray(v).tolist()
                                  for k, v in response.outputs.items()}
        assert len(outputs["sentiment"]["label"]) == 2
        context = INPUTS["qa"][0]["context"]
        start, end = outputs["qa"]["start"][0], outputs["qa"]["end"][0]
        assert context[start:end].encode() == outputs["qa"]["answer"][0]
        assert set(outputs["translate"]) == {"text"} and set(outputs["summarize"]) == {"text"}
        single = requests.post(url + "/v1/models/sentiment:predict",
                               json={"instances": INPUTS["sentiment"]}, timeout=60).json()
        assert len(single["predictions"]) == 2
        assert all({"label", "probabilities"} <= set(p) for p in single["predictions"])
        default = requests.post(url + "/v1/models/kerlm_multitask:predict",
                                json={"instances": INPUTS["sentiment"]}, timeout=60).json()
        assert [p["label"] for p in default["predictions"]] == \
            [label.decode() for label in outputs["sentiment"]["label"]]
    finally:
        process.terminate()
        process.wait(timeout=10)
