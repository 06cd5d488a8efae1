"""The user's own data (an image folder, a .npz) through profile, search and export, end to end, and the
run-folder naming, export to a missing folder and the end-of-search test accuracy that goes with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def _image_folder(root, rng):
    for label, colour in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
        (root / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, size=(10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{i}.png")
    return root


def _npz(path, rng):
    y = np.repeat([0, 1], 20)
    x = rng.normal(0, 1, size=(40, 1, 8, 8)).astype(np.float32) + y[:, None, None, None] * 1.5
    np.savez(path, x_train=x, y_train=y)
    return path


@pytest.fixture
def training_counter(monkeypatch):
    """Counts real trainings (calls of the training loop) made in this process."""
    import hwnas.training.trainer as trainer

    calls = []
    real = trainer._fit

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "_fit", counting)
    return calls


@pytest.mark.parametrize("kind", ["folder", "npz", "streamed"])
def test_own_data_through_profile_search_and_export(cli, tmp_path, monkeypatch, training_counter, kind):
    rng = np.random.default_rng(0)
    if kind in ("folder", "streamed"):  # streamed: decoded batch by batch by DataLoader workers, end to end
        data, shape, name = _image_folder(tmp_path / "my pets", rng), ["--input-shape", "1x8x8"], "my_pets"
    else:
        data, shape, name = _npz(tmp_path / "arrays.npz", rng), [], "arrays"
    monkeypatch.chdir(tmp_path)
    common = ["--profiles-dir", tmp_path / "profiles"]
    profiled = cli("profile", "--device", "host", "--dataset", data, *shape, "--samples", "10", "--no-progress",
                   *common)
    assert profiled.exit_code == 0, profiled.stderr
    assert "mobilenet architectures at 1x8x8" in profiled.output

    stream = ["-D", "stream=true"] if kind == "streamed" else []
    searched = cli("search", "--latency-budget", "20ms", "--dataset", data, *shape, "-D", "val_fraction=0.25", *stream,
                   "--epochs", "1", "--data-fraction", "0.9", "-R", "batch_size=8", "--max-trainings", "3",
                   "--initial-trainings", "2", "--candidates-per-round", "1", "--archs-per-round", "200",
                   "--store", tmp_path / "evals.sqlite", *common)
    assert searched.exit_code == 0, searched.stderr
    run = tmp_path / "runs" / f"mobilenet-{name}-host-20ms-s0"
    assert run.is_dir() and [p.name for p in (tmp_path / "runs").iterdir()] == [run.name]
    config = json.loads((run / "config.json").read_text())
    options = {"val_fraction": 0.25, **({"stream": "true"} if stream else {})}
    assert config["dataset"] == str(data.resolve()) and config["dataset_options"] == options
    assert config["input_shape"] == [1, 8, 8] and config["num_classes"] == 2
    assert config["recipe"]["batch_size"] == 8 and config["recipe"]["data_fraction"] == 0.9
    result = json.loads((run / "result.json").read_text())
    # The answer's test accuracy is read from its own search training: no hidden extra training.
    assert result["trainings_used"] == 3 and len(training_counter) == 3
    assert 0 <= result["test_accuracy"] <= 1 and "never used to select" in searched.output
    stored = json.loads(cli("evals", "--store", tmp_path / "evals.sqlite", "--json").output)
    assert len(stored) == 3 and all(r["recipe"]["batch_size"] == 8 for r in stored if "recipe" in r)

    model = tmp_path / "out" / "nested" / "model.onnx"  # folders that do not exist yet
    exported = cli("export", run, "-o", model, "--epochs", "1", *(["--raw-input"] if stream else []))
    assert exported.exit_code == 0, exported.stderr
    assert model.is_file() and model.with_suffix(".pt").is_file()
    evaluated = cli("evaluate", model, "--dataset", data)  # the model records the data set's name, not its path
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "test accuracy" in evaluated.output.lower() or "accuracy" in evaluated.output


def test_run_folder_names_never_hold_a_path():
    from hwnas.data.resolve import safe_name
    from hwnas.search.config import RunConfig

    from pathlib import Path

    def name(space, dataset, device, budget_ms, seed):
        return RunConfig(budget_ms=budget_ms, space=space, device=device, seed=seed,
                         dataset_name=dataset).run_name()

    for folder in (name("mobilenet", "../../etc", "host", 0.05, 1), name("mobilenet", "a/b\\c", "pi 4", 2, 0)):
        assert Path(folder).name == folder and "/" not in folder and "\\" not in folder and " " not in folder
    # the budget as every command prints it
    assert name("nb201", "cluttered-digits", "host", 0.5, 0) == "nb201-cluttered-digits-host-500us-s0"
    assert name("nb201", "digits", "host", 2.0, 3) == "nb201-digits-host-2ms-s3"
    assert safe_name("...") == "data" and safe_name(".hidden") == "hidden" and len(safe_name("x" * 99)) == 40


@pytest.mark.parametrize("args, message", [
    (["search", "--latency-budget", "1ms", "--dataset", "{empty}"], "empty"),
    (["search", "--latency-budget", "1ms", "-D", "colour=red"], "does not take these options"),
    (["search", "--latency-budget", "1ms", "--input-shape", "1x8x8"], "applies only to image folders"),
    (["search", "--latency-budget", "1ms", "-R", "optimizer=magic"], "optimizer"),
    (["profile", "--device", "d", "--samples", "2", "--dataset", "{bad}"], "bad.npz"),
    (["export", "--arch", "16:k3e1/24:k3e1/32:k3e1/48:k3e1", "-o", "{file}/m.onnx"], "is not a folder"),
])
def test_bad_data_and_paths_fail_with_one_line(cli, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.npz").write_text("not a zip")
    (tmp_path / "file").write_text("x")
    args = [a.format(empty=tmp_path / "empty", bad=tmp_path / "bad.npz", file=tmp_path / "file") for a in args]
    result = cli(*args, "--profiles-dir" if args[0] != "export" else "--seed",
                 tmp_path / "profiles" if args[0] != "export" else "0")
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "file" / "m.onnx").exists()
