"""``hwnas search --latency-budget 2ms``: the main job."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from hwnas.cli.common import EPOCHS, EXIT_INTERRUPTED, SEED, OwnLoggers, fail, print_json, progress_echo
from hwnas.cli.run_options import (EXECUTION_PARAMS, RUN_PARAMS, config_from_options, controller_names,
                                   check_device_for, execution_options, executor_from_options, on_command_line,
                                   parse_duration, run_options)
from hwnas.cli.search_progress import SearchBar, progress_wanted
from hwnas.search.config import RunConfig
from hwnas.search.events import CallbackList
from hwnas.search.result import SearchResult

logger = logging.getLogger(__name__)

#: ``--mlflow`` without a URI: MLflow's own default store (or, on a resume, the one the run logged to).
MLFLOW_DEFAULT = "default"


@click.command("search")
@run_options()
@execution_options
@click.option("--controller", type=click.Choice(controller_names()), default=RunConfig.default("controller"),
              show_default=True)
@click.option("--time-budget", callback=parse_duration, metavar="DURATION",
              help="Wall-clock limit over all sessions of the run: 90s, 10m, 1h30m.")
@click.option("--seed", type=SEED, default=RunConfig.default("seed"), show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the run goes [default: runs/<space>-<dataset>-<device>-<budget>-s<seed>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue a run stopped by Ctrl-C or a crash (its settings are kept; only --max-trainings, "
                   "--max-measurements and --time-budget may extend them, and are written back to its "
                   "config.json).")
@click.option("--estimator", type=click.Choice(["train", "supernet"]), default=RunConfig.default("estimator"),
              show_default=True,
              help="What the accuracy predictor learns from besides the trainings: train (trainings only) or "
                   "supernet (many weight-sharing estimates, calibrated on the trainings; the answer is still "
                   "the best trained architecture).")
@click.option("--supernet", "supernet_path", type=click.Path(file_okay=False, path_type=Path),
              help="A finished supernet folder ('hwnas supernet train') for --estimator supernet [default: one "
                   "trained now in the run folder]; implies --estimator supernet.")
@click.option("--supernet-epochs", type=EPOCHS, default=RunConfig.default("supernet_epochs"),
              show_default=True, help="Epochs of the supernet trained on the spot (the run's recipe otherwise).")
@click.option("--initial-estimates", type=click.IntRange(min=1), default=RunConfig.default("initial_estimates"),
              show_default=True, help="--estimator supernet: architectures estimated before the first training.")
@click.option("--estimates-per-round", type=click.IntRange(min=0),
              default=RunConfig.default("estimates_per_round"), show_default=True,
              help="--estimator supernet: the round's best candidates estimated before it picks what to train.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE.toml",
              help="Settings from a TOML file: keys are RunConfig settings or these flags' names (max-trainings = "
                   "40, latency-budget = \"2ms\"); flags given here override the file.")
@click.option("--print-config", is_flag=True,
              help="Print the run's effective settings as TOML (a file --config reads) and stop: no run starts.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result (result.json plus the run folder) as one JSON document on stdout; progress "
                   "goes to stderr.")
@click.option("--no-progress", is_flag=True,
              help="No live progress bar (it is shown only when stderr is a terminal anyway).")
@click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value=MLFLOW_DEFAULT, default=None, metavar="[URI]",
              help="Log the search to MLflow: one run, a nested run per trained candidate (no URI: "
                   "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here; a resume: the store it logged to). "
                   "Needs hwnas[mlflow].")
def search_cmd(controller, time_budget, seed, run_dir, resume, estimator, supernet_path, supernet_epochs,
               initial_estimates, estimates_per_round, config_file, print_config, as_json, no_progress,
               mlflow_uri, **params) -> None:
    """Search the most accurate architecture whose measured latency fits the budget.

    \b
    hwnas search --latency-budget 100us --dataset digits --max-trainings 30 --run-dir runs/digits
    hwnas search --resume runs/digits
    hwnas search --config run.toml --max-trainings 60       # the file's settings, this flag over them
    hwnas search --latency-budget 2ms --dataset photos/ --input-shape 3x32x32 --epochs 5 --data-fraction 0.5
    """
    from hwnas.search.config_file import dump_toml
    from hwnas.search.rundir import RunDir, check_run_folder

    # MLflow missing, or its store unusable: one line, no folder (--print-config writes nothing, MLflow included)
    tracker = None if print_config else _mlflow_tracker(mlflow_uri)
    if resume is not None:
        run = RunDir.open(resume)
        _check_resume_flags(run.config)
        # a missing or tampered state.json or checkpoint, a gone store or profile: one line, before anything is
        # built or config.json written
        run.check_resumable()
        overrides = {name: params[name] for name in ("max_trainings", "max_measurements") if on_command_line(name)}
        if on_command_line("time_budget"):
            overrides["time_budget_s"] = time_budget
        if print_config:  # what it would run under; nothing written
            click.echo(dump_toml(run.config.replace(**overrides)), nl=False)
            return
        if overrides:
            run.update_config(**overrides)  # written back: the run's config.json says what it now runs under
        progress_echo(as_json)(f"# resuming {run.path} with its settings (config.json):\n"
                               f"{dump_toml(run.config)}")
        check_device_for(run.config, params)  # before Ray is started
        executor = executor_from_options(params, train_threads=run.config.train_threads)
    else:
        if supernet_path is not None and on_command_line("estimator") and estimator != "supernet":
            raise click.UsageError("--supernet is the supernet of --estimator supernet; drop one of them")
        if (estimator == "supernet" or supernet_path) and params["accuracy_table"] is not None:
            raise click.UsageError("--estimator supernet needs trainings, not --accuracy-table")
        config = config_from_options(
            {k: params[k] for k in RUN_PARAMS}, controller=controller, seed=seed, time_budget_s=time_budget,
            estimator=estimator, supernet=str(supernet_path) if supernet_path else None,
            supernet_epochs=supernet_epochs, initial_estimates=initial_estimates,
            estimates_per_round=estimates_per_round, config_file=config_file)
        if print_config:
            click.echo(dump_toml(config), nl=False)
            return
        run_dir = run_dir or Path("runs") / config.run_name()
        check_run_folder(run_dir)  # a foreign folder, a file or a device: no Ray, no work
        check_device_for(config, params)  # an unusable device: no folder
        executor = executor_from_options(params, train_threads=config.train_threads)  # Ray missing: no folder
        run = RunDir.create(run_dir, config)
    _attach_log(run.log_file)
    echo = progress_echo(as_json)
    bar = None
    if progress_wanted(no_progress=no_progress, as_json=as_json):
        bar = SearchBar(run.config.max_trainings, run.config.budget_ms)
        echo = bar.echo
    if tracker is not None:
        tracker.echo = echo
    try:
        from hwnas.search.runner import run_search

        result = run_search(run, echo=echo, callback=CallbackList([c for c in (bar, tracker) if c is not None]),
                            executor=executor)
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.close("KILLED")
        if bar is not None:
            bar.close()
        executor.close()
        fail(f"interrupted; finished trainings and measurements are kept: resume with "
             f"'hwnas search --resume {run.path}'", EXIT_INTERRUPTED)
    except Exception:
        if tracker is not None:
            tracker.close("FAILED")
        raise
    finally:
        if bar is not None:
            bar.close()
        executor.close()
    if as_json:
        print_json({"run_dir": str(run.path), "pareto_plot": str(run.path / "pareto.png"), **result.document})
    else:
        _print_result(run, result)


#: What ``--resume`` may change; every other setting is the run's own (``config.json``).
RESUME_OPTIONS = ("max_trainings", "max_measurements", "time_budget")
#: How this session reports and runs (not settings of the run): free with ``--resume``.
OUTPUT_OPTIONS = ("as_json", "no_progress", "print_config", "mlflow_uri", *EXECUTION_PARAMS)


def _mlflow_tracker(uri: str | None):
    """The :class:`~hwnas.search.tracking.MlflowCallback` of ``--mlflow [URI]`` (None without it)."""
    if uri is None:
        return None
    from hwnas.search.tracking import MlflowCallback

    return MlflowCallback(None if uri == MLFLOW_DEFAULT else uri)


#: Options a resume may repeat when they name what the run already uses (its :class:`RunConfig` attribute).
_SAME_AS_RUN = {"profiles_dir": "profiles_dir", "store_path": "store"}


def _check_resume_flags(config: RunConfig) -> None:
    ctx = click.get_current_context()

    def same_as_run(name: str) -> bool:
        key = _SAME_AS_RUN.get(name)
        value, stored = ctx.params.get(name), getattr(config, key) if key else None
        return key is not None and value is not None and stored is not None and \
            Path(value).resolve() == Path(stored).resolve()

    conflicting = [param.opts[0] for param in ctx.command.params
                   if param.name not in (*RESUME_OPTIONS, *OUTPUT_OPTIONS, "resume") and on_command_line(param.name)
                   and not same_as_run(param.name)]
    if conflicting:
        raise click.UsageError(f"--resume keeps the run's own settings (its config.json); only --max-trainings, "
                               f"--max-measurements and --time-budget may change: drop {', '.join(conflicting)}")


def _attach_log(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    # The file gets INFO from everything; the terminal keeps its -v level (the OwnLoggers filter of
    # setup_logging, else a WARNING level on handlers that have none).
    for log in (root, logging.getLogger("hwnas")):
        if log.level > logging.INFO or log is root and log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
    for other in root.handlers:
        if other is not handler and other.level == logging.NOTSET and \
                not any(isinstance(f, OwnLoggers) for f in other.filters):
            other.setLevel(logging.WARNING)


def finalist_lines(result: SearchResult) -> list[str]:
    """The finalists' lines: each one's validation accuracy mean +- spread over its seeds, the chosen first."""
    from hwnas.units import format_latency

    finalists = result.finalists
    if not finalists:
        return []
    lines = [f"  finalists (validation accuracy over {finalists[0].seeds} seeds: mean +- standard deviation; "
             f"the answer is the best mean):"]
    for i, f in enumerate(finalists):
        lines.append(f"    {'*' if i == 0 else ' '} {f.mean:.4f} +- {f.std:.4f}  "
                     f"{format_latency(f.latency_ms)}  {f.arch}")
    return lines


def _print_result(run, result: SearchResult) -> None:
    from hwnas.units import format_latency

    budget = result.budget_ms
    click.echo(f"\nsearch finished: {result.stop_reason}; {result.trainings_used} trainings, "
               f"{result.measurements_used} latency measurements, {result.rounds} rounds, "
               f"{result.elapsed_s:.0f} s")
    best = result.best
    if best is None:
        click.echo(f"no architecture found within the budget of {format_latency(budget)}; the fastest measured:")
        for c in result.closest:
            accuracy = "not trained" if c.accuracy is None else f"accuracy {c.accuracy:.4f}"
            click.echo(f"  {c.arch}  {accuracy}  latency {format_latency(c.latency_ms)}")
        click.echo("raise the budget, or search longer (--max-trainings) for faster architectures")
        return
    measured = "measured" if best.latency_measured else "PREDICTED (device not reachable)"
    click.echo(f"best: {best.arch}")
    click.echo(f"  validation accuracy {best.accuracy:.4f}"
               + (f", test accuracy {result.test_accuracy:.4f} (measured once at the end of its search "
                  f"training; never used to select)" if result.test_accuracy is not None else ""))
    click.echo(f"  latency {format_latency(best.latency_ms)} {measured} (budget {format_latency(budget)})")
    for line in finalist_lines(result):
        click.echo(line)
    click.echo(f"  Pareto front: {len(result.pareto_front)} architectures; plot {run.path / 'pareto.png'}")
    click.echo(f"  every trained candidate: hwnas trials {run.path}")
    click.echo(f"export it with: hwnas export {run.path} -o model.onnx")
