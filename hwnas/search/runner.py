"""Assembles a search from a run's configuration: task, device profile, sources, predictors, controller, loop."""

from __future__ import annotations

import logging
import time
from typing import Callable

from hwnas.errors import HwnasError
from hwnas.predictors import AccuracyPredictor, LatencyPredictor
from hwnas.profiling import Conditions, ProfileStore, profile_space
from hwnas.search.controllers import create_controller
from hwnas.search.loop import SearchLoop, SearchSettings
from hwnas.search.reward import create_reward
from hwnas.search.rundir import RunDir
from hwnas.search.sources import ProfileLatency, is_local_profile
from hwnas.spaces import create_space

logger = logging.getLogger(__name__)

MIN_PROFILE_RECORDS = 10


def latency_source(config: dict, space, *, echo: Callable[[str], None]) -> ProfileLatency:
    """The device's latency source; profiles the host on the spot when it has no profile yet.

    With ``config["latency_table"]`` the source is that table (:class:`~hwnas.search.table_sources.TableLatency`).

    Raises:
        HwnasError: a device other than this machine has no (or too small a) profile.
    """
    if config.get("latency_table"):
        from hwnas.search.table_sources import TableLatency

        return TableLatency(config["latency_table"], space,
                            prior_samples=int(config.get("profile_samples", 120)))
    conditions = Conditions(provider=config.get("provider", "cpu"), threads=int(config.get("threads", 1)),
                            batch_size=int(config.get("batch_size", 1)), precision=config.get("precision", "fp32"))
    store = ProfileStore(config["profiles_dir"], config["device"])
    local = is_local_profile(store, conditions)
    shape, classes, options = config["input_shape"], config["num_classes"], config.get("space_options") or {}
    held = len(store.records(space.name, shape, options)) if store.exists else 0
    if held < MIN_PROFILE_RECORDS:
        if not local:
            raise HwnasError(f"device {config['device']!r} has {held} {space.name} measurements at input "
                             f"{'x'.join(map(str, shape))} under {store.root} and is not this machine: run "
                             f"'hwnas profile --device {config['device']} --space {space.name} --input-shape "
                             f"{'x'.join(map(str, shape))}' on the device and copy the profile folder here")
        samples = int(config.get("profile_samples", 120))
        echo(f"profiling this machine as {config['device']!r}: {samples} architectures (once; kept in "
             f"{store.path})")
        profile_space(store, space, samples=samples, input_shape=shape, num_classes=classes,
                      conditions=conditions, space_options=options, seed=int(config.get("seed", 0)))
    fallback = None
    if not local:
        records = store.records(space.name, shape, options)
        fallback = LatencyPredictor(space=space.name, space_options=options, input_shape=shape,
                                    num_classes=classes).fit([r["arch"] for r in records],
                                                             [r["median_ms"] for r in records]).predict
        echo(f"device {config['device']!r} is not this machine: candidates outside its profile get predicted "
             f"latencies, flagged as such; confirm the final model's latency on the device")
    return ProfileLatency(store, space, input_shape=shape, num_classes=classes, space_options=options,
                          conditions=conditions, measurable=local, fallback=fallback,
                          seed=int(config.get("seed", 0)))


def run_search(run: RunDir, config: dict, *, echo: Callable[[str], None] = print,
               wrap_sources: Callable | None = None, on_event: Callable[[str, dict], None] | None = None) -> dict:
    """Runs (or resumes) the search described by ``config`` in ``run``; returns the result.

    ``wrap_sources(accuracy, latency) -> (accuracy, latency)`` may replace the sources (the benchmark harness
    hides what other runs evaluated). ``on_event(event, info)`` also receives the loop's events (after the
    progress lines): the command line's progress bar.
    """
    with run.lock():  # one writer per run folder: a second search or --resume of it is refused
        for path in run.remove_stale_temporaries():
            logger.info("removed %s, left by an interrupted write", path)
        return _run_search(run, config, echo=echo, wrap_sources=wrap_sources, on_event=on_event)


