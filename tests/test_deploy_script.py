"""The deploy script of README and docs/guides/deploy.md (``examples/classify.py``, included verbatim) on
exported tiny models: with only onnxruntime, numpy and Pillow it classifies image files exactly as ``hwnas
evaluate`` does, for a float-input model and for a ``--raw-input`` (uint8 NHWC) one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwnas.data.base import stratified_split
from hwnas.data.folder import ImageFolderDataset
from hwnas.data.preprocess import Preprocess, PreprocessError
from hwnas.deploy.evaluate import evaluate_file, read_model
from hwnas.onnx_export import read_metadata

from deploy_helpers import TINY, percent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "classify.py"
SHAPE = "3x12x12"


def _image_folder(root: Path) -> Path:
    """Three colour classes of PNG and JPEG images of assorted sizes (the model resizes them to 12x12)."""
    rng = np.random.default_rng(0)
    for label, colour in (("cat", (200, 40, 40)), ("dog", (40, 40, 200)), ("fox", (40, 200, 40))):
        (root / label).mkdir(parents=True)
        for i in range(10):
            w, h = (int(v) for v in rng.integers(9, 16, size=2))
            pixels = np.clip(np.array(colour) + rng.normal(0, 60, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A float-input and a raw-input export of one tiny architecture, trained the same way."""
    from click.testing import CliRunner

    from hwnas.cli import main

    tmp = tmp_path_factory.mktemp("deploy-script")
    images = _image_folder(tmp / "images")
    models = {}
    for name, extra in (("float", []), ("raw", ["--raw-input"])):
        out = tmp / f"{name}.onnx"
        result = CliRunner().invoke(main, ["export", "-o", str(out), "--arch", TINY, "--dataset", str(images),
                                           "--input-shape", SHAPE, "--epochs", "40", "--train-threads", "1",
                                           *extra])
        assert result.exit_code == 0, result.output + result.stderr
        models[name] = out
    return images, models


def _test_files(images: Path, metadata: dict[str, str]) -> list[Path]:
    data = ImageFolderDataset(images, input_shape=(3, 12, 12))
    labels = np.array([label for _, label in data.files])
    _, _, test = stratified_split(labels, val_fraction=data.val_fraction, test_fraction=data.test_fraction,
                                  seed=int(metadata["split_seed"]))
    return [data.files[i][0] for i in test]


@pytest.mark.parametrize("page", ["README.md", "docs/guides/deploy.md"])
def test_readme_includes_the_deploy_script_verbatim(page):
    readme = (ROOT / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert SCRIPT.read_text(encoding="utf-8") in blocks
    assert len(SCRIPT.read_text(encoding="utf-8").splitlines()) <= 16
    imports = set(re.findall(r"^(?:import|from) (\w+)", SCRIPT.read_text(encoding="utf-8"), flags=re.M))
    assert imports <= {"json", "sys", "numpy", "onnxruntime", "PIL"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["float", "raw"])
def test_deploy_script_matches_hwnas_evaluate_on_the_test_split(exported, cli, kind):
    images, models = exported
    model = models[kind]
    metadata = read_metadata(model)
    files = _test_files(images, metadata)
    run = subprocess.run([sys.executable, str(SCRIPT), str(model), *map(str, files)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    predicted = [line.rsplit(" ", 1)[1] for line in run.stdout.splitlines()]
    assert len(predicted) == len(files) == 6

    evaluation, info = evaluate_file(*read_model(model), dataset=str(images))  # the model names it, not its path
    classes = json.loads(metadata["class_names"])
    assert predicted == [classes[i] for i in evaluation.predictions]  # image by image
    assert len(set(predicted)) > 1  # a model that answers one class would prove little
    accuracy = np.mean([p == f.parent.name for p, f in zip(predicted, files)])
    evaluated = cli("evaluate", model, "--dataset", images)
    assert evaluated.exit_code == 0, evaluated.stderr
    assert percent(evaluated.output, r"test accuracy ([\d.]+)%") == pytest.approx(100 * accuracy, abs=0.01)
    assert "reproduced" in evaluated.output


@pytest.mark.slow
def test_raw_input_model_takes_uint8_nhwc_and_says_so(exported):
    _, models = exported
    float_pre = Preprocess.from_metadata(read_metadata(models["float"]))
    raw_pre = Preprocess.from_metadata(read_metadata(models["raw"]))
    assert (float_pre.dtype, float_pre.layout, float_pre.input_shape()) == ("float32", "NCHW", (3, 12, 12))
    assert (raw_pre.dtype, raw_pre.layout, raw_pre.input_shape()) == ("uint8", "NHWC", (12, 12, 3))
    assert raw_pre.to_dict()["scaling"]["in_graph"] and not float_pre.to_dict()["scaling"]["in_graph"]
    import onnx

    graph_input = onnx.load(str(models["raw"])).graph.input[0].type.tensor_type
    assert graph_input.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in graph_input.shape.dim] == [1, 12, 12, 3]
    # Same training, same weights: the raw model's logits are the float model's, bit for bit.
    from hwnas.deploy.evaluate import predict

    x = ImageFolderDataset(exported[0], input_shape=(3, 12, 12)).splits(0).x_test
    np.testing.assert_array_equal(predict(models["raw"].read_bytes(), raw_pre.model_inputs(x)),
                                  predict(models["float"].read_bytes(), x))


def test_preprocess_entry_round_trips_and_documents_the_scaling():
    from hwnas.data import create_dataset

    digits = create_dataset("digits").preprocess()
    assert digits.to_dict()["scaling"]["formula"] == "(x / 16 - 0.5) / 0.5" and digits.resize is None
    assert digits.to_dict()["output"] == "logits" and digits.colour_mode == "L"
    for p in (digits, Preprocess(3, 5, 7, resize="bilinear"), Preprocess(3, 5, 7).as_raw()):
        assert Preprocess.from_metadata({"preprocess": p.to_json()}) == p
    assert Preprocess.from_metadata({}) is None  # a file exported before the entry existed
    with pytest.raises(PreprocessError, match="not JSON"):
        Preprocess.from_metadata({"preprocess": "{"})
    # Raw pixels invert the scaling exactly; digits' noise is not whole pixel values.
    clean = create_dataset("digits", noise=0.0)
    x = clean.splits(0).x_test
    raw = clean.preprocess().as_raw().model_inputs(x)
    assert raw.dtype == np.uint8 and raw.shape == (len(x), 8, 8, 1) and raw.max() == 16
    with pytest.raises(PreprocessError, match="whole pixel values"):
        digits.as_raw().model_inputs(create_dataset("digits").splits(0).x_test)


def test_raw_input_export_of_noisy_digits_fails_before_training(cli, tmp_path):
    result = cli("export", "-o", tmp_path / "m.onnx", "--arch", TINY, "--dataset", "digits", "--raw-input")
    assert result.exit_code == 1 and "whole pixel values" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "training" not in result.output
    assert list(tmp_path.iterdir()) == []
