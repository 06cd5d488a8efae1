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
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.training.recipe import Recipe
from hwnas.training.trainer import TrainingError, TrainResult, train


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
        threads: CPU threads per training run (1 by default).
        device: The training device's name (:mod:`hwnas.training.device`; ``cpu`` is deterministic). It is
            resolved where the training runs: ``auto`` in a Ray task given GPUs is the GPU Ray assigned.
        ray_gpus: GPUs each training is given by Ray (``--gpus-per-training``): with ``auto``, the results are
            a GPU's, whatever this process has.
        loader_workers: DataLoader workers of a streamed data set (None: the trainer's default).
        train_fn: The training function (replaceable in tests); called like :func:`train`.
        report_test: Measure the test split once at the end of each training and store it with the record
            (the search selects on validation accuracy only; the answer's test accuracy is then a look-up,
            never an extra training).
    """

    source = "train"

    def __init__(self, *, threads: int | None = None, device: str = "cpu", ray_gpus: float = 0.0,
                 loader_workers: int | None = None, train_fn: Callable[..., TrainResult] = train,
                 report_test: bool = True) -> None:
        from hwnas.training.device import kind

        super().__init__()
        self.threads = threads
        self.device = device
        self.loader_workers = loader_workers
        self.train_fn = train_fn
        self.report_test = report_test
        try:
            self.device_kind = kind(device, ray_gpus=ray_gpus)
        except HwnasError as exc:
            raise TrainingError(str(exc)) from None

    def protocol_key(self, recipe: Recipe) -> tuple[str, int, float]:
        """The recipe's key; a training on a GPU (or MPS) is keyed apart from the CPU's (its kernels do not
        give the same numbers), and CPU trainings keep the key they always had."""
        if self.device_kind == "cpu":
            return super().protocol_key(recipe)
        return recipe.hash(train_device=self.device_kind), recipe.epochs, recipe.data_fraction

    def protocol(self, recipe: Recipe) -> dict[str, Any]:
        extra = {} if self.device_kind == "cpu" else {"train_device": self.device_kind}
        return {**recipe.to_dict(), **extra}

    def evaluate(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        kwargs: dict[str, Any] = dict(recipe=recipe, seed=seed, threads=self.threads, device=self.device)
        if self.loader_workers is not None:
            kwargs["loader_workers"] = self.loader_workers
        if self.report_test:
            kwargs["report_test"] = True
        result = self.train_fn(space, arch, dataset, **kwargs)
        ran_on = result.device.split(":", 1)[0] if result.device else self.device_kind
        if ran_on != self.device_kind:  # e.g. a Ray task meant for a GPU landed where there is none
            raise TrainingError(f"this training was meant for a {self.device_kind} device but ran on {ran_on}; "
                                f"its result is not stored under the wrong key")
        return result
