"""The comparison harness behind ``hwnas benchmark``: every controller, same budget, same seeds.

Each (controller, seed) pair is one ordinary search (:func:`~hwnas.search.runner.run_search`, so the same
loop, predictors, reward and real evaluations) in its own run directory ``<out>/runs/<controller>-s<seed>``;
rerunning the command resumes unfinished runs and skips finished ones. Fairness:

- Every run gets the same settings; a run's seed drives its initial samples, exploration picks and controller.
- A run only knows what *it* verified: the shared evaluation store (``<out>/evals.sqlite``, so a training is
  never repeated across runs) is hidden from the predictors, and the latency predictor's prior data (the
  device profile, or the table's stand-in rows) is frozen when the benchmark starts
  (``<out>/latency_prior.json``), so measurements made by one run do not help another.

Outputs in ``<out>``: ``benchmark.json`` (settings), ``curves.csv`` and ``curves.json`` (per controller and
seed, best verified accuracy under the budget after each evaluation, and regret when both tables are given),
``summary.json`` (medians at 25/50/100 evaluations and at the budget) and ``curves.png``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Sequence

from hwnas.errors import HwnasError
from hwnas.io import (atomic_write_json, atomic_write_text, check_output_folder, finite_number,
                      read_json_object)
from hwnas.search.config import RunConfig
from hwnas.search.result import SearchResult
from hwnas.search.curves import (best_curve, checkpoints, measurement_curve, plot_curves, regret_curve,
                                 summarize)
from hwnas.training.recipe import complete_recipe
from hwnas.units import format_latency

logger = logging.getLogger(__name__)

# Settings that must match to resume a benchmark in the same folder (controllers, seeds and the training
# budget may grow).
FIXED_SETTINGS = ("space", "space_options", "dataset", "accuracy_table", "latency_table", "device", "budget_ms",
                  "reward", "mode", "initial_trainings", "candidates_per_round", "archs_per_round", "explore",
                  "local_search_steps", "epochs", "predictor_options", "acquisition", "dataset_options",
                  "dataset_input_shape", "recipe", "transfer", "transfer_from")


class BenchmarkError(HwnasError):
    """A benchmark cannot start (bad settings, a folder holding another benchmark)."""


class _RunScopedAccuracy:
    """An accuracy source whose ``known()`` is empty: the run's predictors learn only from its own
    verifications (which the loop adds itself)."""

    def __init__(self, source) -> None:
        self.source = source

    def evaluate(self, arch):
        return self.source.evaluate(arch)

    def job(self, arch):
        make = getattr(self.source, "job", None)
        return None if make is None else make(arch)

    def finish(self, arch, result):
        return self.source.finish(arch, result)

    @property
    def trains(self) -> bool:
        """Whether the source trains (its trials then record parameters, MACs, time and test accuracy)."""
        return bool(getattr(self.source, "trains", False))

    def known(self) -> list[tuple[str, float]]:
        return []


class _FrozenLatency:
    """A latency source whose ``known()`` is fixed (the prior every run starts from)."""

    def __init__(self, source, prior: Sequence[tuple[str, float]]) -> None:
        self.source = source
        self.prior = [(str(a), float(v)) for a, v in prior]

    def measure(self, arch):
        return self.source.measure(arch)

    def known(self) -> list[tuple[str, float]]:
        return list(self.prior)


def true_best(space, accuracy_table: str | os.PathLike, latency_table: str | os.PathLike,
              budget_ms: float) -> dict | None:
    """The most accurate architecture of both tables whose latency is within the budget (None if none)."""
    from hwnas.search.sources.tables import TableLatency, accuracy_table as load_accuracy_table

    accuracy = load_accuracy_table(accuracy_table, space)
    latency = TableLatency(latency_table, space, prior_samples=1).latency
    feasible = [(accuracy.lookup(s), -lat, s) for s, lat in latency.items() if lat <= budget_ms and s in accuracy]
    if not feasible:
        return None
    acc, neg_lat, arch = max(feasible)
    return {"arch": arch, "accuracy": acc, "latency_ms": -neg_lat}


def run_benchmark(config: RunConfig, *, controllers: Sequence[str], seeds: Sequence[int],
                  out: str | os.PathLike, echo: Callable[[str], None] = print, executor=None) -> dict:
    """Runs (or resumes) every controller on every seed and writes the curves; returns the summary payload.

    Args:
        config: A resolved search configuration (:meth:`RunConfig.resolved`); its controller and seed are
            replaced by each run's.
        controllers: Registered controller names.
        seeds: Seeds, the same for every controller.
        out: The benchmark folder.
        echo: Progress output.
        executor: Where the trainings run (:mod:`hwnas.cluster`; this process by default).
    """
    from hwnas.search.controllers import CONTROLLERS

    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        raise BenchmarkError(f"unknown controller {unknown[0]!r} (known: {', '.join(CONTROLLERS.names())})")
    folder = check_benchmark_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    config = config.replace(store=config.store or str(folder / "evals.sqlite"))
    _check_settings(folder, config)
    best = None
    if config.accuracy_table and config.latency_table:
        best = true_best(config.create_space(), config.accuracy_table, config.latency_table, config.budget_ms)
        if best is None:
            raise BenchmarkError(f"no architecture of the tables fits the budget of "
                                 f"{format_latency(config.budget_ms)}")
    curves = {controller: {} for controller in controllers}
    # Seed by seed, every controller in turn: an interrupted benchmark has comparable results for all of them.
    for seed in seeds:
        for controller in controllers:
            entry, result = _run_one(folder, config, controller=controller, seed=int(seed), best=best,
                                     executor=executor)
            curves[controller][int(seed)] = entry
            found = result.best
            echo(f"{controller:>10} seed {seed}: {result.trainings_used} evaluations, best "
                 + (f"{found.accuracy:.4f} @ {format_latency(found.latency_ms)}" if found
                    else "none under budget")
                 + (f", regret {entry['regret'][-1]:.4f}" if best is not None else ""))
    return write_outputs(folder, config, curves, best)


def check_benchmark_folder(out: str | os.PathLike) -> Path:
    """Checks, before any work, that ``out`` may hold a benchmark: new, empty or a benchmark folder (never a
    non-empty folder that is not hwnas's, nor a file; :func:`hwnas.io.check_output_folder`)."""
    return check_output_folder(out, kinds=("benchmark folder",), what="benchmark folder", error=BenchmarkError)


def _run_one(folder: Path, config: RunConfig, *, controller: str, seed: int, best: dict | None,
             executor=None) -> tuple[dict, SearchResult]:
    """Runs (or resumes, or reads back) one controller on one seed; returns its curves and its search result."""
    from hwnas.search.rundir import RunDir
    from hwnas.search.runner import run_search

    prior_file = folder / "latency_prior.json"
    path = folder / "runs" / f"{controller}-s{seed}"
    if (path / "config.json").exists():
        run = RunDir.open(path)
        if run.config.max_trainings != config.max_trainings:  # a benchmark rerun with a larger budget
            run.update_config(max_trainings=config.max_trainings)
    else:
        run = RunDir.create(path, config.replace(controller=controller, seed=seed))

    def wrap(accuracy, latency):
        if prior_file.exists():
            prior = read_prior(prior_file)
        else:
            prior = latency.known()
            atomic_write_json(prior_file, {"known": prior})
        return _RunScopedAccuracy(accuracy), _FrozenLatency(latency, prior)

    # per-verification lines would drown the summary: they go to the log only
    result = run_search(run, echo=logger.info, wrap_sources=wrap, executor=executor)
    verified = [vars(v) for v in run.load_state().verified]
    length = config.max_trainings
    curve = best_curve(verified, budget_ms=config.budget_ms, length=length)
    entry: dict[str, list] = {"best_accuracy": curve, "measurements": measurement_curve(verified, length=length),
                              "over_budget": [int(v["latency_ms"] > config.budget_ms) for v in verified]}
    if best is not None:
        entry["regret"] = regret_curve(curve, best["accuracy"])
    return entry, result


def read_prior(path: Path) -> list[tuple[str, float]]:
    """The latency prior every run of a benchmark starts from, validated (a corrupt file is one error line: it
    is not rebuilt, since runs already made started from it)."""
    known = read_json_object(path, error=BenchmarkError, what="latency prior").get("known")
    if not (isinstance(known, list) and all(isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)
                                            and finite_number(row[1], positive=True) for row in known)):
        raise BenchmarkError(f"{path} is corrupt: 'known' must list [architecture, latency in ms] pairs; "
                             f"delete the benchmark folder's runs and this file to start again")
    return [(a, float(v)) for a, v in known]


