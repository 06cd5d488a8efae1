"""One evaluation as a job that can run anywhere: :class:`TrainingJob` holds what the evaluation needs (space,
architecture, data set, recipe, seed, evaluator), is picklable, and returns the
:class:`~hwnas.training.trainer.TrainResult`; the caller stores it (:meth:`EvalStore.record`). A Ray worker
resolves the data set itself (from its spec) instead of receiving the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwnas.training.trainer import TrainResult

_DATASETS: dict[Any, Any] = {}


@dataclass(frozen=True)
class TrainingJob:
    """Evaluate ``arch`` of ``space`` on a data set: ``dataset`` is a
    :class:`~hwnas.data.resolve.DatasetSpec` (resolved where the job runs, once per process) or a data set."""

    space: Any
    arch: str
    dataset: Any
    recipe: Any
    seed: int
    evaluator: Any

    local = False

    def __call__(self) -> TrainResult:
        return self.evaluator(self.space, self.space.parse(self.arch), _resolve(self.dataset), recipe=self.recipe,
                              seed=self.seed)


def _key(spec) -> tuple:
    return (spec.spec, repr(sorted(dict(spec.options).items())), spec.input_shape)


def remember_dataset(spec, dataset) -> None:
    """Registers the data set ``spec`` resolves to in this process (the driver's, already built), so that a job
    run here uses it instead of building a second copy."""
    _DATASETS[_key(spec)] = dataset


def _resolve(dataset):
    from hwnas.data.resolve import DatasetSpec

    if not isinstance(dataset, DatasetSpec):
        return dataset
    key = _key(dataset)
    if key not in _DATASETS:
        _DATASETS[key] = dataset.resolve()
    return _DATASETS[key]
