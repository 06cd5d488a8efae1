"""The training device (--train-device), mixed precision and the recipe's natural-image settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hwnas.data import create_dataset
from hwnas.search.config import ConfigError, RunConfig
from hwnas.spaces import create_space
from hwnas.training import DEFAULT_RECIPE, Recipe, Trainer, train
from hwnas.training import device as devices
from hwnas.training.augment import crop_flip
from hwnas.training.recipe import RecipeError
from hwnas.training.store import make_key
from hwnas.training.trainer import TrainingError

ARCH = "16:k3e1/24:k3e1/32:k3e1/48:k3e1"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: [])


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert devices.resolve("auto") == torch.device("cpu")
    assert devices.kind("auto") == "cpu" and devices.kind("auto", ray_gpus=1) == "cuda"


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_an_unusable_device_is_one_line(no_gpu, monkeypatch, name):
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(devices.DeviceError, match=rf"--train-device {name}: no .* usable here") as err:
        devices.resolve(name)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", "", 3])
def test_misspelt_devices_are_refused(name):
    with pytest.raises(devices.DeviceError, match="is not one of auto, cpu, cuda, cuda:N, mps"):
        devices.check_name(name)


def test_auto_takes_the_gpu_ray_assigned(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 2)
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: ["3"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # Ray narrows the visible GPUs to the assigned one
    assert devices.resolve("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.resolve("auto") == torch.device("cuda", 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: ["1"])
    assert devices.resolve("auto") == torch.device("cuda", 1)


def test_a_ray_gpu_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    monkeypatch.setattr(devices, "ray_gpu_ids", lambda: ["0"])
    with pytest.raises(devices.DeviceError, match="Ray assigned GPU 0 to this training, but PyTorch sees no CUDA"):
        devices.resolve("auto")


def test_gpu_trainings_are_keyed_apart_and_cpu_keys_are_unchanged(no_gpu):
    space, data = create_space("mobilenet"), create_dataset("digits")
    arch = space.parse(ARCH)
    cpu = make_key(space, arch, data, recipe=DEFAULT_RECIPE, evaluator=Trainer(device="auto"))
    gpu = make_key(space, arch, data, recipe=DEFAULT_RECIPE, evaluator=Trainer(device="auto", ray_gpus=1))
    assert cpu.recipe_hash == DEFAULT_RECIPE.hash() == "b0ace7d5c14b"  # the hash stores were written under
    assert gpu.recipe_hash != cpu.recipe_hash
    assert Trainer(device="cuda").protocol(DEFAULT_RECIPE)["train_device"] == "cuda"
    assert "train_device" not in Trainer(device="cpu").protocol(DEFAULT_RECIPE)


def test_a_result_from_another_device_kind_is_not_stored_under_the_gpu_key():
    space, data = create_space("mobilenet"), create_dataset("digits")
    trainer = Trainer(device="auto", ray_gpus=1, train_fn=lambda *a, **k: _result("cpu"))
    with pytest.raises(TrainingError, match="meant for a cuda device but ran on cpu"):
        trainer(space, space.parse(ARCH), data, recipe=DEFAULT_RECIPE, seed=0)


def _result(device: str):
    from hwnas.training import TrainResult

    return TrainResult(val_accuracy=0.5, val_loss=1.0, params=1, wall_time_s=0.1, epochs=1, data_fraction=1.0,
                       device=device)


def test_train_reports_its_device_and_refuses_fp16_on_the_cpu():
    space, data = create_space("mobilenet"), create_dataset("digits")
    recipe = DEFAULT_RECIPE.with_fidelity(epochs=1, data_fraction=0.2)
    assert train(space, space.parse(ARCH), data, recipe=recipe, device="auto").device == "cpu"
    with pytest.raises(TrainingError, match="amp=fp16 needs a GPU"):
        train(space, space.parse(ARCH), data, recipe=Recipe(amp="fp16", epochs=1), device="cpu")


def test_bf16_mixed_precision_trains_deterministically_on_the_cpu():
    space, data = create_space("mobilenet"), create_dataset("digits")
    recipe = Recipe(amp="bf16", epochs=4, data_fraction=0.5)
    first = train(space, space.parse(ARCH), data, recipe=recipe, seed=3, return_model=True)
    again = train(space, space.parse(ARCH), data, recipe=recipe, seed=3, return_model=True)
    plain = train(space, space.parse(ARCH), data, recipe=Recipe(epochs=4, data_fraction=0.5), seed=3)
    assert first.val_accuracy == again.val_accuracy and np.isfinite(first.train_loss)
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                   again.model.state_dict().values()))
    assert first.val_accuracy > 0.5  # it learns (chance is 0.1)
    assert first.train_loss != plain.train_loss  # in bfloat16: other numbers than float32's
    assert recipe.hash() != Recipe(epochs=4, data_fraction=0.5).hash() and plain.device == "cpu"


def test_recipe_settings_added_later_keep_old_hashes_and_old_files():
    assert Recipe(augment="shift", epochs=3).hash() == "c9c37475600c"  # as hwnas 0.1 stored it
    assert Recipe(crop_padding=2).hash() != Recipe().hash() and Recipe(amp="bf16").hash() != Recipe().hash()
    old = {k: v for k, v in Recipe().to_dict().items() if k not in ("amp", "crop_padding")}
    assert Recipe.from_dict(old) == Recipe()
    for bad, match in (({"amp": "fp8"}, "amp 'fp8' is not one of"), ({"augment": "mixup"}, "augmentation"),
                       ({"crop_padding": -1}, "crop_padding=-1 must be in")):
        with pytest.raises(RecipeError, match=match):
            Recipe(**bad)


def test_crop_flip_is_deterministic_per_seed_and_crops_and_flips():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5)
    one = crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(one, crop_flip(x, 2, torch.Generator().manual_seed(0))) and one.shape == x.shape
    seeds = [crop_flip(x, 2, torch.Generator().manual_seed(s)) for s in range(8)]
    assert len({tuple(s.flatten().tolist()) for s in seeds}) > 1  # the seed decides
    # without padding, each image is itself or its mirror image
    flipped = crop_flip(x, 0, torch.Generator().manual_seed(1))
    for i in range(len(x)):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))
    mirrors = [crop_flip(x, 0, torch.Generator().manual_seed(s)) for s in range(16)]
    assert any(torch.equal(m[0], x[0].flip(-1)) for m in mirrors) and any(torch.equal(m[0], x[0]) for m in mirrors)
    # with padding, every output row is a window of a (zero-padded) input row
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    out = seeds[3]
    for i in range(len(x)):
        rows = {tuple(padded[i, 0, r, c:c + 5].tolist()) for r in range(10) for c in range(5)}
        rows |= {tuple(reversed(row)) for row in rows}
        assert all(tuple(out[i, 0, r].tolist()) in rows for r in range(6))


def test_crop_flip_trains_through_the_recipe():
    space, data = create_space("mobilenet"), create_dataset("digits")
    recipe = Recipe(augment="crop-flip", crop_padding=1, epochs=1, data_fraction=0.3)
    a = train(space, space.parse(ARCH), data, recipe=recipe, seed=1)
    b = train(space, space.parse(ARCH), data, recipe=recipe, seed=1)
    assert a.val_accuracy == b.val_accuracy and a.train_loss == b.train_loss


# -- the command line: one line before anything runs ---------------------------------------------------------
def test_cuda_on_the_command_line_fails_before_any_work(cli, tmp_path, monkeypatch, no_gpu):
    monkeypatch.chdir(tmp_path)
    for args in (["train", ARCH, "--train-device", "cuda", "--epochs", "1"],
                 ["search", "--latency-budget", "1ms", "--train-device", "cuda", "--run-dir", "run"],
                 ["benchmark", "--latency-budget", "1ms", "--train-device", "cuda", "--out", "bench"],
                 ["supernet", "train", "--train-device", "cuda:0", "-o", "sn", "--epochs", "1"],
                 ["supernet", "eval", ARCH, "--supernet", "sn", "--train-device", "cuda"],
                 ["export", "-o", "m.onnx", "--arch", ARCH, "--train-device", "cuda"]):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no CUDA device is usable here" in lines[0] and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, store, supernet or model


def test_the_run_records_its_train_device_and_old_runs_read_as_cpu(tmp_path):
    config = RunConfig(budget_ms=1.0, train_device="auto", loader_workers=2).resolved()
    data = config.to_json()
    assert data["train_device"] == "auto" and data["loader_workers"] == 2
    assert RunConfig.from_json(data).train_device == "auto"
    old = {k: v for k, v in data.items() if k not in ("train_device", "loader_workers")}
    assert RunConfig.from_json(json.loads(json.dumps(old))).train_device == "cpu"
    with pytest.raises(ConfigError, match="train device 'tpu' is not one of"):
        RunConfig(budget_ms=1.0, train_device="tpu")


def test_the_device_goes_with_the_execution(no_gpu):
    config = RunConfig(budget_ms=1.0)
    assert config.check_train_device() == "cpu" and config.execution_device() == "auto"
    # on Ray without GPUs every training runs on its node's CPU, whatever this machine has
    assert config.check_train_device(on_ray=True) == "cpu" and config.execution_device(on_ray=True) == "cpu"
    # with Ray GPUs each training runs on the GPU Ray assigns it (the driver needs none)
    assert config.check_train_device(ray_gpus=1, on_ray=True) == "cuda"
    assert config.execution_device(ray_gpus=1, on_ray=True) == "auto"
    with pytest.raises(ConfigError, match="--train-device cuda on Ray needs --gpus-per-training"):
        config.replace(train_device="cuda").check_train_device(on_ray=True)
    with pytest.raises(ConfigError, match="use --train-device auto or cuda, not cuda:1"):
        config.replace(train_device="cuda:1").check_train_device(ray_gpus=1, on_ray=True)
    with pytest.raises(TrainingError, match="amp=fp16 needs a GPU"):  # before any measurement
        config.replace(recipe=Recipe(amp="fp16")).check_train_device()
    assert config.replace(accuracy_table="t.csv").check_train_device() is None  # no trainings


def test_a_resume_that_would_train_on_another_kind_of_device_is_refused(no_gpu, tmp_path):
    from hwnas.errors import HwnasError
    from hwnas.search.rundir import RunDir
    from hwnas.search.runner import _check_train_device

    run = RunDir.create(tmp_path / "run", RunConfig(budget_ms=1.0).resolved())
    _check_train_device(run, ray_gpus=0, on_ray=False)
    assert RunDir.open(tmp_path / "run").config.trained_on == "cpu"  # recorded by the first session
    _check_train_device(run, ray_gpus=0, on_ray=False)  # the same kind again: fine
    with pytest.raises(HwnasError, match="trained on cpu, and would train on cuda here"):
        _check_train_device(run, ray_gpus=1, on_ray=True)


# -- on a GPU (skipped without CUDA) -------------------------------------------------------------------------
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_training_on_cuda_learns_and_reports_the_gpu(amp):
    space, data = create_space("mobilenet"), create_dataset("digits")
    result = train(space, space.parse(ARCH), data, recipe=Recipe(amp=amp, epochs=3), device="cuda",
                   return_model=True, report_test=True)
    assert result.device.startswith("cuda") and result.val_accuracy > 0.5 and result.test_accuracy > 0.5
    assert next(result.model.parameters()).device.type == "cpu"  # handed back for export


@pytest.mark.gpu
@cuda
def test_auto_is_cuda_on_a_gpu_machine():
    assert devices.resolve("auto").type == "cuda" and devices.kind("auto") == "cuda"
