"""Wrong requests to ``hwnas export``/``hwnas evaluate``: one line, non-zero exit, nothing written."""

from __future__ import annotations

import json

import pytest

from hwnas.deploy import final as final_module
from hwnas.deploy import pipeline
from hwnas.devices import local as device_local
from hwnas.errors import ExportError
from hwnas.onnx_export import read_metadata, seeded_model
from hwnas.io import atomic_write_json
from hwnas.spaces import create_space
from deploy_helpers import TINY, latency_windows, listing, make_run, one_error_line


@pytest.fixture
def no_training(monkeypatch):
    """Replaces the final training with a seeded (untrained) model, to reach the later steps quickly."""
    calls = []

    def fake_train(space, arch, dataset, **kwargs):
        calls.append(arch.string)
        model = seeded_model(space, arch, dataset.input_shape, dataset.num_classes, seed=0)
        return final_module.FinalModel(model=model, test_accuracy=0.1, train_samples=10, test_samples=10,
                                       wall_time_s=0.0, train_loss=1.0)

    monkeypatch.setattr(pipeline, "train_final", fake_train)
    return calls


def test_no_feasible_architecture(cli, tmp_path, no_training):
    run = make_run(tmp_path, feasible=False, budget_ms=5.0)
    line = one_error_line(cli("export", run.path, "-o", tmp_path / "m.onnx"), "no architecture within 5ms",
                          "7.5ms", "--arch")
    assert "Traceback" not in line and not (tmp_path / "m.onnx").exists() and no_training == []


def test_missing_run_dir(cli, tmp_path, no_training):
    one_error_line(cli("export", tmp_path / "nope", "-o", tmp_path / "m.onnx"), "does not exist")
    assert listing(tmp_path) == [] and no_training == []


@pytest.mark.parametrize("damage", ["garbage config", "config without space", "garbage result", "no result"])
def test_corrupt_run_dir(cli, tmp_path, no_training, damage):
    run = make_run(tmp_path)
    if damage == "garbage config":
        (run.path / "config.json").write_text("{not json")
        needle = "corrupt"
    elif damage == "config without space":
        atomic_write_json(run.path / "config.json", {k: v for k, v in run.config.to_json().items() if k != "space"})
        needle = "missing 'space'"
    elif damage == "garbage result":
        run.result_file.write_text("[1, 2")
        needle = "corrupt"
    else:
        run.result_file.unlink()
        needle = "has not finished"
    one_error_line(cli("export", run.path, "-o", tmp_path / "m.onnx"), needle)
    assert not (tmp_path / "m.onnx").exists() and no_training == []


@pytest.mark.parametrize("where", ["file as folder", "file above the folder", "a folder"])
def test_unwritable_output_fails_before_training(cli, tmp_path, no_training, where):
    run = make_run(tmp_path)
    (tmp_path / "plain").write_text("x")
    (tmp_path / "dir.onnx").mkdir()
    # (a missing folder is created: tests/test_user_data_cli.py)
    target = {"file above the folder": tmp_path / "plain" / "sub" / "m.onnx",
              "file as folder": tmp_path / "plain" / "m.onnx",
              "a folder": tmp_path / "dir.onnx"}[where]
    result = cli("export", run.path, "-o", target)
    one_error_line(result)
    assert no_training == [] and listing(tmp_path) == ["dir.onnx", "plain", "run"]
    assert list((tmp_path / "dir.onnx").iterdir()) == []


def test_failure_after_training_writes_nothing(cli, tmp_path, monkeypatch, no_training):
    run = make_run(tmp_path)

    def broken(*args, **kwargs):
        raise ExportError("onnxruntime output differs from PyTorch by 1 (tolerance 0.001)")

    monkeypatch.setattr(pipeline, "export_final", broken)
    one_error_line(cli("export", run.path, "-o", tmp_path / "m.onnx"), "differs from PyTorch")
    assert no_training == [TINY] and listing(tmp_path) == ["run"]


def test_failed_group_write_leaves_nothing(tmp_path):
    from hwnas.deploy.final import write_outputs
    from hwnas.deploy.target import DeployError

    with pytest.raises(DeployError):
        write_outputs({tmp_path / "a.onnx": b"1", tmp_path / "missing" / "a.pt": b"2"})
    assert listing(tmp_path) == []
    written = write_outputs({tmp_path / "a.onnx": b"1", tmp_path / "a.pt": b"2"})
    assert [p.read_bytes() for p in written] == [b"1", b"2"] and listing(tmp_path) == ["a.onnx", "a.pt"]


