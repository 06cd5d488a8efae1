"""``hwnas search --config run.toml`` (issue 33): a RunConfig read from a TOML file, keys by setting or flag name,
unknown keys and wrong types refused in one line naming the key and the file, flags given on the command line over
the file; ``--resume`` prints the run's effective settings, ``--print-config`` prints them and stops."""

from __future__ import annotations

import json
import sys

import pytest

from fault_cases import _nb201_tables
from hwnas.search.config import ConfigError, RunConfig
from hwnas.search.config_file import dump_toml, load_run_config, read_config_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _file(tmp_path, text: str, name: str = "run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_settings_and_flag_spellings_make_a_run_config(tmp_path):
    path = _file(tmp_path, """
latency-budget = "800us"
time-budget = "1h30m"
max-trainings = 40
space = "nb201"
space_options = { channels = 8 }
input-shape = "3x16x16"
dataset = "images"
epochs = 5
data-fraction = 0.5
train-equivalent = true
no-transfer = true
measure_threads = 2
[recipe]
batch_size = 32
""")
    config = load_run_config(path)
    assert config.budget_ms == pytest.approx(0.8) and config.time_budget_s == 5400.0
    assert config.max_trainings == 40 and config.space == "nb201" and config.space_options == {"channels": 8}
    assert config.dataset_input_shape == (3, 16, 16) and config.dataset == "images"
    assert (config.recipe.epochs, config.recipe.data_fraction, config.recipe.batch_size) == (5, 0.5, 32)
    assert config.skip_equivalent is False and config.transfer is False and config.measure_threads == 2
    # Overrides (what the command line gives) go over the file; tables key by key.
    over = load_run_config(path, max_trainings=9, recipe={"batch_size": 8}, space_options={"cells": 2})
    assert over.max_trainings == 9 and over.recipe.batch_size == 8 and over.recipe.epochs == 5
    assert over.space_options == {"channels": 8, "cells": 2}


@pytest.mark.parametrize("text, needles", [
    ("latency-budget = '2ms'\nmax_trainigs = 3\n", ["'max_trainigs'", "unknown setting"]),
    ("latency-budget = '2ms'\n[runner]\nx = 1\n", ["'runner'", "unknown setting"]),
    ("latency-budget = '2ms'\ndataset_key = 'digits'\n", ["'dataset_key'", "recorded by the run"]),
    ("latency-budget = '2ms'\nmax-trainings = 'ten'\n", ["max-trainings must be a whole number", "'ten'"]),
    ("latency-budget = '2ms'\nexplore = true\n", ["explore must be a number"]),
    ("latency-budget = '2ms'\nspace_options = 3\n", ["space_options must be a table"]),
    ("latency-budget = '2ms'\ntransfer_from = 'pi4'\n", ["transfer_from must be a list of text"]),
    ("latency-budget = '2 parsecs'\n", ["latency-budget"]),
    ("latency-budget = '2ms'\nbudget_ms = 3.0\n", ["both set budget_ms"]),
    ("latency-budget = '2ms'\nepochs = 3\n[recipe]\nepochs = 4\n", ["epochs is given both"]),
    ("latency-budget = '2ms'\n[recipe]\nspeed = 4\n", ["unknown recipe setting 'speed'"]),
    ("max-trainings = 3\n", ["no latency budget"]),
    ("max-trainings = \n", ["is not TOML"]),
])
def test_bad_files_are_refused_in_one_line_naming_key_and_file(tmp_path, text, needles):
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_run_config(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, message


def test_dump_toml_reads_back_to_the_same_settings(tmp_path):
    config = RunConfig(budget_ms=1.25, space="nb201", space_options={"channels": 8, "name": "a b"},
                       dataset='my "photos"/', dataset_input_shape=(1, 8, 8), max_measurements=99,
                       transfer_from=("pi4", "pi5"), explore=0.0, skip_equivalent=False, time_budget_s=60.0,
                       dataset_name="photos", dataset_key="folder:photos@0123[1x8x8]", num_classes=2)
    text = dump_toml(config)
    assert "# dataset_key = " in text  # recorded values are comments, not settings
    again = load_run_config(_file(tmp_path, text))
    recorded = {"dataset_name": None, "dataset_key": None, "num_classes": None}
    assert again == config.replace(**recorded)
    # the same through the public name, with overrides
    import hwnas

    assert hwnas.load_run_config(_file(tmp_path, text, "c.toml"), seed=5) == config.replace(**recorded, seed=5)
    assert read_config_file(_file(tmp_path, dump_toml(RunConfig(budget_ms=2.0)), "d.toml"))["budget_ms"] == 2.0


@pytest.mark.slow
def test_search_reads_the_file_under_the_flags_and_resume_prints_its_settings(cli, tmp_path):
    _nb201_tables(tmp_path)
    path = _file(tmp_path, f"""
space = "nb201"
accuracy-table = "{tmp_path / 'acc.csv'}"
latency-table = "{tmp_path / 'lat.csv'}"
latency-budget = "0.7ms"
initial-trainings = 3
candidates-per-round = 2
archs-per-round = 60
profile-samples = 20
max-trainings = 4
controller = "random"
""")
    common = ["--profiles-dir", tmp_path / "profiles", "--store", tmp_path / "evals.sqlite"]
    shown = cli("search", "--config", path, "--max-trainings", "5", "--print-config", *common)
    assert shown.exit_code == 0, shown.stderr
    printed = tomllib.loads(shown.stdout)
    assert printed["max_trainings"] == 5 and printed["controller"] == "random" and printed["space"] == "nb201"
    assert not (tmp_path / "runs").exists()  # --print-config starts nothing

    searched = cli("search", "--config", path, "--max-trainings", "5", "--run-dir", tmp_path / "run", "--seed", "1",
                   *common)
    assert searched.exit_code == 0, searched.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["max_trainings"] == 5 and config["space"] == "nb201" and config["candidates_per_round"] == 2
    assert config["seed"] == 1 and config["controller"] == "random"

    resumed = cli("search", "--resume", tmp_path / "run", "--max-trainings", "6")
    assert resumed.exit_code == 0, resumed.stderr
    block = resumed.output.split("\n\n[recipe]")[0]
    assert block.startswith(f"# resuming {tmp_path / 'run'} with its settings")
    settings = tomllib.loads(block)
    assert settings["max_trainings"] == 6 and settings["space"] == "nb201" and settings["seed"] == 1
    refused = cli("search", "--resume", tmp_path / "run", "--config", path)
    assert refused.exit_code == 2 and "drop --config" in refused.stderr


def test_search_refuses_a_bad_file_in_one_line(cli, tmp_path):
    path = _file(tmp_path, "latency-budget = '2ms'\nmax_trainigs = 3\n")
    result = cli("search", "--config", path, "--profiles-dir", tmp_path / "profiles")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "max_trainigs" in lines[0] and str(path) in lines[0]
    no_budget = cli("search", "--config", _file(tmp_path, "seed = 3\n", "b.toml"), "--print-config")
    assert no_budget.exit_code == 2 and "no latency budget" in no_budget.stderr
