"""Structure features of the spaces (effective cell, path encoding, counts) and the predictor options that use
them, on architectures whose answers are worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.predictors import AccuracyPredictor, ArchFeaturizer, LatencyPredictor, PredictorError, XGBPredictor
from hwnas.spaces import create_space
from hwnas.spaces.nb201 import CELL_STATS, effective_ops

NB201 = create_space("nb201")


def structure(string: str, space=NB201) -> dict[str, float]:
    return dict(zip(space.structure_names(), space.structure(space.parse(string)).tolist()))


def cell(e10: str, e20: str, e21: str, e30: str, e31: str, e32: str) -> str:
    return f"|{e10}~0|+|{e20}~0|{e21}~1|+|{e30}~0|{e31}~1|{e32}~2|"


def test_names_match_values_for_every_space():
    for name in ("nb201", "mobilenet"):
        space = create_space(name)
        arch = space.sample(np.random.default_rng(0))
        values = space.structure(arch)
        assert values.dtype == np.float32 and values.shape == (len(space.structure_names()),)
        assert len(set(space.structure_names())) == len(space.structure_names())


def test_only_a_skip_from_input_to_output():
    s = structure(cell("none", "none", "none", "skip_connect", "none", "none"))
    assert s["eff:3<-0=skip_connect"] == 1 and s["count:none"] == 5 and s["count:skip_connect"] == 1
    assert s["path:skip"] == 1 and sum(v for k, v in s.items() if k.startswith("path:")) == 1
    assert (s["live_edges"], s["paths"], s["skip_path"], s["convfree_path"]) == (1, 1, 1, 1)
    assert (s["max_convs"], s["min_convs"], s["longest_path"], s["shortest_path"]) == (0, 0, 1, 1)
    assert s["conv_weight"] == 0


def test_dead_edges_count_as_none():
    # 1<-0 conv feeds node 1, but node 1 reaches nothing (3<-1 and 2<-1 are none): dead.
    # 3<-2 conv has no live input (2<-0 and 2<-1 are none): dead. Only 3<-0 conv3x3 computes.
    string = cell("nor_conv_3x3", "none", "none", "nor_conv_3x3", "none", "nor_conv_1x1")
    assert effective_ops(["nor_conv_3x3", "none", "none", "nor_conv_3x3", "none", "nor_conv_1x1"]) == (
        "none", "none", "none", "nor_conv_3x3", "none", "none")
    s = structure(string)
    assert s["eff:1<-0=none"] == 1 and s["eff:3<-2=none"] == 1 and s["eff:3<-0=nor_conv_3x3"] == 1
    assert s["count:none"] == 5 and s["count:nor_conv_3x3"] == 1 and s["count:nor_conv_1x1"] == 0
    assert s["live_edges"] == 1 and s["conv_weight"] == 9
    # the same effective cell, whatever the dead edges carry
    other = structure(cell("avg_pool_3x3", "none", "none", "nor_conv_3x3", "none", "skip_connect"))
    assert other == s


def test_a_cell_cut_off_from_its_output_does_nothing():
    s = structure(cell("nor_conv_3x3", "nor_conv_3x3", "skip_connect", "none", "none", "none"))
    assert s["count:none"] == 6 and s["paths"] == 0 and s["live_edges"] == 0
    assert s["max_convs"] == 0 and s["skip_path"] == 0 and s["convfree_path"] == 0


def test_path_encoding_of_a_known_cell():
    # The docstring cell of nb201.py. Paths: 0-3 skip; 0-1-3 conv3 conv3; 0-2-3 conv3 conv1;
    # 0-1-2-3 conv3 conv3 conv1.
    conv3, conv1 = "nor_conv_3x3", "nor_conv_1x1"
    string = cell(conv3, conv3, conv3, "skip_connect", conv3, conv1)
    s = structure(string)
    paths = {k: v for k, v in s.items() if k.startswith("path:") and v}
    assert paths == {"path:skip": 1, "path:conv3x3-conv3x3": 1, "path:conv3x3-conv1x1": 1,
                     "path:conv3x3-conv3x3-conv1x1": 1}
    assert (s["paths"], s["max_convs"], s["min_convs"]) == (4, 3, 0)
    assert (s["max_conv3x3"], s["conv3x3_on_paths"]) == (2, 5)
    assert (s["longest_path"], s["shortest_path"], s["conv_weight"]) == (3, 1, 4 * 9 + 1)
    assert len([k for k in s if k.startswith("path:")]) == 4 + 16 + 64
    assert set(CELL_STATS) <= set(s)


def test_two_paths_with_the_same_ops_count_twice():
    s = structure(cell("skip_connect", "skip_connect", "none", "none", "avg_pool_3x3", "avg_pool_3x3"))
    assert s["path:skip-pool"] == 2 and s["paths"] == 2 and s["convfree_path"] == 1 and s["skip_path"] == 0


def test_mobilenet_structure_counts_blocks():
    space = create_space("mobilenet")
    s = structure("16:k3e1/24:k5e3.k3e6se/32:k7e6/48:k3e3se.k3e3", space)
    assert s["depth"] == 6 and (s["kernel=3"], s["kernel=5"], s["kernel=7"]) == (4, 1, 1)
    assert (s["expand=1"], s["expand=3"], s["expand=6"], s["se"]) == (1, 3, 2, 2)
    assert (s["s1.kernel_sum"], s["s1.expand_sum"], s["s1.se"]) == (8, 9, 1)


@pytest.mark.parametrize("space_name", ["nb201", "mobilenet"])
def test_featurizer_names_match_columns_and_options_switch_groups(space_name):
    space = create_space(space_name)
    archs = [a.string for a in space.sample_distinct(5, np.random.default_rng(1))]
    full = ArchFeaturizer(space=space_name).fit()
    x = full.transform(archs)
    assert x.shape == (5, len(full.feature_names_))
    struct = [n for n in full.feature_names_ if n.startswith("struct:")]
    assert struct == [f"struct:{n}" for n in space.structure_names()]
    off = ArchFeaturizer(space=space_name, structure=False).fit()
    assert off.feature_names_ == [n for n in full.feature_names_ if not n.startswith("struct:")]
    assert off.schema != full.schema
    np.testing.assert_array_equal(off.transform(archs), x[:, [full.feature_names_.index(n)
                                                             for n in off.feature_names_]])
    dropped = ArchFeaturizer(space=space_name, drop=("enc:", "struct:s")).fit()
    assert not any(n.startswith(("enc:", "struct:s")) for n in dropped.feature_names_)
    np.testing.assert_array_equal(dropped.transform(archs), x[:, [full.feature_names_.index(n)
                                                                 for n in dropped.feature_names_]])


def _toy(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """nb201 cells with a known accuracy-like target: more live 3x3 convolutions on paths is better."""
    archs = NB201.sample_distinct(n, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    y = np.array([0.1 + 0.1 * structure(a.string)["conv3x3_on_paths"] + 0.01 * rng.normal() for a in archs])
    return [a.string for a in archs], y


def test_rank_objective_fits_and_orders():
    archs, y = _toy()
    model = AccuracyPredictor(space="nb201", objective="rank:pairwise", n_estimators=60,
                              ensemble_size=2).fit(archs[:40], y[:40])
    assert model.ranks and not hasattr(model, "target_map_")  # scores: no map back to accuracies
    mean, std = model.predict_dist(archs[40:])
    assert mean.shape == std.shape == (20,) and np.all(std >= 0)
    assert np.corrcoef(mean, y[40:])[0, 1] > 0.5


def test_quantile_target_predicts_accuracies_and_round_trips(tmp_path):
    archs, y = _toy()
    model = AccuracyPredictor(space="nb201", n_estimators=60, ensemble_size=3).fit(archs[:40], y[:40])
    assert model.target == "quantile"
    mean, std = model.predict_dist(archs[40:])
    assert np.all(std >= 0) and np.corrcoef(mean, y[40:])[0, 1] > 0.5
    assert y.min() - 0.1 < mean.min() and mean.max() < y.max() + 0.1  # accuracies, not normal scores
    model.save(tmp_path / "p")
    loaded = XGBPredictor.load(tmp_path / "p")
    np.testing.assert_allclose(loaded.predict(archs[40:]), mean, rtol=1e-6)
    meta_path = tmp_path / "p" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "target_map": None}))
    with pytest.raises(PredictorError, match="target_map"):
        XGBPredictor.load(tmp_path / "p")


def test_bad_objective_and_target_combinations_are_refused():
    archs, y = _toy(10)
    for options in ({"objective": "binary:logistic"}, {"target": "log"}):
        with pytest.raises(PredictorError):
            AccuracyPredictor(space="nb201", n_estimators=5, **options).fit(archs, y)
    with pytest.raises(PredictorError, match="log target"):
        LatencyPredictor(space="nb201", n_estimators=5, target="quantile").fit(archs, y)
    with pytest.raises(PredictorError, match="ranking"):
        LatencyPredictor(space="nb201", n_estimators=5, objective="rank:pairwise").fit(archs, y)