def _run_search(run: RunDir, config: dict, *, echo: Callable[[str], None], wrap_sources: Callable | None,
                on_event: Callable[[str, dict], None] | None = None) -> dict:
    from hwnas.search.accuracy_sources import accuracy_source

    space = create_space(config["space"], **(config.get("space_options") or {}))
    latency = latency_source(config, space, echo=echo)
    accuracy = accuracy_source(config, space)
    estimates = None
    if config.get("estimator", "train") == "supernet":
        from hwnas.search.accuracy_sources import supernet_estimates

        estimates = supernet_estimates(config, space, default_folder=run.path / "supernet", echo=echo)
    if wrap_sources is not None:
        accuracy, latency = wrap_sources(accuracy, latency)
    shape, classes, options = config["input_shape"], config["num_classes"], config.get("space_options") or {}
    settings = SearchSettings(budget_ms=float(config["budget_ms"]), max_trainings=int(config["max_trainings"]),
                              max_measurements=config.get("max_measurements"),
                              time_budget_s=config.get("time_budget_s"),
                              acquisition=config.get("acquisition", "ucb"),
                              num_classes=int(config["num_classes"]) if config.get("num_classes") else None,
                              initial_trainings=int(config.get("initial_trainings", 8)),
                              candidates_per_round=int(config.get("candidates_per_round", 4)),
                              archs_per_round=int(config.get("archs_per_round", 2000)),
                              explore=float(config.get("explore", 1.0)),
                              local_search_steps=int(config.get("local_search_steps", 3)),
                              initial_estimates=int(config.get("initial_estimates", 200)),
                              estimates_per_round=int(config.get("estimates_per_round", 20)),
                              skip_equivalent=bool(config.get("skip_equivalent", True)),
                              seed=int(config.get("seed", 0)))
    common = dict(space=space.name, space_options=options, input_shape=shape, num_classes=classes,
                  random_state=settings.seed, **(config.get("predictor_options") or {}))
    lines = Progress(settings, echo)

    def progress(event: str, info: dict) -> None:
        lines(event, info)
        if on_event is not None:
            on_event(event, info)
    loop = SearchLoop(space=space, controller=create_controller(config["controller"], space, seed=settings.seed,
                                                                 mode=config.get("mode", "oneshot")),
                      reward=create_reward(config["reward"]), accuracy_source=accuracy, latency_source=latency,
                      settings=settings, run_dir=run, make_accuracy_predictor=lambda: AccuracyPredictor(**common),
                      make_latency_predictor=lambda: LatencyPredictor(**common), on_event=progress,
                      estimator=estimates)
    result = loop.run()
    extra: dict = {}
    if result["best"] is not None and "test_accuracy" not in result and hasattr(accuracy, "test_accuracy"):
        # A look-up of the test accuracy the best's own search training measured: never an extra training.
        extra["test_accuracy"] = accuracy.test_accuracy(space.parse(result["best"]["arch"]))
    if "estimator" not in result:
        extra["estimator"] = config.get("estimator", "train")
        if estimates is not None:
            meta = estimates.estimator.meta
            extra["supernet"] = {"path": str(estimates.estimator.folder.path.resolve()),
                                 "checksum": meta["checksum"], "epochs": meta["epochs_done"],
                                 "sampling": meta["settings"]["sampling"], "train_time_s": meta["train_time_s"]}
    if extra:
        result.update(extra)
        run.write_result(result, loop.state.verified, budget_ms=settings.budget_ms)
    return result


class Progress:
    """One line per verification and per round: trainings used, best verified, predictor quality, ETA."""

    def __init__(self, settings: SearchSettings, echo: Callable[[str], None]) -> None:
        self.settings = settings
        self.echo = echo
        self.start = time.monotonic()
        self.done_this_session = 0

    def __call__(self, event: str, info: dict) -> None:
        from hwnas.search.budget import format_ms

        if event == "estimating":
            self.echo(f"  estimating {info['count']} architectures with the supernet "
                      f"({info['estimated']} estimated so far)")
        elif event == "initial":
            self.echo(f"initial: {info['count']} diverse architectures to train and measure")
        elif event == "learn":
            self.echo(f"round {info['round']}: controller learning on predicted reward")
        elif event == "measured" and not info["feasible"]:
            self.echo(f"  measured {info['arch']}: {format_ms(info['latency_ms'])}, over the budget: not trained "
                      f"({info['measurements']} measurements)")
        elif event == "verified":
            self.done_this_session += 1
            best = info["best"]
            best_text = (f"best {best['accuracy']:.4f} @ {format_ms(best['latency_ms'])}" if best
                         else "nothing under budget yet")
            per = (time.monotonic() - self.start) / self.done_this_session
            self.echo(f"  verified {info['arch']}: acc {info['accuracy']:.4f}, "
                      f"{format_ms(info['latency_ms'])}"
                      f"{'' if info['latency_measured'] else ' (predicted)'} | {best_text} "
                      f"(budget {format_ms(self.settings.budget_ms)}) | {per:.1f} s/training, "
                      f"{info['measurements']} measurements")
        elif event == "round_done":
            row = info
            quality = []
            if row.get("accuracy_mae_new") is not None:
                quality.append(f"acc MAE {row['accuracy_mae_new']:.3f}")
            if row.get("latency_mape_new") is not None:
                quality.append(f"lat MAPE {row['latency_mape_new']:.1f}%")
            remaining = self.settings.max_trainings - row["trainings_used"]
            per = (time.monotonic() - self.start) / max(1, self.done_this_session)
            self.echo(f"round {row['round']} done: {row['trainings_used']}/{self.settings.max_trainings} "
                      f"trainings, {row['measurements_used']}/{self.settings.measurement_cap} measurements "
                      f"({row['new_over_budget']} of {row['new_measured']} new over the budget); "
                      f"predictors on new truth: {', '.join(quality) or 'n/a'}; "
                      f"ETA {remaining * per / 60:.1f} min")
