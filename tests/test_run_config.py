"""The typed run configuration and the Python API on it: one set of defaults, checked values, versioned JSON,
resume overrides written back, a user's accuracy function as the accuracy source, typed events."""

from __future__ import annotations

import json

import pytest

import hwnas
from hwnas.search.config import ONNXRUNTIME_SCHEMA_VERSION, SCHEMA_VERSION, ConfigError, RunConfig
from hwnas.search.rundir import RunDir, RunDirError
from hwnas.search.state import SearchSettings

BUDGET_MS = 0.7


def test_the_command_lines_defaults_are_the_configurations():
    from hwnas.cli.benchmark_cmds import BENCHMARK_TRAININGS, benchmark_cmd
    from hwnas.cli.search_cmds import search_cmd

    for command in (search_cmd, benchmark_cmd):
        for param in command.params:
            name = {"dataset_spec": "dataset", "space_name": "space", "store_path": "store"}.get(param.name, param.name)
            if name in RunConfig.__dataclass_fields__ and RunConfig.default(name) is not None:
                expected = BENCHMARK_TRAININGS if (command is benchmark_cmd and name == "max_trainings") \
                    else RunConfig.default(name)
                assert param.default == expected, (command.name, name)
    # and the loop's own defaults are the configuration's (each written once)
    config, settings = RunConfig(budget_ms=1.0), SearchSettings(budget_ms=1.0)
    for name in ("max_trainings", "initial_trainings", "candidates_per_round", "archs_per_round", "explore",
                 "local_search_steps", "acquisition", "skip_equivalent"):
        assert getattr(config.settings(), name) == getattr(settings, name) == getattr(config, name), name


@pytest.mark.parametrize("changes, message", [
    ({"budget_ms": 0}, "budget_ms must be a positive number"),
    ({"budget_ms": "fast"}, "budget_ms must be a positive number"),
    ({"max_trainings": 0}, "max_trainings must be a whole number of at least 1"),
    ({"max_trainings": 2.5}, "max_trainings must be a whole number"),
    ({"input_shape": (1, 8)}, "input_shape must be three positive whole numbers"),
    ({"estimator": "magic"}, "estimator must be one of"),
    ({"recipe": {"lr": -1}}, "recipe:"),
    ({"skip_equivalent": "yes"}, "skip_equivalent must be true or false"),
])
def test_bad_settings_are_one_clear_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**{"budget_ms": 1.0, **changes})


def test_resolved_checks_names_and_records_the_data_set(latency_table):
    config = RunConfig(budget_ms=BUDGET_MS, space="nb201", latency_table=str(latency_table)).resolved()
    assert (config.input_shape, config.num_classes, config.dataset_name) == ((1, 8, 8), 10, "digits")
    assert config.device == "table-lat" and config.dataset_key and config.created
    with pytest.raises(ConfigError, match="unknown controller 'nope'"):
        RunConfig(budget_ms=1.0, controller="nope").resolved()
    with pytest.raises(ConfigError, match="both give the latency"):
        RunConfig(budget_ms=1.0, device="pi4", latency_table=str(latency_table)).resolved()
    with pytest.raises(hwnas.HwnasError, match="unknown data set"):
        RunConfig(budget_ms=1.0, dataset="no-such-data").resolved()


def test_json_round_trip_and_old_files():
    config = RunConfig(budget_ms=0.4, dataset="digits", measure_threads=2, input_shape=(1, 8, 8), num_classes=10,
                       recipe=hwnas.Recipe(epochs=3), space_options={})
    document = config.to_json()
    assert document["schema_version"] == ONNXRUNTIME_SCHEMA_VERSION and document["epochs"] == 3
    assert RunConfig.from_json(json.loads(json.dumps(document))) == config
    # a run in another runtime writes a schema that hwnas versions without runtimes refuse to resume
    other = RunConfig(budget_ms=0.4, runtime="openvino", input_shape=(1, 8, 8), num_classes=10).to_json()
    assert other["schema_version"] == SCHEMA_VERSION > ONNXRUNTIME_SCHEMA_VERSION
    assert RunConfig.from_json(other).runtime == "openvino"
    # a config.json written before runtimes existed measures in onnxruntime
    assert RunConfig.from_json({k: v for k, v in document.items() if k != "runtime"}).runtime == "onnxruntime"
    # a config.json of hwnas 0.1 (schema 1): 'threads' was the measurement threads, no recipe before epochs
    old = {"schema_version": 1, "space": "mobilenet", "dataset": "digits", "budget_ms": 0.4, "threads": 4,
           "input_shape": [1, 8, 8], "num_classes": 10, "epochs": 7, "some_old_key": True}
    read = RunConfig.from_json(old)
    assert read.measure_threads == 4 and read.recipe.epochs == 7 and read.conditions().threads == 4
    with pytest.raises(ConfigError, match="newer than this hwnas"):
        RunConfig.from_json({**document, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ConfigError, match="missing 'num_classes'"):
        RunConfig.from_json({k: v for k, v in document.items() if k != "num_classes"})


def test_update_config_writes_back_and_checks(tmp_path):
    run = RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0, input_shape=(1, 8, 8), num_classes=10))
    run.update_config(max_trainings=50)
    assert json.loads((run.path / "config.json").read_text())["max_trainings"] == 50
    assert RunDir.open(run.path).config.max_trainings == 50
    with pytest.raises(RunDirError, match="max_trainings"):
        run.update_config(max_trainings=-1)
    with pytest.raises(RunDirError, match="resolved configuration"):
        RunDir.create(tmp_path / "other", RunConfig(budget_ms=1.0))


