"""Runtimes: each installed one profiles, searches, exports its own checked file and evaluates it; the runtime is
part of a profile's fingerprint; a missing one is one line naming its extra."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.profiling import Conditions, ProfileStore
from hwnas.profiling.errors import ProfileError
from hwnas.runtimes import RUNTIMES, get_runtime
from deploy_helpers import TINY

INSTALLED = [name for name in RUNTIMES.names() if get_runtime(name).version() is not None]
OTHERS = [name for name in INSTALLED if name != "onnxruntime"]


def one_error_line(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_runtimes_listed_are_the_installed_ones(cli):
    result = cli("runtimes", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["runtime"]: row for row in json.loads(result.output)["runtimes"]}
    assert set(rows) == set(RUNTIMES.names()) and rows["onnxruntime"]["default"]
    for name, row in rows.items():
        assert row["installed"] == (name in INSTALLED)
        assert (row["version"] is not None) == row["installed"] and row["install"]
        assert "cpu" in row["providers"] or not row["installed"]
    import onnxruntime

    assert rows["onnxruntime"]["version"] == onnxruntime.__version__
    text = cli("runtimes").output
    assert all(name in text for name in rows)


def test_a_missing_runtime_is_one_line_naming_its_extra(cli, tmp_path, monkeypatch):
    from hwnas.runtimes import openvino

    monkeypatch.setattr(openvino, "_openvino", lambda: None)  # as on a machine without the extra
    listed = {r["runtime"]: r for r in json.loads(cli("runtimes", "--json").output)["runtimes"]}
    assert not listed["openvino"]["installed"] and listed["openvino"]["install"] == "pip install 'hwnas[openvino]'"
    profiled = cli("profile", "--device", "host", "--runtime", "openvino", "--samples", "2", "--input-shape",
                   "1x8x8", "--profiles-dir", tmp_path / "profiles")
    one_error_line(profiled, "runtime openvino is not installed", "hwnas[openvino]")
    assert not (tmp_path / "profiles").exists()
    exported = cli("export", "-o", tmp_path / "m.onnx", "--arch", TINY, "--dataset", "digits", "--epochs", "1",
                   "--runtime", "openvino")
    one_error_line(exported, "hwnas[openvino]")
    assert not (tmp_path / "m.onnx").exists()


def test_an_unknown_runtime_is_refused_by_the_configuration():
    with pytest.raises(Exception, match="unknown runtime 'tflite2'"):
        Conditions(runtime="tflite2")


@pytest.mark.skipif(not OTHERS, reason="only onnxruntime is installed")
def test_the_fingerprint_differs_between_runtimes_and_profiles_are_never_mixed(tmp_path):
    from hwnas.devices import LocalDevice, profile_name
    from hwnas.profiling.fingerprint import mismatches

    other = OTHERS[0]
    ort = LocalDevice("host").fingerprint(Conditions())
    alt = LocalDevice("host").fingerprint(Conditions(runtime=other))
    assert {k for k, _, _ in mismatches(ort, alt)} >= {"runtime", "runtime_version"}
    assert profile_name("host", other) == f"host.{other}" and profile_name("host") == "host"
    store = ProfileStore(tmp_path, "host")
    store.ensure(ort)
    with pytest.raises(ProfileError, match="runtime"):
        store.ensure(alt)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", INSTALLED)
def test_profile_search_export_and_evaluate_in_each_runtime(cli, tmp_path, runtime):
    """Profile 5 architectures, search without a table (the search measures in the runtime, topping the profile
    up), export the answer with the runtime's own checked file, evaluate that file."""
    from hwnas.deploy.evaluate import read_shipped
    from hwnas.onnx_export import read_metadata

    profiles, name = tmp_path / "profiles", ("host" if runtime == "onnxruntime" else f"host.{runtime}")
    # 1. profile
    profiled = cli("profile", "--device", "host", "--runtime", runtime, "--samples", "5", "--dataset", "digits",
                   "--profiles-dir", profiles, "--no-progress")
    assert profiled.exit_code == 0, profiled.stderr
    store = ProfileStore.open(profiles, name)
    assert len(store.records()) == 5 and all(r["median_ms"] > 0 for r in store.records())
    assert store.fingerprint["runtime"] == runtime
    assert store.fingerprint["runtime_version"] == get_runtime(runtime).version()
    shown = cli("profile", "--profiles-dir", profiles, "show", name)
    assert f"conditions   {runtime} {get_runtime(runtime).version()}" in shown.output

    # 2. search, table-free: candidates are measured in the runtime
    searched = cli("search", "--latency-budget", "10ms", "--max-trainings", "2", "--initial-trainings", "2",
                   "--epochs", "1", "--archs-per-round", "100", "--profile-samples", "10", "--runtime", runtime,
                   "--profiles-dir", profiles, "--store", tmp_path / "evals.sqlite", "--run-dir", tmp_path / "run")
    assert searched.exit_code == 0, searched.stderr
    assert f"measures on this machine ({runtime}" in searched.output
    outcome = json.loads((tmp_path / "run" / "result.json").read_text())
    assert outcome["feasible"] and outcome["best"]["latency_ms"] <= 10
    assert json.loads((tmp_path / "run" / "config.json").read_text())["runtime"] == runtime
    store.refresh()
    assert len(store.records()) >= 10  # topped up to the search's --profile-samples, in this runtime's profile
    assert sorted(p.name for p in profiles.iterdir()) == [name]  # no other runtime's profile was made

    # 3. export the answer: the runtime's files beside the ONNX file, checked against PyTorch, re-measured in it
    out = tmp_path / "m.onnx"
    exported = cli("export", tmp_path / "run", "-o", out, "--epochs", "1", "--json")
    assert exported.exit_code == 0, exported.stderr
    document = json.loads(exported.stdout)
    meta = read_metadata(out)
    assert document["runtime"] == meta["runtime"] == runtime
    assert float(meta["latency_ms"]) == document["model"]["latency_ms"] > 0
    suffixes = get_runtime(runtime).ship_suffixes
    assert all((tmp_path / f"m{suffix}").is_file() for suffix in suffixes)
    shipped_file = tmp_path / f"m{suffixes[0]}"
    if runtime != "onnxruntime":
        shipped = document["runtime_file"]
        assert shipped["parity_max_abs_error"] < 1e-3 and 0 < shipped["test_accuracy"] <= 1
        files, metadata, found = read_shipped(shipped_file)
        assert found == runtime and set(files) == set(suffixes) and metadata["arch"] == outcome["best"]["arch"]

    # 4. evaluate runs the shipped file in its runtime
    evaluated = cli("evaluate", shipped_file, "--latency", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["runtime"] == report["latency"]["runtime"] == runtime and report["latency"]["median_ms"] > 0
    assert report["accuracy"]["reproduced"]
    if runtime != "onnxruntime":  # a runtime file not exported with the ONNX file is refused in one line
        damaged = tmp_path / f"m{suffixes[-1]}"
        damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)
        one_error_line(cli("evaluate", shipped_file), "SHA-256")


