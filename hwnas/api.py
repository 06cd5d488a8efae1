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

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar, cast

from hwnas.data.resolve import resolve_dataset
from hwnas.errors import HwnasError
from hwnas.search.config import DEFAULT_PROFILE_SAMPLES, RunConfig
from hwnas.search.events import CallbackList, SearchCallback
from hwnas.search.result import Finalist as Finalist, SearchResult, Trial as Trial  # re-exported

logger = logging.getLogger("hwnas.api")
F = TypeVar("F", bound=Callable[..., Any])


AccuracyFn = Callable[[Any, Any], float]

#: Command-line flags named in the core's messages, and what a Python caller passes instead (flags spelled as a
#: RunConfig setting's name are translated to it as well: ``--max-trainings`` -> ``max_trainings``).
_PYTHON_NAMES = {"--latency-budget": "budget_ms", "--time-budget": "time_budget_s", "--ray": "ray_address",
                 "--run-dir": "run_dir", "--threads": "measure_threads", "--workers": "workers",
                 "--gpus-per-training": "gpus_per_training", "--ray-timeout": "ray_timeout_s",
                 "--epochs": "recipe=Recipe(epochs=...)"}
_RESUME = re.compile(r"(?:hwnas search )?--resume (\S+?)([,;:)]?(?:\s|$))")
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def python_message(message: str) -> str:
    """A core message with the command line's ``hwnas search --resume RUN`` and its run-setting flags named as
    the Python call and arguments that do the same (``--max-trainings`` -> ``max_trainings``); other commands'
    flags (``hwnas export --arch``) are left as they are."""
    from dataclasses import fields

    def resume(match: re.Match) -> str:
        run = "run_dir" if match.group(1) == "RUN" else repr(match.group(1))
        return f"hwnas.resume_search({run}){match.group(2)}"

    message = _RESUME.sub(resume, message)
    settings = {f.name for f in fields(RunConfig)}

    def name(match: re.Match) -> str:
        flag = match.group(0)
        if flag in _PYTHON_NAMES:
            return _PYTHON_NAMES[flag]
        setting = match.group(1).replace("-", "_")
        return setting if setting in settings else flag

    return _FLAG.sub(name, message)


def _python_errors(function: F) -> F:
    """Words a :class:`HwnasError` of ``function`` as :func:`python_message` does (same exception, same class)."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except HwnasError as exc:
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (python_message(exc.args[0]), *exc.args[1:])
            raise

    return cast(F, wrapper)


def _check_config(config: Any) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    kind = type(config).__name__
    hint = "hwnas.RunConfig(**your_dict)" if isinstance(config, Mapping) else "hwnas.RunConfig(budget_ms=...)"
    raise HwnasError(f"config must be a hwnas.RunConfig, not a {kind}: build one with {hint}")


@_python_errors
def start_search(config: RunConfig, run_dir: str | os.PathLike | None = None, *,
                 accuracy_fn: AccuracyFn | None = None, callbacks: Iterable[SearchCallback] = (),
                 echo: Callable[[str], None] | None = None, workers: int = 1,
                 ray_address: str | None = None, gpus_per_training: float = 0.0,
                 ray_timeout_s: float | None = None) -> SearchResult:
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
        ray_timeout_s: How long reaching the cluster, or a training no live node can take, may wait before a
            :class:`~hwnas.cluster.ClusterError` (``--ray-timeout``) [default: 30].

    Raises:
        HwnasError: a bad setting, data set, device, or a folder holding a run (one line).
        KeyboardInterrupt: Ctrl-C; everything finished is kept: :func:`resume_search` continues.
    """
    from hwnas.search.rundir import RunDir
    from hwnas.search.sources.function import function_name

    config = _check_config(config)
    if accuracy_fn is not None:
        if not callable(accuracy_fn):
            raise HwnasError(f"accuracy_fn must be callable, got {accuracy_fn!r}")
        config = config.replace(accuracy_function=function_name(accuracy_fn))
    config = config.resolved()
    config.check_execution(ray_address=ray_address, workers=workers, gpus_per_training=gpus_per_training)
    path = Path(run_dir) if run_dir is not None else Path("runs") / config.run_name()
    # the folder is made once Ray is reached (an unreachable cluster leaves none)
    return _run(lambda: RunDir.create(path, config), accuracy_fn=accuracy_fn, callbacks=callbacks, echo=echo,
                workers=workers, ray_address=ray_address, gpus_per_training=gpus_per_training,
                ray_timeout_s=ray_timeout_s, train_threads=config.train_threads)


@_python_errors
def resume_search(run_dir: str | os.PathLike, *, max_trainings: int | None = None,
                  max_measurements: int | None = None, time_budget_s: float | None = None,
                  accuracy_fn: AccuracyFn | None = None, callbacks: Iterable[SearchCallback] = (),
                  echo: Callable[[str], None] | None = None, workers: int = 1,
                  ray_address: str | None = None, gpus_per_training: float = 0.0,
                  ray_timeout_s: float | None = None) -> SearchResult:
    """Continues a run stopped by Ctrl-C, a crash or its budget (``hwnas search --resume``); larger budgets
    given here are written back to its ``config.json``. A finished run within its budgets returns its stored
    result. A run started with an ``accuracy_fn`` needs it again."""
    from hwnas.search.rundir import RunDir

    run = RunDir.open(run_dir)
    run.check_resumable()
    changes = {k: v for k, v in (("max_trainings", max_trainings), ("max_measurements", max_measurements),
                                 ("time_budget_s", time_budget_s)) if v is not None}
    if changes:
        run.update_config(**changes)
    run.config.check_execution(ray_address=ray_address, workers=workers, gpus_per_training=gpus_per_training)
    return _run(run, accuracy_fn=accuracy_fn, callbacks=callbacks, echo=echo, workers=workers,
                ray_address=ray_address, gpus_per_training=gpus_per_training, ray_timeout_s=ray_timeout_s)


