"""Real accuracy for the search: trainings through the evaluation store, or a published accuracy table.

Either way every evaluation goes through :meth:`EvalStore.evaluate`, so a finished training is stored the
moment it ends and asking for it again (after a crash, in another search) costs a look-up.
"""

from __future__ import annotations

from typing import Any, Callable

from hwnas.arch import Arch
from hwnas.data.base import Dataset
from hwnas.search.config import RunConfig
from hwnas.spaces.base import SearchSpace
from hwnas.training import Recipe
from hwnas.training.evaluator import Evaluator, Trainer
from hwnas.training.job import TrainingJob, remember_dataset
from hwnas.training.trainer import TrainResult
from hwnas.training.store import EvalStore, default_store_path, make_key


class StoreAccuracy:
    """Validation accuracy from the evaluation store (training, or a table, on a miss).

    Args:
        store: The evaluation store.
        space: The search space.
        dataset: The data set.
        recipe: Training recipe (with its fidelity).
        seed: Training seed.
        evaluator: What produces a missing result: a :class:`Trainer` or a table evaluator.
        dataset_spec: The data set's :class:`~hwnas.data.resolve.DatasetSpec`: a job run elsewhere resolves it
            there instead of receiving the arrays.
    """

    def __init__(self, store: EvalStore, space: SearchSpace, dataset: Dataset, *, recipe: Recipe, seed: int,
                 evaluator: Evaluator, dataset_spec=None) -> None:
        self.store = store
        self.dataset_spec = dataset_spec
        if dataset_spec is not None:
            remember_dataset(dataset_spec, dataset)  # a job run in this process uses this one, not a copy
        self.space = space
        self.dataset = dataset
        self.recipe = recipe
        self.seed = seed
        self.evaluator = evaluator

    @property
    def trains(self) -> bool:
        """Whether an evaluation is a real training (its model's parameters and MACs are recorded), not a
        table look-up."""
        return isinstance(self.evaluator, Trainer)

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        return _answer(self.store.evaluate(self.space, arch, self.dataset, recipe=self.recipe, seed=self.seed,
                                           trainer=self.evaluator))

    def job(self, arch: Arch) -> TrainingJob | None:
        """The evaluation of ``arch`` as a job to run anywhere (None when it is a look-up -- the store has it, or
        the evaluator is a table -- which :meth:`evaluate` does on the driver); :meth:`finish` stores its
        result."""
        if not isinstance(self.evaluator, Trainer) or self.store.lookup(
                self.space, arch, self.dataset, recipe=self.recipe, seed=self.seed, trainer=self.evaluator) is not None:
            return None
        return TrainingJob(space=self.space, arch=arch.string, dataset=self.dataset_spec or self.dataset,
                           recipe=self.recipe, seed=self.seed, evaluator=self.evaluator)

    def finish(self, arch: Arch, result: TrainResult) -> dict[str, Any]:
        """Stores a job's result (the driver is the store's one writer); returns :meth:`evaluate`'s answer."""
        return _answer(self.store.record(self.space, arch, self.dataset, result, recipe=self.recipe,
                                         seed=self.seed, trainer=self.evaluator))

    def replica(self, index: int) -> "StoreAccuracy | None":
        """The same trainings with the ``index``-th extra seed (``seed + index``), for the finalists
        (:mod:`hwnas.search.finals`); None for a table, whose repeats give the same number."""
        if not isinstance(self.evaluator, Trainer):
            return None
        return StoreAccuracy(self.store, self.space, self.dataset, recipe=self.recipe, seed=self.seed + index,
                             evaluator=self.evaluator, dataset_spec=self.dataset_spec)

    @property
    def validation_size(self) -> int | None:
        """Examples an accuracy is measured on (None for a table: its noise is unknown here)."""
        if not isinstance(self.evaluator, Trainer):
            return None
        return len(self.dataset.splits(self.recipe.split_seed).y_val)

    def known(self) -> list[tuple[str, float]]:
        """Every stored evaluation under exactly this space, data set, recipe, seed and fidelity."""
        probe = self._probe_key()
        records = self.store.query(space=probe.space, dataset=probe.dataset, recipe_hash=probe.recipe_hash,
                                   seed=probe.seed, epochs=probe.epochs, data_fraction=probe.data_fraction)
        return [(r.arch, r.val_accuracy) for r in records
                if r.space == probe.space and r.recipe_hash == probe.recipe_hash]

    def _probe_key(self):
        """The key fields every evaluation of this source shares (the architecture aside)."""
        import numpy as np

        return make_key(self.space, self.space.sample(np.random.default_rng(0)), self.dataset, recipe=self.recipe,
                        seed=self.seed, evaluator=self.evaluator)

    def test_accuracy(self, arch: Arch) -> float | None:
        """Test accuracy of ``arch`` from the search's own training of it (every training measures the test
        split once at its end and stores it; the search never looks at it). None for a table, or for a
        record stored by an hwnas that did not keep test accuracies: no extra training is ever made here."""
        if not isinstance(self.evaluator, Trainer):
            return None
        record = self.store.get(make_key(self.space, arch, self.dataset, recipe=self.recipe, seed=self.seed,
                                         evaluator=self.evaluator))
        return None if record is None else record.test_accuracy


