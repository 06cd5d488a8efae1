"""``hwnas export`` / ``hwnas evaluate`` end to end on tiny architectures (1-2 epochs on digits)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from hwnas.data import create_dataset
from hwnas.deploy.evaluate import accuracy_of
from hwnas.onnx_export import read_metadata
from hwnas.io import atomic_write_json
from hwnas.profiling.fingerprint import host_fingerprint
from hwnas.profiling.measure import Conditions, make_record
from hwnas.profiling.store import ProfileStore
from hwnas.spaces import create_space

from deploy_helpers import FIELDS, OTHER, TINY, listing, make_run, percent  # noqa: E402


@pytest.mark.slow
def test_export_round_trip_from_a_run(cli, tmp_path):
    run = make_run(tmp_path, split_seed=1)
    out = tmp_path / "out"
    out.mkdir()
    result = cli("export", run.path, "-o", out / "model.onnx", "--epochs", "2", "--train-threads", "1")
    assert result.exit_code == 0, result.output + result.stderr
    assert listing(out) == ["model.onnx", "model.pt"]  # no temporary files left
    assert "onnx.checker passed" in result.output and "test images" in result.output
    assert "within the 1s budget" in result.output

    meta = read_metadata(out / "model.onnx")
    assert all(key in meta for key in FIELDS)
    assert meta["arch"] == TINY and meta["space"] == "mobilenet" and meta["dataset"] == "digits"
    assert meta["input_shape"] == "1x8x8" and json.loads(meta["class_names"]) == [str(i) for i in range(10)]
    assert meta["split_seed"] == "1" and meta["epochs"] == "2" and json.loads(meta["recipe"])["epochs"] == 2
    assert json.loads(meta["recipe"])["data_fraction"] == 1.0
    assert float(meta["latency_budget_ms"]) == 1000.0 and meta["device"] == "host"
    assert 0 < float(meta["latency_ms"]) < 1000.0 and "this machine" in meta["latency_source"]
    stored = float(meta["test_accuracy"])

    # The weights rebuild the model, and it computes what the ONNX file computes on real test images.
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["arch"] == TINY and saved["input_shape"] == [1, 8, 8] and saved["space"] == "mobilenet"
    space = create_space(saved["space"], **saved["space_options"])
    model = space.build(space.parse(saved["arch"]), saved["input_shape"], saved["num_classes"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    splits = create_dataset("digits").splits(1)
    with torch.no_grad():
        torch_pred = model(torch.from_numpy(splits.x_test)).argmax(1).numpy()
    onnx_eval = accuracy_of((out / "model.onnx").read_bytes(), splits.x_test, splits.y_test)
    assert np.mean(torch_pred == onnx_eval.predictions) > 0.99
    assert abs(float(np.mean(torch_pred == splits.y_test)) - stored) <= 1 / len(splits.y_test)

    # evaluate reproduces the stored accuracy on the metadata's data set and split seed.
    evaluated = cli("evaluate", out / "model.onnx", "--dataset", "digits")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "reproduced" in evaluated.output and "split seed 1" in evaluated.output
    assert abs(percent(evaluated.output, r"test accuracy ([\d.]+)%") - 100 * stored) < 0.01
    assert abs(onnx_eval.accuracy - stored) <= 1 / len(splits.y_test)
    # Another split is other data: the stored accuracy is not compared with it.
    other = cli("evaluate", out / "model.onnx", "--split-seed", "0")
    assert other.exit_code == 0 and "not comparable" in other.output


@pytest.mark.slow
def test_export_quantized_and_dynamic_batch_with_explicit_arch(cli, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("export", "-o", out, "--arch", OTHER, "--space", "mobilenet", "--dataset", "digits",
                 "--epochs", "2", "--train-threads", "1", "--dynamic-batch", "--quantize", "int8")
    assert result.exit_code == 0, result.output + result.stderr
    assert listing(tmp_path) == ["m.int8.onnx", "m.onnx", "m.pt"]
    q_bytes = (tmp_path / "m.int8.onnx").read_bytes()
    ops = {node.op_type for node in onnx.load_from_string(q_bytes).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    meta, q_meta = read_metadata(out), read_metadata(tmp_path / "m.int8.onnx")
    assert meta["dynamic_batch"] == "true" and meta["latency_budget_ms"] == "none"
    assert q_meta["quantization"] == "int8" and float(q_meta["latency_ms"]) > 0
    # The int8 accuracy is measured, not assumed: recompute it independently.
    splits = create_dataset("digits").splits(int(q_meta["split_seed"]))
    truth = accuracy_of(q_bytes, splits.x_test, splits.y_test).accuracy
    assert float(q_meta["test_accuracy"]) == pytest.approx(truth)
    assert f"int8 test accuracy (onnxruntime): {100 * truth:.2f}%" in result.output
    # A dynamic-batch file runs any batch size.
    evaluated = cli("evaluate", tmp_path / "m.int8.onnx")
    assert evaluated.exit_code == 0 and "reproduced" in evaluated.output


@pytest.mark.slow
@pytest.mark.parametrize("latency", ["verified", "predicted", "in the profile"])
def test_export_for_another_device_is_not_remeasured_here(cli, tmp_path, latency):
    run = make_run(tmp_path, device="pi4", best_latency=3.25, measured=latency == "verified")
    store = ProfileStore(tmp_path / "profiles", "pi4")
    store.ensure({**host_fingerprint("pi4", Conditions(threads=4)), "cpu_model": "ARM Cortex-A72",
                  "machine": "aarch64"})
    if latency == "in the profile":  # measured on the device (e.g. by 'hwnas profile' there) after the search
        space = create_space("mobilenet")
        store.add(make_record(space="mobilenet", arch=space.parse(TINY), input_shape=(1, 8, 8), num_classes=10,
                              stats={"median_ms": 2.5}))
    atomic_write_json(run.path / "config.json", {**run.config.to_json(), "measure_threads": 4})
    result = cli("export", run.path, "-o", tmp_path / "pi.onnx", "--epochs", "1", "--train-threads", "1")
    assert result.exit_code == 0, result.output + result.stderr
    assert "cannot be measured from here" in result.output and "Cortex-A72" in result.output
    assert "hwnas evaluate pi.onnx --latency-only --provider cpu --threads 4 --batch-size 1" in result.output
    meta = read_metadata(tmp_path / "pi.onnx")
    if latency == "verified":
        assert float(meta["latency_ms"]) == 3.25 and "by the search" in meta["latency_source"]
    elif latency == "in the profile":
        assert float(meta["latency_ms"]) == 2.5
    else:  # a latency the search could only predict is never passed off as a measurement
        assert meta["latency_ms"] == "none" and "only predicted" in result.output
    assert meta["device"] == "pi4" and meta["threads"] == "4"
    # The printed command works on a device: latency only, under the recorded conditions.
    measured = cli("evaluate", tmp_path / "pi.onnx", "--latency-only", "--threads", "1")
    assert measured.exit_code == 0, measured.stderr
    assert "latency" in measured.output and "1s budget" in measured.output
