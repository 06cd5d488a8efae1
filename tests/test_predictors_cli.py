"""CLI of the predictors on a fake device profile: fit, show, list, predict and their error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.predictors import ArchFeaturizer
from hwnas.profiling import Conditions, ProfileStore, host_fingerprint
from hwnas.profiling.measure import make_record
from hwnas.spaces import create_space


def fake_profile(root, device="fake", n=40, seed=0):
    """A profile whose latency is a known function of MACs (no real measurement)."""
    space = create_space("mobilenet")
    store = ProfileStore(root, device)
    store.ensure(host_fingerprint(device, Conditions()))
    rng = np.random.default_rng(seed)
    archs = list({a.string: a for a in (space.sample(rng) for _ in range(n))}.values())
    featurizer = ArchFeaturizer(space="mobilenet").fit()
    macs = featurizer.transform(archs)[:, featurizer.feature_names_.index("macs")]
    for arch, m in zip(archs, macs):
        latency = float(0.03 + m / 3e7)
        store.add(make_record(space="mobilenet", arch=arch, input_shape=(1, 8, 8), num_classes=10,
                              stats={"median_ms": latency, "p10_ms": latency, "p90_ms": latency,
                                     "converged": True, "runs": 200}))
    return archs


def test_fit_show_list_predict(cli, tmp_path):
    archs = fake_profile(tmp_path / "profiles")
    common = ["--profiles-dir", tmp_path / "profiles", "--predictors-dir", tmp_path / "preds"]
    fit = cli("predictors", "fit", "latency", "--device", "fake", "--space", "mobilenet", *common)
    assert fit.exit_code == 0, fit.stderr
    assert "within_10pct" in fit.output
    name = "latency-fake-mobilenet-1x8x8"
    meta = json.loads((tmp_path / "preds" / name / "meta.json").read_text())
    assert meta["kind"] == "latency" and meta["n_train"] == len(archs) and meta["source"]["device"] == "fake"
    assert set(meta["scores"]) >= {"holdout", "cv"}
    show = cli("predictors", "show", name, "--predictors-dir", tmp_path / "preds")
    assert show.exit_code == 0 and "latency predictor" in show.output and "holdout" in show.output
    listing = cli("predictors", "list", "--predictors-dir", tmp_path / "preds")
    assert name in listing.output
    order = [archs[3].string, archs[1].string, archs[3].string]
    pred = cli("predict", *order, "--predictor", name, "--predictors-dir", tmp_path / "preds")
    lines = pred.output.strip().splitlines()
    assert pred.exit_code == 0 and [line.split("\t")[0] for line in lines] == order
    assert all(line.endswith(" ms") for line in lines) and lines[0] == lines[2]
    as_json = json.loads(cli("predict", archs[0].string, "--predictor", name, "--predictors-dir",
                             tmp_path / "preds", "--json").output)
    assert as_json["kind"] == "latency" and as_json["predictions"][0]["arch"] == archs[0].string
    assert as_json["predictions"][0]["prediction"] > 0


@pytest.mark.parametrize("args, message", [
    (["predictors", "fit", "latency", "--device", "nothere"], "no profile 'nothere'"),
    (["predictors", "fit", "latency", "--device", "small"], "at least 10"),
    (["predictors", "fit", "latency", "--device", "small", "--space", "nb201"], "no nb201 measurements"),
    (["predictors", "show", "missing"], "no predictor"),
    (["predict", "16:k3e1/24:k5e3/32:k7e6/48:k3e3", "--predictor", "missing"], "no predictor"),
])
def test_error_paths(cli, tmp_path, args, message):
    fake_profile(tmp_path / "profiles", device="small", n=5)
    result = cli(*args, "--profiles-dir", tmp_path / "profiles", "--predictors-dir", tmp_path / "preds") \
        if args[0] == "predictors" and args[1] == "fit" else cli(*args, "--predictors-dir", tmp_path / "preds")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "preds").exists() or not any((tmp_path / "preds").iterdir())


def test_predict_rejects_a_malformed_arch_before_printing(cli, tmp_path):
    fake_profile(tmp_path / "profiles")
    cli("predictors", "fit", "latency", "--device", "fake", "--profiles-dir", tmp_path / "profiles",
        "--predictors-dir", tmp_path / "preds")
    result = cli("predict", "16:k3e1/24:k5e3/32:k7e6/48:k3e3", "garbage", "--predictor",
                 "latency-fake-mobilenet-1x8x8", "--predictors-dir", tmp_path / "preds")
    assert result.exit_code == 1 and result.stdout == "" and "expected 4 stages" in result.stderr


def test_fit_accuracy_from_a_table_and_from_stored_trainings(cli, tmp_path):
    from training_helpers import CountingEvaluator

    from hwnas.data import create_dataset
    from hwnas.training import DEFAULT_RECIPE, EvalStore

    space = create_space("nb201")
    rng = np.random.default_rng(0)
    archs = sorted({space.sample(rng).string for _ in range(60)})
    table = tmp_path / "acc.csv"
    table.write_text("arch,accuracy\n" + "".join(f"{a},{0.5 + 0.07 * a.count('conv_3x3'):.4f}\n" for a in archs))
    fit = cli("predictors", "fit", "accuracy", "--space", "nb201", "--accuracy-table", table,
              "--predictors-dir", tmp_path / "preds")
    assert fit.exit_code == 0, fit.stderr
    meta = json.loads((tmp_path / "preds" / "accuracy-nb201-acc" / "meta.json").read_text())
    assert meta["n_train"] == len(archs) and meta["scores"]["cv"]["kendall"] > 0.7

    store = EvalStore(tmp_path / "evals.sqlite")
    digits = create_dataset("digits")
    evaluator = CountingEvaluator()
    for arch in archs[:30]:
        store.evaluate(space, arch, digits, recipe=DEFAULT_RECIPE, seed=0, trainer=evaluator)
    for arch in archs[:5]:  # another seed of a few: averaged, not counted twice
        store.evaluate(space, arch, digits, recipe=DEFAULT_RECIPE, seed=1, trainer=evaluator)
    fit = cli("predictors", "fit", "accuracy", "--space", "nb201", "--dataset", "digits", "--store",
              tmp_path / "evals.sqlite", "--predictors-dir", tmp_path / "preds")
    assert fit.exit_code == 0, fit.stderr
    meta = json.loads((tmp_path / "preds" / "accuracy-nb201-digits" / "meta.json").read_text())
    assert meta["n_train"] == 30 and meta["source"]["epochs"] == DEFAULT_RECIPE.epochs
    predicted = cli("predict", archs[0], "--predictor", "accuracy-nb201-digits", "--predictors-dir",
                    tmp_path / "preds")
    assert predicted.exit_code == 0 and " ± " in predicted.stdout

    too_few = cli("predictors", "fit", "accuracy", "--space", "nb201", "--store", tmp_path / "evals.sqlite",
                  "--epochs", "1", "--predictors-dir", tmp_path / "preds")
    assert too_few.exit_code == 1 and "no stored trainings" in too_few.stderr
    no_store = cli("predictors", "fit", "accuracy", "--store", tmp_path / "none.sqlite")
    assert no_store.exit_code == 1 and "no evaluation store" in no_store.stderr


@pytest.mark.parametrize("name", ["../victim", "..", ".", "/tmp/abs-victim", "sub/dir", "-x", "victim "])
def test_a_predictor_name_is_one_folder_name_and_nothing_outside_is_touched(cli, tmp_path, name):
    fake_profile(tmp_path / "profiles")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    preds = tmp_path / "preds"
    result = cli("predictors", "fit", "latency", "--device", "fake", "--profiles-dir", tmp_path / "profiles",
                 "--predictors-dir", preds, "--name", name)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "predictor name" in lines[0] and "not a path" in lines[0], result.stderr
    assert (victim / "precious.txt").read_text() == "keep me" and not preds.exists()
    for command in (("predictors", "show", name), ("predict", "16:k3e1/24:k3e1/32:k3e1/48:k3e1", "--predictor",
                                                   name)):
        shown = cli(*command, "--predictors-dir", preds)
        assert shown.exit_code != 0 and len(shown.stderr.strip().splitlines()) == 1
        assert "predictor name" in shown.stderr or name.startswith("-")  # "-x" reads as an option there


def test_an_existing_folder_that_is_no_predictor_is_never_replaced(cli, tmp_path):
    fake_profile(tmp_path / "profiles")
    notes = tmp_path / "preds" / "notes"
    notes.mkdir(parents=True)
    (notes / "todo.txt").write_text("keep me")
    result = cli("predictors", "fit", "latency", "--device", "fake", "--profiles-dir", tmp_path / "profiles",
                 "--predictors-dir", tmp_path / "preds", "--name", "notes")
    assert result.exit_code == 1 and "is not a predictor folder" in result.stderr
    assert (notes / "todo.txt").read_text() == "keep me" and sorted(p.name for p in notes.parent.iterdir()) == ["notes"]


@pytest.fixture(scope="module")
def fitted_latency_predictor(tmp_path_factory):
    """One latency predictor fit by the CLI, copied by each test that tampers with it."""
    from click.testing import CliRunner

    from hwnas.cli import main

    tmp = tmp_path_factory.mktemp("fitted")
    fake_profile(tmp / "profiles")
    result = CliRunner().invoke(main, ["predictors", "fit", "latency", "--device", "fake", "--profiles-dir",
                                       str(tmp / "profiles"), "--predictors-dir", str(tmp / "preds"),
                                       "--no-transfer"])  # the XGBoost ensemble, whose files these tests tamper with
    assert result.exit_code == 0, result.output
    return tmp / "preds" / "latency-fake-mobilenet-1x8x8"


@pytest.mark.parametrize("models", [["/etc/passwd"], ["../../outside.json"], ["model_0.json", "x/model_1.json"],
                                    "model_0.json", []])
def test_files_named_in_meta_json_are_confined_to_the_predictor_folder(cli, tmp_path, models,
                                                                       fitted_latency_predictor):
    import shutil

    from hwnas.predictors import LatencyPredictor, PredictorError

    folder = tmp_path / "preds" / fitted_latency_predictor.name
    shutil.copytree(fitted_latency_predictor, folder)
    (tmp_path / "outside.json").write_text("{}")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "models": models}))
    with pytest.raises(PredictorError, match="model_<n>.json in its folder"):
        LatencyPredictor.load(folder)
    result = cli("predict", "16:k3e1/24:k3e1/32:k3e1/48:k3e1", "--predictor", folder.name,
                 "--predictors-dir", tmp_path / "preds")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "root:" not in result.stderr