def _answer(record) -> dict[str, Any]:
    return {"accuracy": record.val_accuracy, "reused": record.reused, "params": record.params,
            "wall_time_s": record.wall_time_s, "test_accuracy": record.test_accuracy, "seed": record.seed}


def accuracy_source(config: RunConfig, space: SearchSpace, *, accuracy_fn: Callable | None = None,
                    ray_gpus: float = 0.0, on_ray: bool = False):
    """The accuracy source a run's configuration asks for: trainings or an accuracy table through the
    evaluation store, or the user's ``accuracy_fn`` for a run made with one (:class:`FunctionAccuracy`).
    ``ray_gpus``: GPUs Ray gives each training (``--gpus-per-training``); ``on_ray``: trainings run as Ray
    tasks."""
    if config.accuracy_function is not None or accuracy_fn is not None:
        from hwnas.search.sources.function import FunctionAccuracy

        return FunctionAccuracy.for_run(config, space, accuracy_fn)
    spec = config.dataset_spec()
    dataset = spec.resolve()
    store = EvalStore(config.store or default_store_path())
    if config.accuracy_table:
        from hwnas.training.table import TableEvaluator

        from hwnas.search.sources.tables import accuracy_table

        evaluator: Evaluator = TableEvaluator(accuracy_table(config.accuracy_table, space))
    else:
        device = config.execution_device(ray_gpus=ray_gpus, on_ray=on_ray)
        evaluator = Trainer(threads=config.train_threads, device=device, ray_gpus=ray_gpus,
                            loader_workers=config.loader_workers)
    return StoreAccuracy(store, space, dataset, recipe=config.recipe, seed=config.seed, evaluator=evaluator,
                         dataset_spec=spec)


class StoreEstimates:
    """A supernet's estimates through the evaluation store (source ``"supernet"``, keyed by its checksum):
    an architecture estimated once, by any run, is a look-up afterwards.

    Args:
        store: The evaluation store.
        space: The search space.
        dataset: The data set (the supernet's).
        estimator: A :class:`~hwnas.supernet.estimate.SupernetEstimator`.
    """

    def __init__(self, store: EvalStore, space: SearchSpace, dataset: Dataset, estimator: Evaluator) -> None:
        self.store = store
        self.space = space
        self.dataset = dataset
        self.estimator = estimator
        estimator.check_task(space, dataset)

    def estimate(self, arch: Arch) -> float:
        record = self.store.evaluate(self.space, arch, self.dataset, recipe=self.estimator.recipe,
                                     seed=self.estimator.seed, trainer=self.estimator)
        return record.val_accuracy


def supernet_estimates(config: RunConfig, space: SearchSpace, *, default_folder, echo) -> StoreEstimates:
    """The estimates of ``--estimator supernet``: the run's ``supernet`` folder, or one trained now in
    ``default_folder`` (resumed if a previous session was interrupted) with the run's recipe at
    ``supernet_epochs`` epochs."""
    from hwnas.supernet.estimate import SupernetEstimator
    from hwnas.supernet.folder import SupernetFolder, SupernetSettings
    from hwnas.supernet.training import train_supernet

    spec = config.dataset_spec()
    folder = SupernetFolder(config.supernet or default_folder)
    if not config.supernet:
        recipe = config.recipe.with_fidelity(epochs=config.supernet_epochs, data_fraction=1.0)
        settings = SupernetSettings(sampling=config.supernet_sampling, seed=config.seed)
        meta = folder.read_meta() if folder.exists else {"epochs_done": 0}
        done = meta["epochs_done"]
        if not meta.get("finished"):
            echo(f"training the supernet in {folder.path}: {recipe.epochs} epochs, {settings.sampling} sampling"
                 + (f" (resuming after epoch {done})" if done else ""))

        def on_epoch(epoch: int, meta: dict) -> None:
            echo(f"  supernet epoch {epoch}/{recipe.epochs}: loss {meta['history'][-1]['loss']:.4f} "
                 f"({meta['history'][-1]['seconds']:.0f} s)")

        train_supernet(folder, space=space, spec=spec, recipe=recipe, settings=settings,
                       threads=config.supernet_threads, on_epoch=on_epoch, device=config.train_device,
                       loader_workers=config.loader_workers)
    estimator = SupernetEstimator(folder, threads=config.supernet_threads, device=config.train_device)
    store = EvalStore(config.store or default_store_path())
    return StoreEstimates(store, space, spec.resolve(), estimator)
