"""Assembles a search from a run's configuration: task, device profile, sources, predictors, controller, loop."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

from hwnas.errors import HwnasError
from hwnas.predictors import PREDICTORS, LatencyPredictor, Predictor
from hwnas.devices import open_device, profile_name
from hwnas.profiling import ProfileStore, profile_space
from hwnas.profiling.fingerprint import mismatches
from hwnas.runtimes import DEFAULT_RUNTIME
from hwnas.search.config import RunConfig
from hwnas.search.controllers import create_controller
from hwnas.search.events import (CallbackList, Estimating, FinalistTrained, FinalsStarted, InitialPhase,
                                 LatencyMeasured, Learning, RoundDone, SearchCallback, SearchEvent, SearchFinished,
                                 SearchStarted, Trained)
from hwnas.search.loop import SearchLoop
from hwnas.search.result import SearchResult, Trial
from hwnas.search.reward import create_reward
from hwnas.search.rundir import RunDir
from hwnas.search.state import SearchSettings
from hwnas.search.sources.latency import ProfileLatency
from hwnas.units import format_latency

logger = logging.getLogger(__name__)

MIN_PROFILE_RECORDS = 10


def transfer_sources(run: RunDir, space, *, echo: Callable[[str], None]) -> list:
    """The other device profiles the run's latency predictor transfers from (:mod:`hwnas.predictors.transfer`):
    found when the run starts (every compatible profile, or ``transfer_from``'s) and recorded in
    ``config.json`` as ``transfer_sources``; a resume uses the recorded ones."""
    from hwnas.profiling.transfer import SourceTask, find_sources

    config = run.config
    if not config.transfer:
        return []
    table = config.latency_table is not None
    target = config.device if table else profile_name(config.device, config.runtime)
    task = SourceTask(space.name, tuple(config.input_shape), dict(config.space_options),
                      None if table else config.batch_size, None if table else config.precision)
    recorded = config.transfer_sources is not None
    sources = find_sources(config.profiles_dir, task, target=target, space_size=space.size(), missing_ok=recorded,
                           names=config.transfer_sources if recorded else config.transfer_from,
                           report=logger.warning, limits=config.transfer_source_records)
    if table and not recorded:
        sources = _without_table_copies(sources, config.latency_table, space)
    if not recorded:
        run.update_config(transfer_sources=[s.name for s in sources],
                          transfer_source_records={s.name: len(s.latencies) for s in sources})
    if sources:
        names = ", ".join(s.name for s in sources[:6]) + (f" and {len(sources) - 6} more" if len(sources) > 6 else "")
        echo(f"latency predictor: transfers from {len(sources)} other device profile(s) ({names})")
    return sources


def _without_table_copies(sources: list, table: str, space) -> list:
    """The sources without any that holds the latency table's own values (the same table imported as a profile:
    it would predict the device from its own latencies)."""
    from hwnas.search.sources.tables import TableLatency

    latency = TableLatency(table, space, prior_samples=1).latency
    kept = []
    for source in sources:
        shared = [a for a in source.latencies if a in latency]
        same = sum(abs(source.latencies[a] / latency[a] - 1.0) < 1e-9 for a in shared)
        if shared and same >= 0.95 * len(shared):
            logger.warning("transfer source %r skipped: it holds the latency table's own values (nothing to do; "
                           "name the sources with --transfer-from to silence this)", source.name)
        else:
            kept.append(source)
    return kept


def predictor_arguments(config: RunConfig, space) -> dict:
    """The keyword arguments every predictor of the run is made with: its task, seed and predictor options."""
    return dict(space=space.name, space_options=config.space_options, input_shape=list(config.input_shape),
                num_classes=config.num_classes, random_state=config.seed, **config.predictor_options)


def latency_predictor_factory(config: RunConfig, space, sources: Sequence = ()) -> Callable[[], Predictor]:
    """Makes the run's unfitted latency predictor: the best by cross-validation of the transfer from ``sources``,
    the additive model and the XGBoost ensemble (:class:`~hwnas.predictors.select.SelectedLatencyPredictor`);
    the registered ``latency`` predictor alone (XGBoost, as before transfer existed) without transfer."""
    common = predictor_arguments(config, space)
    if config.transfer:
        from hwnas.predictors.select import SelectedLatencyPredictor

        return lambda: SelectedLatencyPredictor(sources, **common)
    return lambda: PREDICTORS.get("latency")(**common)


def latency_source(config: RunConfig, space, *, echo: Callable[[str], None], executor=None,
                   sources: Sequence = ()) -> ProfileLatency:
    """The device's latency source (:func:`hwnas.devices.open_device`: this machine, its node of the
    executor's Ray cluster, or a device out of reach); profiles a device that can measure on the spot when it
    has no profile yet.

    With ``config.latency_table`` the source is that table (:class:`~hwnas.search.sources.tables.TableLatency`).
    A device out of reach predicts what its profile lacks with the run's latency predictor (transferred from
    ``sources`` when there are some).

    Raises:
        HwnasError: a device that cannot measure from here has no (or too small a) profile.
    """
    if config.latency_table:
        from hwnas.search.sources.tables import TableLatency

        return TableLatency(config.latency_table, space, prior_samples=config.profile_samples)
    conditions = config.conditions()
    device = open_device(config.device, profiles_dir=config.profiles_dir, conditions=conditions, executor=executor)
    store = ProfileStore(config.profiles_dir, profile_name(config.device, config.runtime))
    fingerprint, why = None, device.reason
    if device.measurable:
        fingerprint = device.fingerprint(conditions)
        diffs = mismatches(store.fingerprint, fingerprint) if store.exists else []
        if diffs:  # measurements are never mixed: this profile is read, not added to
            fingerprint = None
            why = "its profile was measured under other conditions (" + "; ".join(
                f"{key} {old!r}, now {new!r}" for key, old, new in diffs) + ")"
    measurable = fingerprint is not None
    shape, classes, options = list(config.input_shape), config.num_classes, config.space_options
    held = len(store.records(space.name, shape, options)) if store.exists else 0
    if held < MIN_PROFILE_RECORDS:
        if not measurable and device.measurable:  # reachable, but its profile was measured otherwise
            raise HwnasError(f"device {config.device!r} cannot add to {store.path}: {why}; measurements are never "
                             f"mixed: search with another --device name, or remove {store.path}")
        if not measurable:
            raise HwnasError(f"device {config.device!r} has {held} {space.name} measurements at input "
                             f"{'x'.join(map(str, shape))} in {store.path} and cannot be measured from here "
                             f"({why}): run 'hwnas profile --device {config.device} --space {space.name} "
                             f"--input-shape {'x'.join(map(str, shape))}"
                             f"{'' if config.runtime == DEFAULT_RUNTIME else ' --runtime ' + config.runtime}' on "
                             f"the device and copy the profile folder here")
        samples = config.profile_samples
        echo(f"profiling {config.device!r} on {device.where} in {config.runtime}: {samples} architectures (once; "
             f"kept in {store.path})")
        profile_space(store, space, samples=samples, input_shape=shape, num_classes=classes,
                      conditions=conditions, space_options=options, seed=config.seed,
                      measure_fn=device.measure_arch, fingerprint=fingerprint)
    fallback = None
    if not measurable:
        records = store.records(space.name, shape, options)
        if config.transfer:
            model = latency_predictor_factory(config, space, sources)()
        else:  # as before transfer existed, exactly
            model = LatencyPredictor(space=space.name, space_options=options, input_shape=shape, num_classes=classes)
        fallback = model.fit([r["arch"] for r in records], [r["median_ms"] for r in records]).predict
        echo(f"device {config.device!r} cannot be measured from here ({why}): candidates outside its profile "
             f"get predicted latencies, flagged as such; confirm the final model's latency on the device")
    else:
        echo(f"device {config.device!r} measures on {device.where} ({config.runtime}, profile {store.path})")
    return ProfileLatency(store, space, input_shape=shape, num_classes=classes, space_options=options,
                          conditions=conditions, device=device, measurable=measurable, fallback=fallback,
                          seed=config.seed, fingerprint=fingerprint)


def run_search(run: RunDir, *, echo: Callable[[str], None] = print, wrap_sources: Callable | None = None,
               callback: Callable[[SearchEvent], None] | None = None, accuracy_fn: Callable | None = None,
               executor=None) -> SearchResult:
    """Runs (or resumes) the search of ``run`` (its :class:`RunConfig`); returns the result
    (:class:`~hwnas.search.result.SearchResult`, written as ``result.json``).

    Progress lines go to ``echo``; ``callback`` also receives the loop's typed events (the command line's
    progress bar, a Python user's :class:`~hwnas.search.events.SearchCallback`). ``accuracy_fn(model, arch)
    -> float`` replaces the trainings for a run made with one (:func:`hwnas.start_search`).
    ``wrap_sources(accuracy, latency) -> (accuracy, latency)`` may replace the sources (the benchmark harness
    hides what other runs evaluated). ``executor`` runs the trainings and reaches device nodes
    (:func:`hwnas.cluster.make_executor`; this process by default); the run folder and the evaluation store are
    written here only.
    """
    with run.lock():  # one writer per run folder: a second search or --resume of it is refused
        for path in run.remove_stale_temporaries():
            logger.info("removed %s, left by an interrupted write", path)
        return _run_search(run, echo=echo, wrap_sources=wrap_sources, callback=callback, accuracy_fn=accuracy_fn,
                           executor=executor)


def _check_train_device(run: RunDir, *, ray_gpus: float, on_ray: bool) -> None:
    """Checks the run's training device here; records the kind of device its first session trains on, and
    refuses a resume that would train on another kind (its trainings would be keyed apart, and the run would mix
    a CPU's and a GPU's numbers)."""
    kind = run.config.check_train_device(ray_gpus=ray_gpus, on_ray=on_ray)
    if kind is None:
        return
    if run.config.trained_on is None:
        run.update_config(trained_on=kind)
    elif run.config.trained_on != kind:
        raise HwnasError(f"{run.path} trained on {run.config.trained_on}, and would train on {kind} here; resume it "
                         f"where it can train on {run.config.trained_on}"
                         + (" (with --gpus-per-training on Ray)" if run.config.trained_on == "cuda" else ""))


def _run_search(run: RunDir, *, echo: Callable[[str], None], wrap_sources: Callable | None,
                callback: Callable[[SearchEvent], None] | None, accuracy_fn: Callable | None,
                executor) -> SearchResult:
    from hwnas.search.sources.accuracy import accuracy_source

    run.check_recorded_paths()  # a resume never makes a fresh store or profile where config.json points
    ray_gpus = float(getattr(executor, "gpus_per_task", 0.0))
    on_ray = getattr(executor, "kind", "serial") == "ray"
    _check_train_device(run, ray_gpus=ray_gpus, on_ray=on_ray)  # before anything is measured or trained
    config = run.config
    space = config.create_space()
    sources = transfer_sources(run, space, echo=echo)
    config = run.config
    latency = latency_source(config, space, echo=echo, executor=executor, sources=sources)
    accuracy = accuracy_source(config, space, accuracy_fn=accuracy_fn, ray_gpus=ray_gpus, on_ray=on_ray)
    estimates = None
    if config.estimator == "supernet":
        from hwnas.search.sources.accuracy import supernet_estimates

        estimates = supernet_estimates(config, space, default_folder=run.path / "supernet", echo=echo)
    if wrap_sources is not None:
        accuracy, latency = wrap_sources(accuracy, latency)
    settings = config.settings()
    common = predictor_arguments(config, space)

    def extras(best: Trial | None) -> dict[str, Any]:
        found: dict[str, Any] = {"estimator": config.estimator}
        if best is not None and hasattr(accuracy, "test_accuracy"):
            # A look-up of the test accuracy the best's own search training measured: never an extra training.
            found["test_accuracy"] = accuracy.test_accuracy(space.parse(best.arch))
        if estimates is not None:
            meta = estimates.estimator.meta
            found["supernet"] = {"path": str(estimates.estimator.folder.path.resolve()),
                                 "checksum": meta["checksum"], "epochs": meta["epochs_done"],
                                 "sampling": meta["settings"]["sampling"], "train_time_s": meta["train_time_s"]}
        return found

    events = CallbackList([ProgressLines(settings, echo), callback])
    loop = SearchLoop(space=space, controller=create_controller(config.controller, space, seed=settings.seed,
                                                                 mode=config.mode),
                      reward=create_reward(config.reward), accuracy_source=accuracy, latency_source=latency,
                      settings=settings, run_dir=run,
                      make_accuracy_predictor=lambda: PREDICTORS.get("accuracy")(**common),
                      make_latency_predictor=latency_predictor_factory(config, space, sources), callback=events,
                      estimator=estimates, result_extras=extras, executor=executor)
    events(SearchStarted(max_trainings=settings.max_trainings, trainings_done=loop.state.trainings,
                         budget_ms=settings.budget_ms, run_dir=run.path, config=config,
                         verified=tuple(loop.state.verified)))
    result = loop.run()
    events(SearchFinished(result=result))
    return result


class ProgressLines(SearchCallback):
    """One line per verification and per round: trainings used, best verified, predictor quality, ETA."""

    def __init__(self, settings: SearchSettings, echo: Callable[[str], None]) -> None:
        self.max_trainings = settings.max_trainings
        self.measurement_cap = settings.measurement_cap
        self.budget_ms = settings.budget_ms
        self.echo = echo
        self.start = time.monotonic()
        self.done_this_session = 0

    def on_estimating(self, event: Estimating) -> None:
        self.echo(f"  estimating {event.count} architectures with the supernet ({event.estimated} estimated "
                  f"so far)")

    def on_initial(self, event: InitialPhase) -> None:
        self.echo(f"initial: {event.count} diverse architectures to train and measure")

    def on_learning(self, event: Learning) -> None:
        self.echo(f"round {event.round}: controller learning on predicted reward")

    def on_measured(self, event: LatencyMeasured) -> None:
        if not event.feasible:
            self.echo(f"  measured {event.arch}: {format_latency(event.latency_ms)}, over the budget: not trained "
                      f"({event.measurements} measurements)")

    def on_trained(self, event: Trained) -> None:
        self.done_this_session += 1
        record, best = event.record, event.best
        best_text = (f"best {best.accuracy:.4f} @ {format_latency(best.latency_ms)}" if best
                     else "nothing under budget yet")
        per = (time.monotonic() - self.start) / self.done_this_session
        self.echo(f"  verified {record.arch}: acc {record.accuracy:.4f}, {format_latency(record.latency_ms)}"
                  f"{'' if record.latency_measured else ' (predicted)'} | {best_text} "
                  f"(budget {format_latency(self.budget_ms)}) | {per:.1f} s/training, "
                  f"{event.measurements} measurements")

    def on_finals(self, event: FinalsStarted) -> None:
        self.echo(f"finals: {len(event.finalists)} finalists, each trained {event.seeds} more time"
                  f"{'s' if event.seeds > 1 else ''} with other seeds; the answer is the best mean")

    def on_finalist_trained(self, event: FinalistTrained) -> None:
        self.echo(f"  finalist {event.arch}: seed {event.replica + 1} of {event.seeds + 1}: acc {event.accuracy:.4f}")

    def on_round_done(self, event: RoundDone) -> None:
        row = event.row
        quality = []
        if row.get("accuracy_mae_new") is not None:
            quality.append(f"acc MAE {row['accuracy_mae_new']:.3f}")
        if row.get("latency_mape_new") is not None:
            quality.append(f"lat MAPE {row['latency_mape_new']:.1f}%")
        remaining = self.max_trainings - event.trainings_used
        per = (time.monotonic() - self.start) / max(1, self.done_this_session)
        self.echo(f"round {event.round} done: {event.trainings_used}/{self.max_trainings} trainings, "
                  f"{event.measurements_used}/{self.measurement_cap} measurements ({event.new_over_budget} of "
                  f"{event.new_measured} new over the budget); predictors on new truth: "
                  f"{', '.join(quality) or 'n/a'}; ETA {remaining * per / 60:.1f} min")