def test_every_runtime_runs_the_same_onnx_model_to_the_same_logits():
    """The measured model is the same function in every runtime that reads ONNX (what its latency is of)."""
    import torch

    from hwnas.onnx_export import seeded_model, to_onnx_bytes
    from hwnas.spaces import create_space

    space = create_space("mobilenet")
    model = seeded_model(space, space.parse(TINY), (1, 8, 8), 10, seed=0).eval()
    onnx_bytes = to_onnx_bytes(model, (1, 8, 8))
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    for name in INSTALLED:
        runtime = get_runtime(name)
        files = runtime.measured_files(model, onnx_bytes, input_shape=(1, 8, 8), batch_size=1)
        got = runtime.load(files, threads=1).run(x)
        assert np.abs(got - expected).max() < 1e-4, name


@pytest.mark.skipif("litert" not in INSTALLED, reason="LiteRT is not installed")
def test_litert_without_its_converter_runs_copied_files_only(cli, tmp_path, monkeypatch):
    from hwnas.runtimes import litert

    real = litert._version
    monkeypatch.setattr(litert, "_version", lambda name: None if name == "litert-torch" else real(name))
    listed = {r["runtime"]: r for r in json.loads(cli("runtimes", "--json").stdout)["runtimes"]}
    assert listed["litert"]["installed"] and "hwnas[mobile]" in listed["litert"]["converter_missing"]
    one_error_line(cli("profile", "--device", "host", "--runtime", "litert", "--samples", "2", "--input-shape",
                       "1x8x8", "--profiles-dir", tmp_path / "profiles"), "litert-torch", "hwnas[mobile]")
    one_error_line(cli("export", "-o", tmp_path / "m.onnx", "--arch", TINY, "--dataset", "digits", "--runtime",
                       "litert"), "litert-torch")  # before any training
    assert list(tmp_path.iterdir()) == []


