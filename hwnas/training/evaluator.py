"""Evaluators: anything that turns (space, architecture, data set, recipe, seed) into a :class:`TrainResult`.

Search algorithms and the evaluation store talk to an :class:`Evaluator`, never to the trainer directly,
so real training (:class:`Trainer`) and a published accuracy table
(:class:`~hwnas.training.table.TableEvaluator`) are interchangeable. Every call counts as one evaluation
(:attr:`Evaluator.evaluations`), whatever it costs.
"""

from __future__ import annotations

import abc
from typing import Any, Callable

from hwnas.arch import Arch
from hwnas.data.base import Dataset
from hwnas.spaces.base import SearchSpace
from hwnas.training.recipe import Recipe
from hwnas.training.trainer import TrainResult, train


class Evaluator(abc.ABC):
    """Base class of evaluation sources.

    Attributes:
        source: What produced the results, stored with every record (``"train"``, ``"table"``).
        evaluations: Number of calls so far.
    """

    source: str = ""

    def __init__(self) -> None:
        self.evaluations = 0

    def __call__(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        """Evaluates one architecture and counts the evaluation."""
        self.evaluations += 1
        return self.evaluate(space, arch, dataset, recipe=recipe, seed=seed)

    @abc.abstractmethod
    def evaluate(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        """The result for one architecture (implemented by each source)."""

    def protocol_key(self, recipe: Recipe) -> tuple[str, int, float]:
        """``(recipe hash, epochs, data fraction)`` under which this source's results are stored."""
        return recipe.hash(), recipe.epochs, recipe.data_fraction

    def protocol(self, recipe: Recipe) -> dict[str, Any]:
        """The settings stored with each record (the full recipe for training)."""
        return recipe.to_dict()


class Trainer(Evaluator):
    """Evaluates by training from scratch with :func:`~hwnas.training.trainer.train`.

    Args:
        threads: CPU threads per training run (all available cores by default).
        device: PyTorch device (``"cpu"`` is deterministic).
        train_fn: The training function (replaceable in tests); called like :func:`train`.
        report_test: Measure the test split once at the end of each training and store it with the record
            (the search selects on validation accuracy only; the answer's test accuracy is then a look-up,
            never an extra training).
    """

    source = "train"

    def __init__(self, *, threads: int | None = None, device: str = "cpu",
                 train_fn: Callable[..., TrainResult] = train, report_test: bool = True) -> None:
        super().__init__()
        self.threads = threads
        self.device = device
        self.train_fn = train_fn
        self.report_test = report_test

    def evaluate(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        if self.report_test:
            return self.train_fn(space, arch, dataset, recipe=recipe, seed=seed, threads=self.threads,
                                 device=self.device, report_test=True)
        return self.train_fn(space, arch, dataset, recipe=recipe, seed=seed, threads=self.threads,
                             device=self.device)
