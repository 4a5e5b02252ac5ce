"""The config object: round trips, the task registry's flags, old config files, resume rules."""

import glob
import json
import os

import pytest
from absl import flags

from kerlm import config as config_lib
from kerlm import tasks, training
from kerlm.apps import config_flags
from kerlm.tasks import registry

DATA = os.path.join(os.path.dirname(__file__), "fixtures")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs",
                                                                              "*.flags")))


def _parse(*argv):
    values = flags.FlagValues()
    config_flags.define_config_flags(values)
    values(["prog", *argv])
    return config_flags.config_from_flags(values)


def test_save_load_round_trip(tmp_path):
    config = tasks.default_config("qa", {
        "model.preset": "encoder_small", "train.learning_rate": 3e-4,
        "data.skip_bad_rows": True, "qa.doc_stride": 64})
    config.save(str(tmp_path))
    assert tasks.load_config(str(tmp_path)) == config
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"]["preset"] == "encoder_small" and saved["version"] == 2
    # the shared sections and the task's own section only
    assert set(saved) == {"version", "task", "export_name", "data", "model", "train", "qa"}
    assert saved["qa"]["doc_stride"] == 64 and "doc_stride" not in saved["data"]


def test_unknown_keys_are_errors():
    good = tasks.default_config("sentiment").to_dict()
    with pytest.raises(ValueError, match="bogus"):
        tasks.config_from_dict({**good, "model": {"bogus": 1}})
    with pytest.raises(ValueError, match="section 'sentiment'.*doc_stride"):
        tasks.config_from_dict({**good, "sentiment": {"doc_stride": 1}})
    with pytest.raises(ValueError, match="Unknown config field"):
        config_lib.apply_overrides(tasks.default_config("sentiment"), {"train.bogus": 1})
    with pytest.raises(config_lib.ConfigError) as e:
        tasks.default_config("nope")
    assert str(e.value) == f"Unknown task 'nope'; known: {', '.join(registry.names())}"
    assert {"classification", "sentiment", "multitask", "masked_lm"} <= set(registry.names())


def test_missing_config_names_the_directory(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="apps/train.py"):
        tasks.load_config(str(tmp_path))


def test_registry_gives_the_task_choices_and_the_alias():
    assert {"classification", "sentiment", "qa", "translation", "summarization",
            "multitask"} <= set(registry.names())
    assert registry.get("sentiment") is registry.get("classification")
    values = flags.FlagValues()
    config_flags.define_config_flags(values)
    assert set(values["task"].parser.enum_values) == set(registry.names())
    # the alias keeps its name in the run (so exports keep going to saved_models/sentiment)
    sentiment = tasks.get_task(tasks.default_config("sentiment"))
    assert sentiment.name == "classification" and sentiment.export_name == "sentiment"
    topic = tasks.get_task(tasks.default_config("classification", {"export_name": "topics"}))
    assert topic.export_name == "topics"
    assert tasks.get_task(tasks.default_config("multitask")).export_name == "kerlm_multitask"


