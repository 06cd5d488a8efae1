"""The latency predictor a device gets: the candidate that cross-validates best on the device's own measurements.

No one latency model wins everywhere (``benchmarks/fewshot_latency.py``): with few own measurements the
transfer from other devices (:mod:`hwnas.predictors.transfer`) is far ahead; on a CPU with a few hundred, the
additive per-operator model (:mod:`hwnas.predictors.additive`) is within +-10% for 99.7% of architectures
where the XGBoost ensemble reaches 86%; on some devices (NAS-Bench-201 on a phone whose runtime prunes degenerate
cells to almost nothing) a sum of operator costs fails and only the XGBoost ensemble fits. So every fit scores
each candidate by k-fold cross-validation on the own measurements -- the share within +-10%, ties broken by
the median relative error -- and keeps the best, refit on all of them. The saved folder is the winner's own
(its ``scores`` record the selection), so it loads as that predictor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.predictors.additive import AdditiveLatencyPredictor
from hwnas.predictors.features import ArchFeaturizer
from hwnas.predictors.model import LatencyPredictor, PredictorError, TaskFeatures, XGBPredictor
from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor

#: Fewest own measurements for cross-validated selection (fewer: transfer if there are sources, else XGBoost).
MIN_SELECT = 5


def cross_validate(make: Callable[[], Any], archs: Sequence[str], y: np.ndarray, *, folds: int = 5,
                   seed: int = 0, featurizer: ArchFeaturizer | None = None) -> np.ndarray:
    """Out-of-fold predictions of ``make()``'s predictor for every record."""
    from sklearn.model_selection import KFold

    predicted = np.empty(len(y))
    for train, test in KFold(min(folds, len(y)), shuffle=True, random_state=seed).split(archs):
        model = make().fit([archs[i] for i in train], y[train], featurizer=featurizer)
        predicted[test] = model.predict([archs[i] for i in test])
    return predicted


def selection_score(y: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """``(share within +-10%, median relative error)`` of out-of-fold predictions."""
    relative = np.abs(predicted / y - 1.0)
    return float(np.mean(relative <= 0.10 + 1e-12)), float(np.median(relative))


class SelectedLatencyPredictor(TaskFeatures):
    """Fits every candidate latency model, keeps the one that cross-validates best (see the module docstring).

    Satisfies :class:`hwnas.predictors.Predictor`.

    Args:
        sources: Other devices' latencies of the task (the transfer candidate; none: no transfer).
        space, space_options, input_shape, num_classes: The task.
        candidates: Names to choose among (default: ``transfer`` when there are sources, ``additive``,
            ``xgboost``).
        folds: Cross-validation folds.
        random_state: Seed of the folds and the candidates.
    """

    kind = "latency"
    log_target = True

    def __init__(self, sources: Sequence[LatencySource] = (), *, space: str = "mobilenet",
                 space_options: Mapping[str, Any] | None = None, input_shape: Sequence[int] = (1, 8, 8),
                 num_classes: int = 10, candidates: Sequence[str] | None = None, folds: int = 5,
                 random_state: int = 0, **options: Any) -> None:
        self.sources = list(sources)
        self.space = space
        self.space_options = space_options
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.candidates = candidates
        self.folds = folds
        self.random_state = random_state
        self.options = options

    def factories(self, *, scoring: bool = False) -> dict[str, Callable[[], Any]]:
        """The candidates, by name, as factories of unfitted predictors (``scoring``: as cross-validation fits
        them: one XGBoost member instead of the ensemble, a third of the time, for the same ranking)."""
        common = dict(space=self.space, space_options=self.space_options, input_shape=list(self.input_shape),
                      num_classes=self.num_classes, random_state=self.random_state)
        xgboost = {**self.options, **({"ensemble_size": 1} if scoring else {})}
        every = {"transfer": lambda: TransferLatencyPredictor(self.sources, **common),
                 "additive": lambda: AdditiveLatencyPredictor(**common),
                 "xgboost": lambda: LatencyPredictor(**common, **xgboost)}
        names = list(self.candidates) if self.candidates is not None else (
            ["transfer"] if self.sources else []) + ["additive", "xgboost"]
        unknown = [n for n in names if n not in every]
        if unknown or not names:
            raise PredictorError(f"unknown latency candidate(s) {unknown or names}; known: {', '.join(every)}")
        if "transfer" in names and not self.sources:
            names.remove("transfer")
        if not names:
            raise PredictorError("the only latency candidate asked for is transfer, and there is no source")
        return {name: every[name] for name in names}

    def fit(self, archs: Sequence[str | Arch], y, *, featurizer: ArchFeaturizer | None = None
            ) -> "SelectedLatencyPredictor":
        """Scores each candidate by cross-validation on ``(archs, y)``, fits the best on all of them."""
        y = np.asarray(y, dtype=float).ravel()
        archs = [a.string if isinstance(a, Arch) else a for a in archs]
        factories = self.factories()
        featurizer = featurizer or self.shared_featurizer()
        self.selection_: dict[str, dict[str, float]] = {}
        self.out_of_fold_: dict[str, np.ndarray] = {}  # each candidate's cross-validated predictions
        if len(archs) < MIN_SELECT or len(factories) == 1:
            chosen = "transfer" if "transfer" in factories else "xgboost" if "xgboost" in factories \
                else next(iter(factories))
        else:
            for name, make in self.factories(scoring=True).items():
                try:
                    predicted = cross_validate(make, archs, y, folds=self.folds, seed=self.random_state,
                                               featurizer=featurizer)
                except PredictorError:  # a candidate that cannot fit this data is not chosen
                    continue
                within, median = selection_score(y, predicted)
                self.selection_[name] = {"within_10pct": within, "median_rel_error": median}
                self.out_of_fold_[name] = predicted
            if not self.selection_:
                raise PredictorError("no latency candidate could be fit on these measurements")
            chosen = max(self.selection_, key=lambda n: (self.selection_[n]["within_10pct"],
                                                         -self.selection_[n]["median_rel_error"]))
        self.chosen_ = chosen
        self.model_ = factories[chosen]().fit(archs, y, featurizer=featurizer)
        self.n_train_ = len(y)
        self.featurizer_ = self.model_.featurizer_
        return self

    def predict_dist(self, archs: Sequence[str | Arch]) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "model_"):
            raise PredictorError("predictor is not fitted")
        return self.model_.predict_dist(archs)

    def predict(self, archs: Sequence[str | Arch]) -> np.ndarray:
        return self.predict_dist(archs)[0]

    def save(self, directory: str | os.PathLike, *, scores: Mapping[str, Any] | None = None,
             source: Mapping[str, Any] | None = None) -> Path:
        """Saves the chosen model, its scores recording the selection."""
        if not hasattr(self, "model_"):
            raise PredictorError("predictor is not fitted")
        selection = {"chosen": self.chosen_, "candidates": self.selection_}
        return self.model_.save(directory, scores={**dict(scores or {}), "selection": selection}, source=source)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, space: str | None = None,
             input_shape: Sequence[int] | None = None) -> Any:
        """The saved winner, as its own class."""
        return XGBPredictor.load(directory, space=space, input_shape=input_shape)
