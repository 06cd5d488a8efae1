"""hwnas from Python: the same jobs as the command line, as functions on typed objects.

::

    import hwnas

    config = hwnas.RunConfig(budget_ms=0.05, dataset="digits", max_trainings=10)
    result = hwnas.start_search(config, run_dir="runs/digits")
    print(result.best.arch, result.best.accuracy, result.best.latency_ms)
    hwnas.export("runs/digits", "model.onnx")

Every function writes what its command writes (run folders, profiles, ONNX files), atomically, and raises
:class:`hwnas.errors.HwnasError` with the command line's one-line message when something is wrong. Library
defaults are the command line's (one training thread, one onnxruntime thread). Progress goes to the
``hwnas`` loggers; pass ``echo=print`` for the command line's lines, or callbacks
(:class:`hwnas.SearchCallback`) for typed events.

``start_search`` rather than ``search``: ``hwnas.search`` is the package of the search itself, and a
function of that name would be hidden by it as soon as any of its modules is imported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from hwnas.data.resolve import resolve_dataset
from hwnas.errors import HwnasError
from hwnas.search.config import DEFAULT_PROFILE_SAMPLES, RunConfig
from hwnas.search.events import CallbackList, SearchCallback
from hwnas.search.state import Verified

logger = logging.getLogger("hwnas.api")


@dataclass(frozen=True)
class Finalist:
    """A finalist of the search's finals: its validation accuracies over its seeds (the search's training
    first), their mean and sample standard deviation."""

    arch: str
    latency_ms: float
    accuracies: list[float]
    mean: float
    std: float


@dataclass(frozen=True)
class SearchResult:
    """The answer of a search (``result.json``, typed).

    Attributes:
        run_dir: The run's folder (resume, export and report it).
        best: The most accurate *trained* architecture whose *measured* latency fits the budget (None: none).
        pareto_front: Trained architectures not dominated in accuracy and latency, fastest first.
        budget_ms: The latency budget.
        stop_reason: Why the search stopped.
        trainings_used: Trainings (or accuracy look-ups, or accuracy-function calls) spent.
        measurements_used: Latency measurements spent.
        test_accuracy: The best's test accuracy, measured once at the end of its search training (None for a
            table or an accuracy function).
        finalists: The finalists re-trained with other seeds (``--final-seeds``), best mean first (the answer
            first); empty when there were no finals.
        document: ``result.json`` as written.
    """

    run_dir: Path
    best: Verified | None
    pareto_front: list[Verified]
    budget_ms: float
    stop_reason: str
    trainings_used: int
    measurements_used: int
    test_accuracy: float | None
    document: Mapping[str, Any] = field(repr=False)
    finalists: list[Finalist] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return self.best is not None

    @classmethod
    def from_document(cls, run_dir: Path, document: Mapping[str, Any]) -> "SearchResult":
        return cls(run_dir=Path(run_dir), best=_verified(document.get("best")),
                   pareto_front=[_verified(v) for v in document.get("pareto_front") or []],
                   budget_ms=float(document["budget_ms"]), stop_reason=str(document.get("stop_reason", "")),
                   trainings_used=int(document.get("trainings_used", 0)),
                   measurements_used=int(document.get("measurements_used", 0)),
                   test_accuracy=document.get("test_accuracy"), document=dict(document),
                   finalists=[Finalist(arch=f["arch"], latency_ms=float(f["latency_ms"]),
                                       accuracies=[float(a) for a in f["accuracies"]], mean=float(f["mean"]),
                                       std=float(f["std"])) for f in document.get("finalists") or []])


def _verified(entry: Mapping[str, Any] | None) -> Verified | None:
    if not entry:
        return None
    names = Verified.__dataclass_fields__
    return Verified(**{k: v for k, v in entry.items() if k in names})


AccuracyFn = Callable[[Any, Any], float]


def start_search(config: RunConfig, run_dir: str | os.PathLike | None = None, *,
                 accuracy_fn: AccuracyFn | None = None, callbacks: Iterable[SearchCallback] = (),
                 echo: Callable[[str], None] | None = None, workers: int = 1,
                 ray_address: str | None = None, gpus_per_training: float = 0.0) -> SearchResult:
    """Starts a new search (what ``hwnas search`` runs) and runs it to the end.

    Args:
        config: What to search (checked and completed here: :meth:`RunConfig.resolved`).
        run_dir: Its folder [default: ``runs/<space>-<data set>-<device>-<budget>-s<seed>``, as the command
            line names it]; it must not hold a run already.
        accuracy_fn: Your own training loop: ``accuracy_fn(model, arch) -> float`` is called for every
            candidate within the budget with a fresh ``torch.nn.Module`` for the run's input shape and classes;
            it returns the validation accuracy (the same scale every call). It replaces hwnas's trainings.
        callbacks: :class:`SearchCallback` objects receiving the search's typed events.
        echo: Where the command line's progress lines go [default: the ``hwnas.api`` logger at INFO].
        workers: Trainings at once (more than one: Ray tasks, ``--workers``).
        ray_address: Run on Ray (``"local"``, ``"auto"``, ``"HOST:PORT"``; ``--ray``): trainings as tasks, and
            the device measured on its cluster node when one advertises ``device:<name>``.
        gpus_per_training: GPUs each training asks Ray for (``--gpus-per-training``; implies Ray); with
            ``config.train_device="auto"`` each training runs on the GPU Ray assigns it.

    Raises:
        HwnasError: a bad setting, data set, device, or a folder holding a run (one line).
        KeyboardInterrupt: Ctrl-C; everything finished is kept: :func:`resume_search` continues.
    """
    from hwnas.search.rundir import RunDir
    from hwnas.search.sources.function import function_name

    if accuracy_fn is not None:
        if not callable(accuracy_fn):
            raise HwnasError(f"accuracy_fn must be callable, got {accuracy_fn!r}")
        config = config.replace(accuracy_function=function_name(accuracy_fn))
    config = config.resolved()
    config.check_execution(ray_address=ray_address, workers=workers, gpus_per_training=gpus_per_training)
    path = Path(run_dir) if run_dir is not None else Path("runs") / config.run_name()
    run = RunDir.create(path, config)
    return _run(run, accuracy_fn=accuracy_fn, callbacks=callbacks, echo=echo, workers=workers,
                ray_address=ray_address, gpus_per_training=gpus_per_training)


def resume_search(run_dir: str | os.PathLike, *, max_trainings: int | None = None,
                  max_measurements: int | None = None, time_budget_s: float | None = None,
                  accuracy_fn: AccuracyFn | None = None, callbacks: Iterable[SearchCallback] = (),
                  echo: Callable[[str], None] | None = None, workers: int = 1,
                  ray_address: str | None = None, gpus_per_training: float = 0.0) -> SearchResult:
    """Continues a run stopped by Ctrl-C, a crash or its budget (``hwnas search --resume``); larger budgets
    given here are written back to its ``config.json``. A finished run within its budgets returns its stored
    result. A run started with an ``accuracy_fn`` needs it again."""
    from hwnas.search.rundir import RunDir

    run = RunDir.open(run_dir)
    run.load_state()
    changes = {k: v for k, v in (("max_trainings", max_trainings), ("max_measurements", max_measurements),
                                 ("time_budget_s", time_budget_s)) if v is not None}
    if changes:
        run.update_config(**changes)
    run.config.check_execution(ray_address=ray_address, workers=workers, gpus_per_training=gpus_per_training)
    return _run(run, accuracy_fn=accuracy_fn, callbacks=callbacks, echo=echo, workers=workers,
                ray_address=ray_address, gpus_per_training=gpus_per_training)


def _run(run, *, accuracy_fn, callbacks, echo, workers, ray_address, gpus_per_training) -> SearchResult:
    from hwnas.cluster import make_executor
    from hwnas.search.runner import run_search

    executor = make_executor(ray_address, workers=workers, cpus_per_task=run.config.train_threads,
                             gpus_per_task=gpus_per_training)
    try:
        document = run_search(run, echo=echo or logger.info, callback=CallbackList(list(callbacks)),
                              accuracy_fn=accuracy_fn, executor=executor)
    finally:
        executor.close()
    return SearchResult.from_document(run.path, document)


def load_result(run_dir: str | os.PathLike) -> SearchResult:
    """The result of a finished run."""
    from hwnas.search.rundir import RunDir

    run = RunDir.open(run_dir)
    if not run.result_file.exists():
        raise HwnasError(f"{run.path} has no result yet: the search has not finished (resume it)")
    return SearchResult.from_document(run.path, run.read_result())


def profile(device: str = "host", *, space: str = "mobilenet", space_options: Mapping[str, Any] | None = None,
            dataset: str = "digits", samples: int = DEFAULT_PROFILE_SAMPLES, measure_threads: int = 1,
            profiles_dir: str | os.PathLike = "profiles", seed: int = 0, runtime: str = "onnxruntime"):
    """Measures ``samples`` architectures of ``space`` on this machine, in ``runtime``, into the profile
    ``device`` (``<device>.<runtime>`` for a runtime other than onnxruntime; ``hwnas profile``); returns the
    run's summary (:class:`hwnas.profiling.RunSummary`). The input shape and classes are the data set's."""
    from hwnas.devices import open_device, profile_name
    from hwnas.profiling import Conditions, ProfileStore, profile_space
    from hwnas.spaces import create_space

    built = create_space(space, **dict(space_options or {}))
    data = resolve_dataset(dataset)
    conditions = Conditions(threads=measure_threads, runtime=runtime)
    where = open_device(device, profiles_dir=str(profiles_dir), conditions=conditions)
    if not where.measurable:
        raise HwnasError(f"device {device!r} cannot be measured here: {where.reason}")
    store = ProfileStore(profiles_dir, profile_name(device, runtime))
    return profile_space(store, built, samples=samples, input_shape=data.input_shape, num_classes=data.num_classes,
                         conditions=conditions, space_options=dict(space_options or {}), seed=seed,
                         measure_fn=where.measure_arch, fingerprint=where.fingerprint(conditions))


def latency_predictor(device: str = "host", *, space: str = "mobilenet",
                      space_options: Mapping[str, Any] | None = None, dataset: str = "digits",
                      profiles_dir: str | os.PathLike = "profiles", seed: int = 0, runtime: str = "onnxruntime",
                      transfer: bool | Sequence[str] = True):
    """A latency predictor fit on the profile of ``device`` in ``runtime`` at the data set's input shape:
    ``.predict([arch strings])`` in milliseconds.

    With ``transfer`` (the default) it is the best by cross-validation on the device's own measurements of the
    transfer from the other profiles of the same task under ``profiles_dir``
    (:class:`hwnas.predictors.TransferLatencyPredictor`: a device with 20 measurements predicts about as well as
    one with a thousand), the additive per-operator model and the XGBoost ensemble
    (:class:`hwnas.predictors.select.SelectedLatencyPredictor`); a list of profile names picks the sources;
    ``False`` fits the XGBoost ensemble on the device's own measurements, as before transfer existed."""
    from hwnas.devices import profile_name
    from hwnas.predictors import LatencyPredictor
    from hwnas.predictors.select import SelectedLatencyPredictor
    from hwnas.profiling import ProfileStore
    from hwnas.profiling.transfer import SourceTask, find_sources
    from hwnas.spaces import create_space

    options = dict(space_options or {})
    data = resolve_dataset(dataset)
    store = ProfileStore.open(profiles_dir, profile_name(device, runtime))
    records = store.records(space, list(data.input_shape), options)
    if len(records) < 2:
        raise HwnasError(f"profile {device!r} holds {len(records)} {space} measurements at this input shape; "
                         f"profile it first (hwnas.profile)")
    if isinstance(transfer, str):
        raise HwnasError("transfer must be True, False or a list of profile names, not a string")
    sources = []
    if transfer is not False:
        fingerprint = store.fingerprint or {}
        task = SourceTask(space, tuple(data.input_shape), options, fingerprint.get("batch_size"),
                          fingerprint.get("precision"))
        sources = find_sources(profiles_dir, task, target=store.device,
                               space_size=create_space(space, **options).size(),
                               names=None if transfer is True else list(transfer), report=logger.warning)
    common = dict(space=space, space_options=options, input_shape=list(data.input_shape),
                  num_classes=data.num_classes, random_state=seed)
    model = LatencyPredictor(**common) if transfer is False else SelectedLatencyPredictor(sources, **common)
    return model.fit([r["arch"] for r in records], [r["median_ms"] for r in records])