def write_outputs(folder: Path, config: RunConfig, curves: dict, best: dict | None) -> dict:
    """Writes ``curves.csv``, ``curves.json``, ``summary.json`` and ``curves.png``; returns the summary."""
    marks = checkpoints(config.max_trainings)
    rows = summarize(curves, marks)
    lines = ["controller,seed,evaluations,best_accuracy,regret,measurements"]
    for controller, runs in curves.items():
        for seed, run in runs.items():
            for i, value in enumerate(run["best_accuracy"]):
                regret = run["regret"][i] if "regret" in run else ""
                measured = run.get("measurements", [])
                count = measured[i] if i < len(measured) and measured[i] is not None else ""
                lines.append(f"{controller},{seed},{i + 1},{'' if value is None else value},{regret},{count}")
    atomic_write_text(folder / "curves.csv", "\n".join(lines) + "\n")
    document = config.to_json()
    settings = {k: document.get(k) for k in (*FIXED_SETTINGS, "max_trainings")}
    atomic_write_json(folder / "curves.json", {"settings": settings, "true_best": best,
                                               "curves": {c: {str(s): r for s, r in runs.items()}
                                                          for c, runs in curves.items()}})
    payload = {"settings": settings, "true_best": best, "checkpoints": marks, "summary": rows}
    atomic_write_json(folder / "summary.json", payload)
    plot_curves(curves, folder / "curves.png", key="regret" if best is not None else "best_accuracy",
                title=f"{config.space}, budget {format_latency(config.budget_ms)}, {config.mode}")
    return payload


def _check_settings(folder: Path, config: RunConfig) -> None:
    path = folder / "benchmark.json"
    document = config.to_json()
    settings = {k: document.get(k) for k in FIXED_SETTINGS}
    if path.exists():
        stored = read_json_object(path, error=BenchmarkError, what="benchmark settings")
        # An empty setting equals a missing one (folders made before a setting existed).
        differs = [k for k in FIXED_SETTINGS if _comparable(k, stored.get(k)) != _comparable(k, settings[k])
                   and not (k == "recipe" and k not in stored)]
        if differs:
            k = differs[0]
            raise BenchmarkError(f"{folder} holds a benchmark with other settings ({k}: {stored.get(k)!r} there, "
                                 f"{settings[k]!r} now); use another --out")
        return
    atomic_write_json(path, settings)


def _comparable(key: str, value):
    """A setting as compared on resume: empty equals missing (folders made before a setting existed), and a
    table's path equals its absolute form (hwnas 0.1 stored it as typed)."""
    if not value:
        return None
    if key in ("accuracy_table", "latency_table"):
        return str(Path(value).resolve())
    if key == "recipe" and isinstance(value, dict):
        return complete_recipe(value)
    return value