def _run(run, *, accuracy_fn, callbacks, echo, workers, ray_address, gpus_per_training,
         ray_timeout_s=None, train_threads: int | None = None) -> SearchResult:
    """Runs ``run`` (a :class:`RunDir`, or a callable making one once the executor is up, with the
    ``train_threads`` of its settings) to the end."""
    from hwnas.cluster import make_executor, ray_timeout
    from hwnas.search.runner import run_search

    with ray_timeout(ray_timeout_s):
        threads = run.config.train_threads if train_threads is None else train_threads
        executor = make_executor(ray_address, workers=workers, cpus_per_task=threads,
                                 gpus_per_task=gpus_per_training)
        try:
            if callable(run):
                run = run()
            result = run_search(run, echo=echo or logger.info, callback=CallbackList(list(callbacks)),
                                accuracy_fn=accuracy_fn, executor=executor)
        finally:
            executor.close()
    return result


@_python_errors
def load_result(run_dir: str | os.PathLike) -> SearchResult:
    """The result of a finished run."""
    from hwnas.search.rundir import RunDir

    return RunDir.open(run_dir).load_result()


@_python_errors
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


@_python_errors
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
        channels, height, width = data.input_shape
        task = SourceTask(space, (int(channels), int(height), int(width)), options, fingerprint.get("batch_size"),
                          fingerprint.get("precision"))
        sources = find_sources(profiles_dir, task, target=store.device,
                               space_size=create_space(space, **options).size(),
                               names=None if transfer is True else list(transfer), report=logger.warning)
    shape, classes = list(data.input_shape), data.num_classes
    model = (LatencyPredictor(space=space, space_options=options, input_shape=shape, num_classes=classes,
                              random_state=seed) if transfer is False else
             SelectedLatencyPredictor(sources, space=space, space_options=options, input_shape=shape,
                                      num_classes=classes, random_state=seed))
    return model.fit([r["arch"] for r in records], [r["median_ms"] for r in records])


@_python_errors
def accuracy_predictor(archs: Sequence[str], accuracies: Sequence[float], *, space: str = "mobilenet",
                       space_options: Mapping[str, Any] | None = None, dataset: str = "digits", seed: int = 0):
    """An accuracy predictor (:class:`hwnas.predictors.AccuracyPredictor`) fit on your ``(arch, accuracy)``
    pairs: ``.predict_dist(archs)`` gives the ensemble's mean and spread."""
    from hwnas.predictors import AccuracyPredictor

    data = resolve_dataset(dataset)
    model = AccuracyPredictor(space=space, space_options=dict(space_options or {}),
                              input_shape=list(data.input_shape), num_classes=data.num_classes, random_state=seed)
    return model.fit(list(archs), list(accuracies))


@_python_errors
def export(run_dir: str | os.PathLike | None, output: str | os.PathLike, *, arch: str | None = None,
           epochs: int | None = None, quantize: str | None = None, raw_input: bool = False,
           train_threads: int | None = None, echo: Callable[[str], None] | None = None,
           from_supernet: str | os.PathLike | None = None, runtime: str | None = None,
           ray_address: str | None = None, ray_timeout_s: float | None = None):
    """Trains the run's best architecture (or ``arch``) with the final recipe (from a supernet's weights with
    ``from_supernet``), exports it to ``output`` as a checked ONNX file (and the run's runtime's files beside
    it; ``runtime`` picks one for an ``arch`` export) and measures its latency again (``hwnas export``); returns
    :class:`hwnas.deploy.pipeline.ExportSummary`. With ``ray_address`` (``--ray``) the file is re-measured on
    the cluster node advertising the run's device, each wait on Ray limited to ``ray_timeout_s`` seconds
    (``--ray-timeout``) [default: 30]."""
    from hwnas.cluster import ray_timeout
    from hwnas.deploy.pipeline import export_target
    from hwnas.deploy.target import resolve_target

    target = resolve_target(run_dir, arch=arch, epochs=epochs).in_runtime(runtime)
    supernet = None if from_supernet is None else Path(from_supernet)
    if not ray_address:
        return export_target(target, Path(output), quantize=quantize, raw_input=raw_input, threads=train_threads,
                             echo=echo or logger.info, from_supernet=supernet)
    from hwnas.devices import open_device

    with ray_timeout(ray_timeout_s):
        device = open_device(target.device, profiles_dir=target.profiles_dir, conditions=target.conditions,
                             ray_address=ray_address)
        try:
            return export_target(target, Path(output), quantize=quantize, raw_input=raw_input,
                                 threads=train_threads, echo=echo or logger.info, from_supernet=supernet,
                                 device=device)
        finally:
            device.close()


@_python_errors
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
