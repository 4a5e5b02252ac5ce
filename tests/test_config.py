"""The config object: round trips, flag mapping, resume rules."""

import json

import pytest

from kerlm import config as config_lib
from kerlm import training


def test_save_load_round_trip(tmp_path):
    config = config_lib.apply_overrides(config_lib.Config(), {
        "model.preset": "encoder_small", "train.learning_rate": 3e-4, "data.skip_bad_rows": True})
    config.save(str(tmp_path))
    assert config_lib.Config.load(str(tmp_path)) == config
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model"]["preset"] == "encoder_small"


def test_unknown_keys_are_errors():
    with pytest.raises(ValueError, match="bogus"):
        config_lib.Config.from_dict({"model": {"bogus": 1}})
    with pytest.raises(ValueError, match="Unknown config field"):
        config_lib.apply_overrides(config_lib.Config(), {"train.bogus": 1})


def test_missing_config_names_the_directory(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="apps/train.py"):
        config_lib.Config.load(str(tmp_path))


def test_flags_parse_into_config_with_explicit_fields(tmp_path):
    from absl import flags
    from kerlm.apps import flags as kerlm_flags
    values = flags.FlagValues()
    kerlm_flags.define_config_flags(values)
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--model=encoder_small\n--epochs=3\n")
    values(["prog", f"--flagfile={flagfile}", "--mixed_precision=mixed_bfloat16",
            "--noskip_bad_rows"])
    config, explicit = kerlm_flags.config_from_flags(values)
    assert config.model.preset == "encoder_small" and config.train.epochs == 3
    assert config.train.mixed_precision == "mixed_bfloat16"
    assert config.train.batch_size == config_lib.TrainConfig().batch_size
    assert explicit == {"model.preset", "train.epochs", "train.mixed_precision",
                        "data.skip_bad_rows"}
    with pytest.raises(flags.IllegalFlagValueError):
        values(["prog", "--strategy=nonsense"])


def test_resume_keeps_saved_config_and_rejects_changes(tmp_path):
    saved = config_lib.apply_overrides(config_lib.Config(), {"train.epochs": 3,
                                                             "model.dropout": 0.3})
    saved.save(str(tmp_path))
    # flags at their defaults (not explicit) do not override the saved run
    config, resuming = training.resolve_config(str(tmp_path), config_lib.Config(), set())
    assert resuming and config == saved
    # more epochs is a resumable change
    more = config_lib.apply_overrides(config_lib.Config(), {"train.epochs": 5})
    config, _ = training.resolve_config(str(tmp_path), more, {"train.epochs"})
    assert config.train.epochs == 5 and config.model.dropout == 0.3
    # a different model is not
    other = config_lib.apply_overrides(config_lib.Config(), {"model.preset": "encoder_small"})
    with pytest.raises(ValueError, match="model.preset: saved 'encoder_tiny', given 'encoder_small'"):
        training.resolve_config(str(tmp_path), other, {"model.preset"})