def test_usage_errors(cli, tmp_path, no_training):
    run = make_run(tmp_path)
    one_error_line(cli("export", "-o", tmp_path / "m.onnx"), "run directory", "--arch")
    one_error_line(cli("export", run.path, "-o", tmp_path / "m.onnx", "--dataset", "digits"),
                   "only with --arch")
    one_error_line(cli("export", "-o", tmp_path / "m.onnx", "--arch", "1:bad"), "mobilenet")
    one_error_line(cli("export", "-o", tmp_path / "m.onnx", "--arch", TINY, "--dataset", "nosuch"), "nosuch")
    assert no_training == [] and listing(tmp_path) == ["run"]


def test_explicit_arch_overrides_the_runs_best(cli, tmp_path, no_training):
    run = make_run(tmp_path)
    other = "32:k5e3/24:k3e1/32:k3e1/48:k3e1"
    result = cli("export", run.path, "-o", tmp_path / "m.onnx", "--arch", other)
    assert result.exit_code == 0, result.stderr
    assert no_training == [other]
    from hwnas.onnx_export import read_metadata

    meta = read_metadata(tmp_path / "m.onnx")
    assert meta["arch"] == other and meta["run_dir"] == run.path.name and meta["split_seed"] == "1"
    assert json.loads(meta["recipe"])["epochs"] == 3  # 3x the search recipe's single epoch


def test_evaluate_errors(cli, tmp_path):
    one_error_line(cli("evaluate", tmp_path / "none.onnx"), "does not exist")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01not a model")
    one_error_line(cli("evaluate", tmp_path / "junk.onnx"), "not an ONNX model")
    space = create_space("mobilenet")
    plain = tmp_path / "plain.onnx"
    result = cli("onnx", TINY, "--input-shape", "3x16x16", "--num-classes", "10", "-o", plain)
    assert result.exit_code == 0, result.stderr
    one_error_line(cli("evaluate", plain), "names no data set", "--dataset")
    one_error_line(cli("evaluate", plain, "--dataset", "digits"), "1x8x8", "3x16x16")
    one_error_line(cli("evaluate", plain, "--latency-only", "--dataset", "digits"), "--latency-only")
    assert space.name == "mobilenet"


def test_over_budget_is_a_warning_not_a_failure(cli, tmp_path, no_training):
    run = make_run(tmp_path, budget_ms=1e-6)
    result = cli("export", run.path, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.stderr
    assert "OVER the 0.001us budget" in result.output
    assert result.stderr.startswith("Warning: ") and "over the run's budget" in result.stderr
    assert listing(tmp_path) == ["m.onnx", "m.pt", "run"]


def test_one_slow_window_does_not_put_an_in_budget_model_over_budget(cli, tmp_path, no_training, monkeypatch):
    # the search measured 0.5 ms; the export's first window is slowed by something else on the machine
    run = make_run(tmp_path, budget_ms=0.6, best_latency=0.5)
    monkeypatch.setattr(device_local, "measure_file", latency_windows(0.75, 0.49))  # this machine's Device
    result = cli("export", run.path, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.stderr
    assert "50% above the 500us measured before: measuring again" in result.output
    assert "fastest of 2 windows: 750us, 490us): within the 600us budget" in result.output
    assert "Warning" not in result.stderr
    meta = read_metadata(tmp_path / "m.onnx")
    assert float(meta["latency_ms"]) == 0.49 and "fastest of 2 windows" in meta["latency_source"]
    # 'hwnas evaluate' confirms a slow window the same way against the latency recorded in the file
    monkeypatch.setattr(device_local, "measure_file", latency_windows(0.8, 0.7, 0.65))
    again = cli("evaluate", tmp_path / "m.onnx", "--latency-only", "--json")
    assert again.exit_code == 0, again.stderr
    latency = json.loads(again.stdout)["latency"]
    assert latency["windows_ms"] == [0.8, 0.7, 0.65] and latency["median_ms"] == 0.65
    assert latency["within_budget"] is False


@pytest.mark.parametrize("threads", ["zero", "0", "-3"])
def test_evaluate_refuses_tampered_measurement_metadata_in_one_line(cli, tmp_path, threads):
    import onnx

    plain = tmp_path / "plain.onnx"
    assert cli("onnx", TINY, "--input-shape", "1x8x8", "-o", plain).exit_code == 0
    model = onnx.load(str(plain))
    for key, value in (("input_shape", "1x8x8"), ("threads", threads)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(plain))
    one_error_line(cli("evaluate", plain, "--latency-only"), f"threads={threads!r}", "--threads")
