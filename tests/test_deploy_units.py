"""Pieces of the deploy package: final recipe, train+validation, device location, ONNX evaluation, fp16."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from hwnas.data import create_dataset
from hwnas.deploy.device import budget_verdict, confirm_latency, windows_note
from hwnas.devices import locate as locate_device
from hwnas.deploy.evaluate import predict
from hwnas.deploy.final import TrainPlusValidation, export_final, sibling
from hwnas.deploy.target import EPOCH_FACTOR, DeployError, final_recipe, resolve_target
from hwnas.onnx_export import read_metadata, seeded_model, to_onnx_bytes
from hwnas.io import atomic_write_json
from hwnas.profiling.fingerprint import host_fingerprint
from hwnas.profiling.measure import Conditions
from hwnas.spaces import create_space
from hwnas.training.recipe import Recipe

from deploy_helpers import TINY, latency_windows, make_run  # noqa: E402


def test_final_recipe_is_the_search_recipe_longer_at_full_data():
    search = Recipe(epochs=7, data_fraction=0.25, lr=0.01, split_seed=4)
    final = final_recipe(search)
    assert final.epochs == EPOCH_FACTOR * 7 and final.data_fraction == 1.0
    assert final.hash() == search.hash() and final.split_seed == 4  # same protocol, same split
    assert final_recipe(search, 2).epochs == 2


def test_train_plus_validation_keeps_the_test_split():
    base = create_dataset("digits")
    merged = TrainPlusValidation(base)
    a, b = base.splits(3), merged.splits(3)
    assert len(b.y_train) == len(a.y_train) + len(a.y_val) and len(b.y_val) == 0
    assert np.array_equal(b.x_test, a.x_test) and np.array_equal(b.y_test, a.y_test)
    assert merged.input_shape == base.input_shape and merged.key != base.key


def test_resolve_target_from_run(tmp_path):
    run = make_run(tmp_path, split_seed=2)
    target = resolve_target(run.path)
    assert target.arch == TINY and target.budget_ms == 1000.0 and target.search["latency_ms"] == 0.5
    assert target.recipe.split_seed == 2 and target.recipe.epochs == EPOCH_FACTOR
    assert target.input_shape == (1, 8, 8) and target.device == "host"
    explicit = resolve_target(None, arch=TINY, epochs=4)
    assert explicit.budget_ms is None and explicit.dataset == "digits" and explicit.recipe.epochs == 4
    with pytest.raises(DeployError, match="only with --arch"):
        resolve_target(run.path, space="nb201")


def _profile(root, device, **overrides):
    folder = root / device
    folder.mkdir(parents=True)
    atomic_write_json(folder / "device.json", {**host_fingerprint(device, Conditions()), **overrides})


def test_locate_device(tmp_path):
    cpu = Conditions()
    _profile(tmp_path, "here")
    _profile(tmp_path, "pi", cpu_model="ARM Cortex-A72")
    _profile(tmp_path, "table", source="table", cpu_model=None)
    assert locate_device("here", str(tmp_path), cpu).local
    pi = locate_device("pi", str(tmp_path), cpu)
    assert not pi.local and "Cortex-A72" in pi.reason
    assert not locate_device("table", str(tmp_path), cpu).local
    assert locate_device("host", str(tmp_path), cpu).local  # no profile: only "host" is this machine
    assert not locate_device("jetson", str(tmp_path), cpu).local
    gpu = locate_device("host", str(tmp_path), Conditions(provider="tensorrt"))
    if not gpu.local:
        assert "tensorrt" in gpu.reason


def test_budget_verdict():
    assert budget_verdict(4.0, 5.0).startswith("within") and "80%" in budget_verdict(4.0, 5.0)
    assert budget_verdict(6.0, 5.0).startswith("OVER") and "20%" in budget_verdict(6.0, 5.0)
    assert budget_verdict(1.0, None) == "no latency budget"


def test_confirm_latency_measures_again_only_when_a_window_disagrees():
    lines = []
    # agrees with the search and fits the budget: one window
    confirm = functools.partial(confirm_latency, echo=lines.append)
    stats, medians = confirm(latency_windows(0.33), expected_ms=0.332, budget_ms=0.4)
    assert medians == [0.33] and stats.median_ms == 0.33 and not lines
    # faster than the search: nothing to confirm
    assert confirm(latency_windows(0.2), expected_ms=0.332, budget_ms=0.4)[1] == [0.2]
    # one slow window (a disturbance): measured again, the fastest window is the latency
    slow = latency_windows(0.417, 0.320, 0.321)
    stats, medians = confirm(slow, expected_ms=0.332, budget_ms=0.4)
    assert medians == [0.417, 0.320] and stats.median_ms == 0.320 and slow.calls == 2
    assert len(lines) == 1 and "26% above" in lines[0] and "measuring again" in lines[0]
    assert windows_note(medians) == ", fastest of 2 windows: 417us, 320us" and windows_note([0.3]) == ""
    # really over the budget: three windows at most, still over
    lines.clear()
    stats, medians = confirm(latency_windows(0.52, 0.5, 0.51, 0.1), expected_ms=None, budget_ms=0.4)
    assert medians == [0.52, 0.5, 0.51] and stats.median_ms == 0.5 and len(lines) == 2
    assert "OVER the 400us budget" in lines[0]
    # above what was measured before beyond the tolerance, without a budget
    assert confirm(latency_windows(1.2, 1.0), expected_ms=1.0, budget_ms=None)[1] == [1.2, 1.0]
    assert confirm(latency_windows(1.05), expected_ms=1.0, budget_ms=None)[1] == [1.05]


@pytest.mark.parametrize("batch", [1, 4])
def test_predict_pads_a_fixed_batch(batch):
    space = create_space("mobilenet")
    model = seeded_model(space, space.parse(TINY), (1, 8, 8), 10, seed=3)
    data = create_dataset("digits").splits(0).x_test[:10]
    logits = predict(to_onnx_bytes(model, (1, 8, 8), batch_size=batch), data)
    with torch.no_grad():
        expected = model(torch.from_numpy(data)).numpy()
    assert logits.shape == (10, 10) and np.allclose(logits, expected, atol=1e-4)


def test_fp16_export_ships_the_half_precision_model():
    space = create_space("mobilenet")
    model = seeded_model(space, space.parse(TINY), (1, 8, 8), 10, seed=3)
    data = create_dataset("digits").splits(0).x_test[:32]
    model_bytes, report = export_final(model, create_dataset("digits").preprocess(), data,
                                       metadata={"precision": "fp16"},
                                       precision="fp16")
    assert report.parity.num_inputs == 32 and report.parity.ok
    import onnx

    types = {init.data_type for init in onnx.load_from_string(model_bytes).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types and read_metadata(model_bytes)["precision"] == "fp16"
    assert next(model.parameters()).dtype == torch.float32  # the trained model itself is untouched


def test_sibling_names(tmp_path):
    assert sibling(tmp_path / "m.onnx", ".pt").name == "m.pt"
    assert sibling(tmp_path / "m.onnx", ".int8.onnx").name == "m.int8.onnx"
    assert sibling(tmp_path / "model", ".pt").name == "model.pt"
