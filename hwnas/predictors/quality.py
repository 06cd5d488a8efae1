"""Held-out quality of a predictor: one held-out split and k-fold cross-validation, computed at every fit."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.model_selection import KFold

from hwnas.predictors.metrics import accuracy_metrics, latency_metrics
from hwnas.predictors.model import XGBPredictor

METRICS = {"latency": latency_metrics, "accuracy": accuracy_metrics}


def assess(make_predictor: Callable[[], XGBPredictor], archs: Sequence[str], y, *, folds: int = 5,
           holdout: float = 0.2, seed: int = 0) -> dict:
    """Scores a predictor configuration on data it was not fit on.

    Args:
        make_predictor: Returns a fresh, unfitted predictor.
        archs: Architectures (canonical strings).
        y: Their measured values.
        folds: Number of cross-validation folds.
        holdout: Share of the data held out for the single split.
        seed: Seed of the splits.

    Returns:
        ``{"holdout": metrics, "cv": mean metrics over folds, "cv_std": their spread, "n": ..., ...}``.
    """
    archs = list(archs)
    y = np.asarray(y, dtype=float)
    probe = make_predictor()
    metric_fn = METRICS[probe.kind]
    featurizer = probe.make_featurizer()  # shared so each architecture is featurised once
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(archs))
    n_test = max(1, int(round(holdout * len(archs))))
    test, train = order[:n_test], order[n_test:]
    holdout_pred = make_predictor().fit([archs[i] for i in train], y[train], featurizer=featurizer).predict(
        [archs[i] for i in test])
    report = {"n": len(archs), "holdout_n": int(n_test), "holdout": metric_fn(y[test], holdout_pred)}
    folds = min(folds, len(archs))
    if folds >= 2:
        per_fold = []
        for train_idx, test_idx in KFold(folds, shuffle=True, random_state=seed).split(archs):
            pred = make_predictor().fit([archs[i] for i in train_idx], y[train_idx], featurizer=featurizer).predict(
                [archs[i] for i in test_idx])
            per_fold.append(metric_fn(y[test_idx], pred))
        keys = per_fold[0].keys()
        report["cv"] = {k: float(np.nanmean([f[k] for f in per_fold])) for k in keys}
        report["cv_std"] = {k: float(np.nanstd([f[k] for f in per_fold])) for k in keys}
        report["folds"] = folds
    return report