def test_what_a_runtime_cannot_ship_is_refused_before_training(cli, tmp_path):
    common = ["--arch", TINY, "--dataset", "digits", "--epochs", "1"]
    if "litert" in INSTALLED:
        one_error_line(cli("export", "-o", tmp_path / "m.onnx", *common, "--runtime", "litert", "--dynamic-batch"),
                       "--dynamic-batch", "one batch size")
        one_error_line(cli("export", "-o", tmp_path / "m.onnx", *common, "--runtime", "litert", "--quantize",
                           "int8"), "int8")
    if "openvino" in INSTALLED:
        one_error_line(cli("export", "-o", tmp_path / "model", *common, "--runtime", "openvino"), "ending in .onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_runtime_file_list_is_one_line(cli, tmp_path):
    import onnx

    from hwnas.deploy.evaluate import read_shipped

    plain = tmp_path / "m.onnx"
    assert cli("onnx", TINY, "--input-shape", "1x8x8", "-o", plain).exit_code == 0
    copy = tmp_path / "model"  # an ONNX file is read whatever its name
    copy.write_bytes(plain.read_bytes())
    assert read_shipped(copy)[2] == "onnxruntime"
    model = onnx.load(str(plain))
    for key, value in (("runtime", "openvino"), ("runtime_files", json.dumps({"/x": "0", "bin": "1"}))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(plain))
    (tmp_path / "m.xml").write_bytes(b"<net/>")
    one_error_line(cli("evaluate", tmp_path / "m.xml"), "tampered or foreign")
    one_error_line(cli("evaluate", tmp_path / "none.xml"), "does not exist")


def test_the_default_run_folder_names_another_runtime():
    from hwnas.search.config import RunConfig

    assert "-openvino-" in RunConfig(budget_ms=2.0, runtime="openvino").run_name()
    assert "onnxruntime" not in RunConfig(budget_ms=2.0).run_name()


@pytest.mark.skipif("openvino" not in INSTALLED, reason="OpenVINO is not installed")
def test_another_runtime_is_timed_in_its_own_process_which_is_restarted_when_it_dies():
    from hwnas.onnx_export import seeded_model, to_onnx_bytes
    from hwnas.profiling import isolation
    from hwnas.profiling.measure import measure_latency
    from hwnas.spaces import create_space

    space = create_space("mobilenet")
    model_bytes = to_onnx_bytes(seeded_model(space, space.parse(TINY), (1, 8, 8), 10, seed=0), (1, 8, 8))
    short = dict(min_runs=20, max_runs=20, warmup=2)
    first = measure_latency(model_bytes, (1, 8, 8), runtime="openvino", **short)
    child = isolation._CHILDREN["openvino"]
    assert first.runs == 20 and first.median_ms > 0 and child.poll() is None and child.pid != __import__("os").getpid()
    child.kill()
    child.wait()
    again = measure_latency(model_bytes, (1, 8, 8), runtime="openvino", **short)  # a new child takes over
    assert again.median_ms > 0 and isolation._CHILDREN["openvino"].pid != child.pid
    with pytest.raises(Exception, match="does not match"):  # the child's own errors come back as themselves
        measure_latency(model_bytes, (3, 8, 8), runtime="openvino", **short)
    isolation.shutdown()
    assert not isolation._CHILDREN


def test_a_published_table_of_a_runtime_is_that_runtimes_profile(cli, tmp_path, latency_table):
    profiles = tmp_path / "profiles"
    common = ["--space", "nb201", "--input-shape", "3x32x32", "--latency-table", latency_table,
              "--profiles-dir", profiles]
    imported = cli("profile", "--device", "pixel7", "--runtime", "litert", *common)
    assert imported.exit_code == 0, imported.stderr
    store = ProfileStore.open(profiles, "pixel7.litert")  # where a search with --runtime litert looks
    assert store.fingerprint["source"] == "table" and store.fingerprint["runtime"] == "litert"
    plain = cli("profile", "--device", "pixel7", *common)  # no runtime named: unknown, as before
    assert plain.exit_code == 0 and ProfileStore.open(profiles, "pixel7").fingerprint["runtime"] is None
    one_error_line(cli("profile", "--device", "pixel7.litert", *common), "other conditions", "runtime")


@pytest.mark.skipif(not OTHERS, reason="only onnxruntime is installed")
def test_a_run_is_exported_in_its_own_runtime_only(cli, tmp_path):
    from deploy_helpers import make_run

    run = make_run(tmp_path)
    refused = cli("export", run.path, "-o", tmp_path / "m.onnx", "--runtime", OTHERS[0])
    one_error_line(refused, "searched with runtime onnxruntime", f"--runtime {OTHERS[0]}")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif("openvino" not in INSTALLED, reason="OpenVINO is not installed")
def test_an_interrupted_isolated_measurement_leaves_no_reply_for_the_next(monkeypatch):
    import pickle

    from hwnas.onnx_export import seeded_model, to_onnx_bytes
    from hwnas.profiling import isolation
    from hwnas.profiling.measure import measure_latency
    from hwnas.spaces import create_space

    space = create_space("mobilenet")
    model_bytes = to_onnx_bytes(seeded_model(space, space.parse(TINY), (1, 8, 8), 10, seed=0), (1, 8, 8))
    short = dict(min_runs=20, max_runs=20, warmup=2)
    measure_latency(model_bytes, (1, 8, 8), runtime="openvino", **short)
    interrupted = isolation._CHILDREN["openvino"]
    real_load = pickle.load

    def ctrl_c(stream):
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "load", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        measure_latency(model_bytes, (1, 8, 8), runtime="openvino", **short)
    monkeypatch.setattr(pickle, "load", real_load)
    assert interrupted.poll() is not None and "openvino" not in isolation._CHILDREN
    assert measure_latency(model_bytes, (1, 8, 8), runtime="openvino", **short).runs == 20
    isolation.shutdown()