def accuracy_of(s: str) -> float:
    return 0.5 + 0.07 * s.count("nor_conv_3x3") + 0.03 * s.count("nor_conv_1x1")


def fake_accuracy(model, arch) -> float:
    """An 'own training loop' for the tests: the model must be a real module for the run's task."""
    import torch

    out = model(torch.zeros(1, 1, 8, 8))
    assert out.shape == (1, 10)
    return accuracy_of(arch.string)


def test_an_accuracy_function_drives_a_search_and_resumes_only_with_it(cli, latency_table, tmp_path):
    events = []

    class Record(hwnas.SearchCallback):
        def on_event(self, event):
            events.append(type(event).__name__)

        def on_trained(self, event):
            events.append(("trained", event.record.arch, event.record.accuracy))

    config = RunConfig(budget_ms=BUDGET_MS, space="nb201", latency_table=str(latency_table), max_trainings=4,
                       initial_trainings=3, candidates_per_round=1, archs_per_round=60, profile_samples=20,
                       predictor_options={"ensemble_size": 1, "n_estimators": 20})
    result = hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=fake_accuracy, callbacks=[Record()])
    assert isinstance(result, hwnas.SearchResult) and result.trainings_used == 4
    assert result.best.latency_ms <= BUDGET_MS and result.best.accuracy == accuracy_of(result.best.arch)
    trained = [e for e in events if isinstance(e, tuple)]
    assert len(trained) == 4 and {"SearchStarted", "InitialPhase", "SearchFinished"} <= set(events)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["accuracy_function"].endswith("fake_accuracy")

    # the command line cannot resume it: its accuracies come from a Python function
    line = cli("search", "--resume", tmp_path / "run", "--max-trainings", "6")
    assert line.exit_code == 1 and "Python function" in line.stderr and len(line.stderr.strip().splitlines()) == 1
    # Python can, with the function again: the larger budget is written back and spent
    more = hwnas.resume_search(tmp_path / "run", max_trainings=6, accuracy_fn=fake_accuracy)
    assert more.trainings_used == 6 and RunDir.open(tmp_path / "run").config.max_trainings == 6
    assert hwnas.load_result(tmp_path / "run").best == more.best
    with pytest.raises(hwnas.HwnasError, match="already holds a run"):
        hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=fake_accuracy)


def test_an_accuracy_function_returning_nonsense_is_one_error(latency_table, tmp_path):
    config = RunConfig(budget_ms=BUDGET_MS, space="nb201", latency_table=str(latency_table), max_trainings=2,
                       initial_trainings=2, profile_samples=20)
    with pytest.raises(hwnas.HwnasError, match="accuracy_fn returned 'high'"):
        hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=lambda model, arch: "high")


def test_the_drills_api_misuse_cases_are_one_clear_line_each(latency_table, tmp_path):
    # a dict where a RunConfig belongs
    with pytest.raises(hwnas.HwnasError) as dict_config:
        hwnas.start_search({"budget_ms": 1.0}, run_dir=tmp_path / "a")  # type: ignore[arg-type]
    assert "must be a hwnas.RunConfig, not a dict" in str(dict_config.value) and "\n" not in str(dict_config.value)
    assert not (tmp_path / "a").exists()
    # an unknown controller is refused when the configuration is made, naming the known ones
    with pytest.raises(hwnas.ConfigError) as controller:
        RunConfig(budget_ms=1.0, controller="ppo2")
    assert "unknown controller 'ppo2'" in str(controller.value) and "ppo" in str(controller.value).split("known:")[1]
    for field, value in (("space", "mobilenet2"), ("reward", "nope"), ("runtime", "tensorrt9")):
        with pytest.raises(hwnas.ConfigError, match=f"unknown {field}"):
            RunConfig(budget_ms=1.0, **{field: value})
    # an accuracy function answering in percent
    config = RunConfig(budget_ms=BUDGET_MS, space="nb201", latency_table=str(latency_table), max_trainings=2,
                       initial_trainings=2, profile_samples=20)
    with pytest.raises(hwnas.HwnasError) as percent:
        hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=lambda model, arch: 95.0)
    assert "returned 95.0" in str(percent.value) and "between 0 and 1" in str(percent.value)
    state = json.loads((tmp_path / "run" / "state.json").read_text()) if (tmp_path / "run" / "state.json").exists() \
        else {"verified": []}
    assert state["verified"] == []  # nothing stored as an accuracy of 95


def test_python_errors_name_python_arguments_not_flags(latency_table, tmp_path):
    from hwnas.api import python_message

    config = RunConfig(budget_ms=BUDGET_MS, space="nb201", latency_table=str(latency_table), max_trainings=2,
                       initial_trainings=2, profile_samples=20)
    hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=fake_accuracy)
    with pytest.raises(hwnas.HwnasError) as again:
        hwnas.start_search(config, run_dir=tmp_path / "run", accuracy_fn=fake_accuracy)
    assert "--" not in str(again.value) and "already holds a run" in str(again.value)
    assert python_message("raise --max-trainings, or resume with hwnas search --resume RUN") == \
        "raise max_trainings, or resume with hwnas.resume_search(run_dir)"
    assert python_message("resume it with hwnas search --resume runs/a, or export one with hwnas export --arch A") \
        == "resume it with hwnas.resume_search('runs/a'), or export one with hwnas export --arch A"