def accuracy_predictor(archs: Sequence[str], accuracies: Sequence[float], *, space: str = "mobilenet",
                       space_options: Mapping[str, Any] | None = None, dataset: str = "digits", seed: int = 0):
    """An accuracy predictor (:class:`hwnas.predictors.AccuracyPredictor`) fit on your ``(arch, accuracy)``
    pairs: ``.predict_dist(archs)`` gives the ensemble's mean and spread."""
    from hwnas.predictors import AccuracyPredictor

    data = resolve_dataset(dataset)
    model = AccuracyPredictor(space=space, space_options=dict(space_options or {}),
                              input_shape=list(data.input_shape), num_classes=data.num_classes, random_state=seed)
    return model.fit(list(archs), list(accuracies))


def export(run_dir: str | os.PathLike | None, output: str | os.PathLike, *, arch: str | None = None,
           epochs: int | None = None, quantize: str | None = None, raw_input: bool = False,
           train_threads: int | None = None, echo: Callable[[str], None] | None = None,
           from_supernet: str | os.PathLike | None = None, runtime: str | None = None):
    """Trains the run's best architecture (or ``arch``) with the final recipe (from a supernet's weights with
    ``from_supernet``), exports it to ``output`` as a checked ONNX file (and the run's runtime's files beside
    it; ``runtime`` picks one for an ``arch`` export) and measures its latency again (``hwnas export``); returns
    :class:`hwnas.deploy.pipeline.ExportSummary`."""
    from hwnas.deploy.pipeline import export_target
    from hwnas.deploy.target import resolve_target

    target = resolve_target(run_dir, arch=arch, epochs=epochs).in_runtime(runtime)
    return export_target(target, output, quantize=quantize, raw_input=raw_input, threads=train_threads,
                         echo=echo or logger.info, from_supernet=from_supernet)


def evaluate(model: str | os.PathLike, *, dataset: str | None = None, split: str | None = None,
             measure_threads: int = 1):
    """Accuracy of an exported model (``hwnas evaluate``): the ONNX file, or a runtime's file beside it
    (``model.xml``, ``model.tflite``) run in that runtime, on the data set in its metadata (or ``dataset``: a
    name, folder or file; a model trained on the user's folder or file records its name, not its path).

    ``split`` is ``"test"`` (the test split) or ``"all"`` (every example); by default ``"test"`` on the data set
    the model was trained on (the same key as its metadata's), ``"all"`` on other data. Returns
    :class:`hwnas.deploy.evaluate.Evaluation` (its ``split`` says which was scored)."""
    from hwnas.deploy.evaluate import evaluate_file, read_shipped

    files, metadata, runtime = read_shipped(model)
    evaluation, _ = evaluate_file(files, metadata, dataset=dataset, split=split, threads=measure_threads,
                                  runtime=runtime)
    return evaluation
