"""Predictors on synthetic data: metrics, featurisation, learning, uncertainty, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import ArchError
from hwnas.predictors import (AccuracyPredictor, ArchFeaturizer, LatencyPredictor, PredictorError, XGBPredictor,
                              assess)
from hwnas.predictors import metrics
from hwnas.spaces import create_space


def synthetic_nb201(n: int, seed: int = 0, noise: float = 0.003):
    """A known function of the encoding: conv ops help, 'none' hurts."""
    space = create_space("nb201")
    rng = np.random.default_rng(seed)
    archs = list({space.sample(rng).string for _ in range(n * 2)})[:n]
    y = np.array([0.6 + 0.05 * a.count("nor_conv_3x3") + 0.02 * a.count("nor_conv_1x1") - 0.04 * a.count("none")
                  for a in archs]) + rng.normal(0, noise, len(archs))
    return archs, y


# --- metrics on known inputs ------------------------------------------------------------------------------

def test_relative_error_metrics():
    true, pred = [1.0, 2.0, 4.0, 10.0], [1.04, 2.3, 4.0, 9.2]
    assert metrics.within(true, pred, 0.05) == 0.5
    assert metrics.within(true, pred, 0.10) == 0.75
    assert metrics.mape(true, pred) == pytest.approx((4 + 15 + 0 + 8) / 4)
    assert metrics.rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert metrics.mae([1, 2], [2, 4]) == 1.5


def test_rank_metrics():
    y = np.arange(20.0)
    assert metrics.kendall(y, y * 3 + 1) == pytest.approx(1.0)
    assert metrics.kendall(y, -y) == pytest.approx(-1.0)
    assert metrics.spearman(y, y ** 3) == pytest.approx(1.0)
    assert np.isnan(metrics.kendall(y, np.ones(20)))


def test_top_k_precision():
    true = np.arange(20.0)
    pred = true.copy()
    pred[19], pred[0] = pred[0], pred[19]  # the best is predicted worst
    assert metrics.top_k_precision(true, pred, 10) == 0.9
    assert metrics.top_k_precision(true, true, 10) == 1.0
    assert metrics.top_k_precision(true, -true, 10) == 0.0


# --- featurisation --------------------------------------------------------------------------------------

@pytest.mark.parametrize("space_name", ["mobilenet", "nb201"])
def test_unit_features_add_up_to_the_whole_model(space_name):
    space = create_space(space_name)
    featurizer = ArchFeaturizer(space=space_name, input_shape=(3, 16, 16), num_classes=5).fit()
    names = featurizer.feature_names_
    for seed in range(4):
        arch = space.sample(np.random.default_rng(seed))
        whole = space.features(arch, (3, 16, 16), 5)
        row = featurizer.transform([arch.string])[0]
        for key in ("params", "macs", "macs_depthwise", "activation_elems", "peak_activation_elems", "leaf_modules"):
            assert row[names.index(key)] == pytest.approx(whole[key], rel=1e-6), key
        stage_macs = sum(row[i] for i, n in enumerate(names) if n.endswith(":macs"))
        assert stage_macs == pytest.approx(whole["macs"], rel=1e-6)


def test_featurizer_rejects_bad_architectures_and_has_a_stable_schema():
    featurizer = ArchFeaturizer(space="nb201").fit()
    with pytest.raises(ArchError):
        featurizer.transform(["|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    assert featurizer.schema == ArchFeaturizer(space="nb201").fit().schema
    assert featurizer.schema != ArchFeaturizer(space="nb201", analytic=False).fit().schema
    assert featurizer.transform([]).shape == (0, len(featurizer.feature_names_))


# --- learning ---------------------------------------------------------------------------------------------

def test_accuracy_predictor_learns_a_synthetic_function_far_above_a_shuffled_baseline():
    archs, y = synthetic_nb201(300)
    train, test = slice(0, 100), slice(100, None)
    tau = metrics.kendall(y[test], AccuracyPredictor(space="nb201").fit(archs[train], y[train]).predict(archs[test]))
    shuffled = np.random.default_rng(1).permutation(y[train])
    tau_shuffled = metrics.kendall(y[test], AccuracyPredictor(space="nb201").fit(archs[train], shuffled)
                                   .predict(archs[test]))
    assert tau > 0.8
    assert tau > tau_shuffled + 0.5


def test_uncertainty_is_an_ensemble_spread():
    archs, y = synthetic_nb201(60)
    predictor = AccuracyPredictor(space="nb201", ensemble_size=6).fit(archs[:40], y[:40])
    mean, std = predictor.predict_dist(archs[40:])
    assert mean.shape == std.shape == (20,)
    assert np.all(std >= 0) and std.max() > 0
    members = predictor._member_predictions(archs[40:])
    assert np.allclose(mean, members.mean(0)) and np.allclose(std, members.std(0))


def test_latency_predictor_works_in_relative_terms():
    space = create_space("mobilenet")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng).string for _ in range(150)]
    featurizer = ArchFeaturizer(space="mobilenet").fit()
    macs = featurizer.transform(archs)[:, featurizer.feature_names_.index("macs")]
    y = 0.05 + macs / 2e7  # ms: a fixed overhead plus a cost per MAC
    predictor = LatencyPredictor(space="mobilenet").fit(archs[:100], y[:100])
    assert metrics.within(y[100:], predictor.predict(archs[100:]), 0.10) > 0.9
    with pytest.raises(PredictorError, match="positive"):
        LatencyPredictor(space="mobilenet").fit(archs[:3], [1.0, 0.0, 2.0])


def test_same_seed_same_predictor():
    archs, y = synthetic_nb201(50)
    a = AccuracyPredictor(space="nb201", random_state=3).fit(archs, y).predict(archs)
    b = AccuracyPredictor(space="nb201", random_state=3).fit(archs, y).predict(archs)
    c = AccuracyPredictor(space="nb201", random_state=4).fit(archs, y).predict(archs)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_assess_reports_holdout_and_cv():
    archs, y = synthetic_nb201(80)
    report = assess(lambda: AccuracyPredictor(space="nb201", ensemble_size=2), archs, y, folds=3)
    assert report["n"] == 80 and report["holdout_n"] == 16 and report["folds"] == 3
    assert set(report["holdout"]) == set(report["cv"]) == {"kendall", "spearman", "mae", "top10_precision"}
    assert report["cv"]["kendall"] > 0.5


# --- persistence ----------------------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(tmp_path):
    archs, y = synthetic_nb201(50)
    predictor = AccuracyPredictor(space="nb201").fit(archs[:40], y[:40])
    predictor.save(tmp_path / "acc", scores={"holdout": {"kendall": 0.9}}, source={"dataset": "synthetic"})
    loaded = XGBPredictor.load(tmp_path / "acc", space="nb201")
    assert isinstance(loaded, AccuracyPredictor)
    for got, want in zip(loaded.predict_dist(archs[40:]), predictor.predict_dist(archs[40:])):
        assert np.array_equal(got, want)
    meta = json.loads((tmp_path / "acc" / "meta.json").read_text())
    assert meta["schema_version"] == 1 and meta["kind"] == "accuracy" and meta["n_train"] == 40
    assert meta["scores"]["holdout"]["kendall"] == 0.9 and meta["source"] == {"dataset": "synthetic"}
    assert sorted(p.name for p in (tmp_path / "acc").iterdir()) == ["meta.json"] + [f"model_{i}.json"
                                                                                 for i in range(8)]
    # Saving again replaces the folder and leaves no staging folder behind.
    predictor.save(tmp_path / "acc")
    assert [p.name for p in tmp_path.iterdir()] == ["acc"]


def test_a_full_disk_while_saving_keeps_the_old_predictor(tmp_path, monkeypatch):
    """Every model file goes through a write Python checks (XGBoost's own save_model can leave a truncated file
    without an error on a full disk); /dev/full gives the real ENOSPC."""
    import hwnas.predictors.model as model_module

    archs, y = synthetic_nb201(40)
    old = AccuracyPredictor(space="nb201", ensemble_size=2, n_estimators=20).fit(archs[:30], y[:30])
    old.save(tmp_path / "acc")
    new = AccuracyPredictor(space="nb201", ensemble_size=2, n_estimators=20, random_state=1).fit(archs, y)

    def full_disk(path, data):
        with open("/dev/full", "wb") as handle:
            handle.write(data)
            handle.flush()

    monkeypatch.setattr(model_module, "atomic_write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        new.save(tmp_path / "acc")
    assert [p.name for p in tmp_path.iterdir()] == ["acc"]  # no staging folder left
    kept = XGBPredictor.load(tmp_path / "acc")
    assert np.array_equal(kept.predict(archs[30:]), old.predict(archs[30:]))


def test_mismatched_or_corrupt_loads_are_rejected(tmp_path):
    archs, y = synthetic_nb201(30)
    AccuracyPredictor(space="nb201").fit(archs, y).save(tmp_path / "acc")
    with pytest.raises(PredictorError, match="'nb201' space, not 'mobilenet'"):
        XGBPredictor.load(tmp_path / "acc", space="mobilenet")
    with pytest.raises(PredictorError, match="input shape"):
        XGBPredictor.load(tmp_path / "acc", input_shape=(3, 32, 32))
    with pytest.raises(PredictorError, match="not a latency one"):
        LatencyPredictor.load(tmp_path / "acc")
    meta_path = tmp_path / "acc" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "features": meta["features"][:-1]}))
    with pytest.raises(PredictorError, match="different feature schema"):
        XGBPredictor.load(tmp_path / "acc")
    meta_path.write_text("{not json")
    with pytest.raises(PredictorError, match="corrupt"):
        XGBPredictor.load(tmp_path / "acc")
    with pytest.raises(PredictorError, match="no predictor"):
        XGBPredictor.load(tmp_path / "missing")


def test_both_predictors_satisfy_the_predictor_protocol(tmp_path):
    """The loop asks only for :class:`~hwnas.predictors.base.Predictor`; both built-in predictors satisfy it,
    fitted and reloaded alike, and predict a mean and a spread per architecture."""
    import numpy as np

    from hwnas.predictors import AccuracyPredictor, LatencyPredictor, Predictor
    from hwnas.spaces import create_space

    space = create_space("nb201")
    archs = space.sample_distinct(12, np.random.default_rng(0))
    for cls, y in ((LatencyPredictor, np.linspace(1.0, 2.0, 12)), (AccuracyPredictor, np.linspace(0.4, 0.6, 12))):
        model = cls(space="nb201", ensemble_size=2, n_estimators=10)
        assert isinstance(model, Predictor)
        fitted = model.fit(archs, y, featurizer=model.shared_featurizer())
        assert fitted is model and model.shared_featurizer() is cls(space="nb201").shared_featurizer()
        loaded = cls.load(model.save(tmp_path / model.kind))
        assert isinstance(loaded, Predictor) and loaded.kind == model.kind
        mean, std = loaded.predict_dist(archs)
        assert mean.shape == std.shape == (12,) and np.allclose(mean, model.predict(archs), rtol=1e-5)