def test_flags_parse_into_config_with_explicit_fields(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--model=encoder_small\n--epochs=3\n--task=qa\n--doc_stride=64\n")
    config, explicit = _parse(f"--flagfile={flagfile}", "--mixed_precision=mixed_bfloat16",
                              "--noskip_bad_rows")
    assert config.model.preset == "encoder_small" and config.train.epochs == 3
    assert config.train.mixed_precision == "mixed_bfloat16"
    assert config.train.batch_size == config_lib.TrainConfig().batch_size
    assert config.options.doc_stride == 64
    assert explicit == {"task", "model.preset", "train.epochs", "train.mixed_precision",
                        "data.skip_bad_rows", "qa.doc_stride"}
    with pytest.raises(flags.IllegalFlagValueError):
        _parse("--strategy=nonsense")


@pytest.mark.parametrize("flagfile", FLAGFILES)
def test_every_recipe_parses_and_a_later_model_flag_wins(flagfile, monkeypatch):
    """Parse only (no checkpoint directory needed): nested flagfiles are relative to the
    repository root, and `--model=DIR` after the flagfile replaces the recipe's."""
    monkeypatch.chdir(ROOT)
    config, explicit = _parse(f"--flagfile={flagfile}")
    assert "task" in explicit and config.task in registry.names()
    if flagfile.endswith("_minilm.flags"):
        assert config.model.preset == "checkpoints/all-MiniLM-L6-v2"
    overridden, _ = _parse(f"--flagfile={flagfile}", "--model=/elsewhere/bert-base-uncased")
    assert overridden.model.preset == "/elsewhere/bert-base-uncased"
    assert overridden.train == config.train and overridden.options == config.options


def test_a_flag_of_another_task_is_refused_naming_its_task():
    with pytest.raises(config_lib.ConfigError) as e:
        _parse("--task=sentiment", "--doc_stride=64")
    assert str(e.value) == "--doc_stride is an option of --task=qa, not of --task=sentiment"
    with pytest.raises(config_lib.ConfigError, match="--beam_width is an option of "
                                                     "--task=causal_lm, --task=span_corruption, "
                                                     "--task=summarization, --task=translation,"
                                                     " not of --task=sentiment"):
        _parse("--beam_width=2")  # --task defaults to sentiment: the generating tasks have it
    # a multi-task run takes its members' options
    config, _ = _parse("--task=multitask", "--beam_width=2", "--tasks=sentiment,translation")
    assert config.options.members["translation"].beam_width == 2


def test_helpfull_groups_task_flags_under_their_task():
    values = flags.FlagValues()
    config_flags.define_config_flags(values)
    by_module = values.flags_by_module_dict()
    assert "doc_stride" in {f.name for f in by_module["kerlm task --task=qa"]}
    # sequence_length is every task's: listed under each
    for name in ("qa", "translation", "classification"):
        assert "sequence_length" in {f.name for f in by_module[f"kerlm task --task={name}"]}
    assert "doc_stride" not in {f.name for f in by_module["kerlm task --task=translation"]}


def test_multitask_members_can_differ():
    config, explicit = _parse("--task=multitask", "--sequence_length=96", "--params_override="
                              "multitask.members.qa.sequence_length=256")
    members = config.options.members
    assert members["qa"].sequence_length == 256 and members["sentiment"].sequence_length == 96
    assert "multitask.members.qa.sequence_length" in explicit
    task = tasks.get_task(config)
    assert task.tasks["qa"].options.sequence_length == 256
    assert task.tasks["translation"].options.sequence_length == 96
    with pytest.raises(config_lib.ConfigError, match="Unknown config field"):
        _parse("--task=multitask", "--params_override=multitask.members.qa.bogus=1")


@pytest.mark.parametrize("name", ["sentiment", "multitask"])
def test_config_files_of_kerlm_0x_still_load(name, tmp_path):
    """Committed config.json files written by the previous layout (every task's fields in
    data/model/train/decode/multitask) load into today's sections."""
    with open(os.path.join(DATA, f"config_v1_{name}.json")) as f:
        old = json.load(f)
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = tasks.load_config(str(tmp_path))
    assert config.task == name
    if name == "sentiment":
        assert config.model.preset == "encoder_small" and config.train.epochs == 3
        assert config.data.train_data == "train.csv"
        assert config.options.text_field == "review" and config.options.pooling == "first"
        assert config.options.sequence_length == 64
    else:
        assert config.train.train_steps == 2600 and config.options.tasks == "sentiment,translation"
        translation = config.options.members["translation"]
        assert translation.copy_attention and translation.sampler == "beam"
        assert translation.label_smoothing == 0.1 and translation.target_sequence_length == 48
        assert set(config.options.members) == {"sentiment", "translation"}
    # saved again, it is today's layout and loads equal
    config.save(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["version"] == 2
    assert tasks.load_config(str(tmp_path)) == config


def test_resume_keeps_saved_config_and_rejects_changes(tmp_path):
    saved = tasks.default_config("sentiment", {"train.epochs": 3, "model.dropout": 0.3})
    saved.save(str(tmp_path))
    default = tasks.default_config("sentiment")
    # flags at their defaults (not explicit) do not override the saved run
    config, resuming = training.resolve_config(str(tmp_path), default, set())
    assert resuming and config == saved
    # more epochs is a resumable change
    more = tasks.default_config("sentiment", {"train.epochs": 5})
    config, _ = training.resolve_config(str(tmp_path), more, {"train.epochs"})
    assert config.train.epochs == 5 and config.model.dropout == 0.3
    # a different model is not
    other = tasks.default_config("sentiment", {"model.preset": "encoder_small"})
    with pytest.raises(ValueError, match="model.preset: saved 'encoder_tiny', given 'encoder_small'"):
        training.resolve_config(str(tmp_path), other, {"model.preset"})
    # nor another task
    with pytest.raises(ValueError, match="holds a --task=sentiment run"):
        training.resolve_config(str(tmp_path), tasks.default_config("qa"), {"task"})


def test_decoding_options_are_resumable_and_task_options_are_not(tmp_path):
    saved = tasks.default_config("translation")
    saved.save(str(tmp_path))
    beam = tasks.default_config("translation", {"translation.sampler": "beam"})
    config, _ = training.resolve_config(str(tmp_path), beam, {"translation.sampler"})
    assert config.options.sampler == "beam"
    longer = tasks.default_config("translation", {"translation.target_sequence_length": 32})
    with pytest.raises(ValueError, match="translation.target_sequence_length: saved 64"):
        training.resolve_config(str(tmp_path), longer, {"translation.target_sequence_length"})
