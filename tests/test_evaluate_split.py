"""``hwnas evaluate --split all|test`` and the shipped files' paths (issue 33): a model trained on the user's image
folder names that data set by its name and key, never by a path of the machine that exported it (nor does the
HTML report of a run); ``hwnas evaluate`` scores the test split of the data set the model was trained on and
every example of other data, and still reads old models that hold a path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deploy_helpers import TINY, one_error_line, percent


def _images(root, per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    for label, colour in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, size=(10, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A model trained on the folder ``my images`` (20 images, 4 of them its test split) and another folder of
    12 images of the same classes."""
    from click.testing import CliRunner

    from hwnas.cli import main

    tmp = tmp_path_factory.mktemp("shipped")
    images, other = _images(tmp / "my images", 10, 0), _images(tmp / "other", 6, 1)
    model = tmp / "out" / "model.onnx"
    result = CliRunner().invoke(main, ["export", "-o", str(model), "--arch", TINY, "--dataset", str(images),
                                       "--input-shape", "1x8x8", "--epochs", "1", "--train-threads", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    return tmp, images, other, model


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _no_path_of(tmp, texts):
    roots = {str(tmp), str(tmp.resolve())}
    leaks = [t for t in texts if any(root in t for root in roots)]
    assert leaks == []


@pytest.mark.slow
def test_exported_files_name_the_folder_not_its_path(exported):
    import torch

    from hwnas.onnx_export import read_metadata

    tmp, images, _, model = exported
    meta = read_metadata(model)
    _no_path_of(tmp, list(meta) + list(meta.values()))
    assert meta["dataset"] == "my images" and meta["dataset_source"] == "path"
    assert meta["dataset_key"].startswith("folder:my images@") and meta["dataset_input_shape"] == "1x8x8"
    weights = torch.load(model.with_suffix(".pt"), weights_only=True)
    _no_path_of(tmp, list(_strings({k: v for k, v in weights.items() if k != "state_dict"})))
    assert weights["dataset"] == "my images"


@pytest.mark.slow
def test_evaluate_scores_the_test_split_of_its_data_and_all_of_other_data(cli, exported):
    import hwnas

    tmp, images, other, model = exported
    # The folder's path is not in the model: it is asked for, in one line.
    one_error_line(cli("evaluate", model), "my images", "--dataset PATH")
    one_error_line(cli("evaluate", model, "--latency-only", "--split", "all"), "--latency-only")

    same = cli("evaluate", model, "--dataset", images)  # the recorded -D options and input shape apply
    assert same.exit_code == 0, same.stderr
    assert "on the test split (4 of 20 examples) of folder:my images@" in same.output
    assert "reproduced" in same.output
    whole = cli("evaluate", model, "--dataset", images, "--split", "all")
    assert whole.exit_code == 0, whole.stderr
    assert "(20 examples)" not in whole.output and "/20) on all 20 examples of folder:my images@" in whole.output
    assert "not comparable with all examples" in whole.output

    new = cli("evaluate", model, "--dataset", other, "--json")  # other data: every example by default
    assert new.exit_code == 0, new.stderr
    accuracy = json.loads(new.stdout)["accuracy"]
    assert accuracy["split"] == "all" and accuracy["total"] == accuracy["examples"] == 12
    assert accuracy["test_accuracy"] is None and accuracy["comparable"] is False
    assert accuracy["dataset_key"].startswith("folder:other@")
    assert 0 <= accuracy["accuracy"] <= 1 and accuracy["reproduced"] is None
    test_only = cli("evaluate", model, "--dataset", other, "--split", "test")
    assert test_only.exit_code == 0, test_only.stderr
    assert "on the test split (2 of 12 examples) of folder:other@" in test_only.output
    assert "not comparable" in test_only.output

    # The Python API, with the same default.
    assert hwnas.evaluate(model, dataset=str(images)).split == "test"
    assert hwnas.evaluate(model, dataset=str(images)).total == 4
    evaluation = hwnas.evaluate(model, dataset=str(other))
    assert evaluation.split == "all" and evaluation.total == 12
    assert hwnas.evaluate(model, dataset=str(other), split="test").total == 2


@pytest.mark.slow
def test_evaluate_still_reads_an_old_model_that_holds_a_path(cli, exported):
    import onnx

    from hwnas.onnx_export import set_metadata

    tmp, images, _, model = exported
    proto = onnx.load(str(model))
    old = {p.key: p.value for p in proto.metadata_props if p.key != "dataset_source"}
    del proto.metadata_props[:]
    set_metadata(proto, {**old, "dataset": str(images)})  # as hwnas wrote it before issue 33
    old_model = tmp / "old.onnx"
    onnx.save(proto, str(old_model))
    evaluated = cli("evaluate", old_model)
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "test split (4 of 20 examples)" in evaluated.output and "reproduced" in evaluated.output
    stored = float(old["test_accuracy"])
    assert percent(evaluated.output, r"test accuracy ([\d.]+)%") == pytest.approx(100 * stored, abs=0.01)


def test_report_holds_no_path_of_the_machine(tmp_path):
    from hwnas.search.config import RunConfig
    from hwnas.search.report import RunView, render
    from hwnas.search.result import Trial

    config = RunConfig(budget_ms=2.0, dataset=str(tmp_path / "my images"), dataset_name="my_images",
                       dataset_key="folder:my images@0123456789ab[1x8x8]", input_shape=(1, 8, 8), num_classes=2,
                       latency_table=str(tmp_path / "lat.csv"), accuracy_table=str(tmp_path / "acc.csv"),
                       store=str(tmp_path / "evals.sqlite"), profiles_dir=str(tmp_path / "profiles"),
                       device="table-lat")
    trials = [Trial(number=1, arch=TINY, accuracy=0.5, latency_ms=1.0, round=1)]
    run = RunView(name="run", path=tmp_path / "runs" / "run", config=config, result=None, trials=trials,
                  measured=[{"arch": TINY, "latency_ms": 1.0}], history=[])
    page = render([run])
    _no_path_of(tmp_path, [page])
    assert "folder:my images@0123456789ab[1x8x8]" in page and "lat.csv" in page and "evals.sqlite" in page
