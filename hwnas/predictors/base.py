"""The contract of a predictor: what the search, the CLI and the API rely on, whatever the algorithm.

A predictor learns a value of an architecture (latency in ms, validation accuracy) from measured ones and
predicts it with an uncertainty. The XGBoost ensembles of :mod:`hwnas.predictors.model` are the built-in
ones; a new algorithm is one class satisfying :class:`Predictor` plus its registration in
:data:`~hwnas.predictors.model.PREDICTORS` under the kind it predicts -- the loop asks only for this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from hwnas.arch import Arch
from hwnas.predictors.features import ArchFeaturizer


@runtime_checkable
class Predictor(Protocol):
    """A fitted-or-not predictor of one value of architectures.

    Attributes:
        kind: What it predicts (``"latency"``, ``"accuracy"``): the key it is registered and saved under.
        task: What its features depend on (space, its options, input shape, classes); predictors of one task
            may share a featurizer.
    """

    kind: str

    @property
    def task(self) -> tuple: ...

    def fit(self, archs: Sequence[str | Arch], y: Any, *,
            featurizer: ArchFeaturizer | None = None) -> "Predictor":
        """Fits on architectures and their measured values; returns itself."""

    def predict_dist(self, archs: Sequence[str | Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the prediction of each architecture, in the target's units."""

    def predict(self, archs: Sequence[str | Arch]) -> np.ndarray:
        """The mean prediction."""

    def shared_featurizer(self) -> ArchFeaturizer:
        """A featurizer of its task that may be shared with other predictors of the task."""

    def save(self, directory: str | os.PathLike, *, scores: Mapping[str, Any] | None = None,
             source: Mapping[str, Any] | None = None) -> Path:
        """Writes the predictor into ``directory`` (replaced atomically); returns it."""

    @classmethod
    def load(cls, directory: str | os.PathLike, *, space: str | None = None,
             input_shape: Sequence[int] | None = None) -> "Predictor":
        """Reads a saved predictor, refusing one of another kind, space or input shape."""
