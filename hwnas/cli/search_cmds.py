"""``hwnas search --latency-budget 2ms``: the main job."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from hwnas.cli.common import (EXIT_INTERRUPTED, SEED, FiniteFloat, OwnLoggers, fail, make_space,
                              parse_space_options, print_json, space_options, stderr_echo)
from hwnas.cli.search_progress import SearchBar, progress_wanted
from hwnas.cli.train_cmds import dataset_options, make_recipe, recipe_options
from hwnas.profiling.store import DEFAULT_PROFILES_DIR

logger = logging.getLogger(__name__)

QUICK_PROFILE_SAMPLES = 120


def _parsed_with(parser: str):
    """A click callback that parses a given value with ``hwnas.search.budget.<parser>``; a bad one is a usage
    error naming the option."""

    def callback(ctx, param, value):
        from hwnas.search import budget

        if value is None:
            return None
        try:
            return getattr(budget, parser)(value)
        except budget.BudgetError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


_budget = _parsed_with("parse_latency")
_duration = _parsed_with("parse_duration")


def _controller_names() -> list[str]:
    from hwnas.search.controllers import CONTROLLERS

    return CONTROLLERS.names()


def _acquisition_names() -> list[str]:
    from hwnas.search.acquisition import ACQUISITIONS

    return ACQUISITIONS.names()


def _reward_names() -> list[str]:
    from hwnas.search.reward import REWARDS

    return REWARDS.names()


@click.command("search")
@click.option("--latency-budget", callback=_budget, metavar="LATENCY",
              help="Latency budget with a unit: 2ms, 1.5 ms, 800us (required unless --resume).")
@click.option("--device", default="host", show_default=True,
              help="Device profile (<profiles-dir>/<device>); 'host' is this machine, profiled on the spot if "
                   "needed.")
@space_options
@dataset_options
@recipe_options
@click.option("--controller", type=click.Choice(_controller_names()), default="ppo", show_default=True)
@click.option("--reward", type=click.Choice(_reward_names()), default="hard", show_default=True,
              help="soft: MnasNet ACC*(LAT/T)^-0.07; hard: steep penalty beyond T; absolute: TuNAS "
                   "ACC-0.07*|LAT/T-1|.")
@click.option("--max-trainings", type=click.IntRange(min=1), default=30, show_default=True,
              help="Real trainings allowed (initial ones included).")
@click.option("--max-measurements", type=click.IntRange(min=1),
              help="Latency measurements allowed: every candidate is measured before it is trained and one over "
                   "the budget is never trained [default: 20 x --max-trainings].")
@click.option("--acquisition", type=click.Choice(_acquisition_names()), default="ucb", show_default=True,
              help="How each round ranks its pool for measurement and training: ucb (mean + explore x std of "
                   "the accuracy ensemble), ei (expected improvement), ts (Thompson sampling), greedy (mean).")
@click.option("--time-budget", callback=_duration, metavar="DURATION",
              help="Wall-clock limit over all sessions of the run: 90s, 10m, 1h30m.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the run goes [default: runs/<space>-<dataset>-<device>-<budget>-s<seed>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), metavar="RUN_DIR",
              help="Continue a run stopped by Ctrl-C or a crash (its settings are kept; only --max-trainings, "
                   "--max-measurements and --time-budget may extend them).")
@click.option("--initial-trainings", type=click.IntRange(min=1), default=8, show_default=True,
              help="Diverse real trainings before the first round.")
@click.option("--candidates-per-round", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--archs-per-round", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Predicted evaluations the controller spends per round.")
@click.option("--explore", type=FiniteFloat(min=0), default=1.0, show_default=True,
              help="Weight of the accuracy predictor's uncertainty in the reward.")
@click.option("--local-search-steps", type=click.IntRange(min=0), default=3, show_default=True,
              help="Greedy moves on the predicted reward from the best proposals before candidates are picked "
                   "(0: none).")
@click.option("--profile-samples", type=click.IntRange(min=10), default=QUICK_PROFILE_SAMPLES,
              show_default=True, help="Architectures measured when the host has no profile yet.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="onnxruntime threads of latency measurements (must match the profile).")
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_PROFILES_DIR,
              show_default=True)
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Evaluation store (SQLite) [default: $HWNAS_STORE or ./evals.sqlite].")
@click.option("--train-threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="PyTorch threads per training (1 keeps training from disturbing latency measurements and is "
                   "as fast for these small models).")
@click.option("--accuracy-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of arch,accuracy rows: a table look-up replaces each training (counted the same).")
@click.option("--latency-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of arch,latency_ms rows instead of a device: a look-up replaces each measurement (counted "
                   "the same); --profile-samples rows spread over its latency range stand in for the profile.")
@click.option("--mode", type=click.Choice(["oneshot", "progressive"]), default="oneshot", show_default=True,
              help="oneshot: reward a complete architecture; progressive: grow it a stage/cell edge at a time, "
                   "rewarding each partial architecture's improvement.")
@click.option("--estimator", type=click.Choice(["train", "supernet"]), default="train", show_default=True,
              help="What the accuracy predictor learns from besides the trainings: train (trainings only) or "
                   "supernet (many weight-sharing estimates, calibrated on the trainings; the answer is still "
                   "the best trained architecture).")
@click.option("--supernet", "supernet_path", type=click.Path(file_okay=False, path_type=Path),
              help="A finished supernet folder ('hwnas supernet train') for --estimator supernet [default: one "
                   "trained now in the run folder]; implies --estimator supernet.")
@click.option("--supernet-epochs", type=click.IntRange(min=1), default=60, show_default=True,
              help="Epochs of the supernet trained on the spot (the run's recipe otherwise).")
@click.option("--initial-estimates", type=click.IntRange(min=1), default=200, show_default=True,
              help="--estimator supernet: architectures estimated before the first training.")
@click.option("--estimates-per-round", type=click.IntRange(min=0), default=20, show_default=True,
              help="--estimator supernet: the round's best candidates estimated before it picks what to train.")
@click.option("--train-equivalent", is_flag=True,
              help="Also train architectures equivalent to one trained already (nb201: the same effective cell, "
                   "which computes the same function); by default each equivalence class is trained once.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result (result.json plus the run folder) as one JSON document on stdout; progress "
                   "goes to stderr.")
@click.option("--no-progress", is_flag=True,
              help="No live progress bar (it is shown only when stderr is a terminal anyway).")
def search_cmd(latency_budget, device, space_name, space_option, dataset_spec, dataset_option, input_shape, epochs,
               data_fraction, recipe_option, controller, reward, max_trainings, max_measurements, acquisition,
               time_budget, seed, run_dir, resume, initial_trainings, candidates_per_round, archs_per_round, explore,
               local_search_steps, profile_samples, threads, profiles_dir, store_path, train_threads, accuracy_table,
               latency_table, mode, estimator, supernet_path, supernet_epochs, initial_estimates,
               estimates_per_round, train_equivalent, as_json, no_progress) -> None:
    """Search the most accurate architecture whose measured latency fits the budget.

    \b
    hwnas search --latency-budget 100us --dataset digits --max-trainings 30 --run-dir runs/digits
    hwnas search --resume runs/digits
    hwnas search --latency-budget 2ms --dataset photos/ --input-shape 3x32x32 --epochs 5 --data-fraction 0.5
    """
    from hwnas.search.rundir import RunDir

    if resume is not None:
        run = RunDir.open(resume)
        config = run.config
        _check_resume_flags(config)
        run.load_state()  # a missing or tampered state.json is one line now, before anything is built
        overrides = {"max_trainings": max_trainings} if _given("max_trainings") else {}
        if _given("max_measurements"):
            overrides["max_measurements"] = max_measurements
        if _given("time_budget"):
            overrides["time_budget_s"] = time_budget
        if overrides:
            run.update_config(overrides)
    else:
        if latency_budget is None:
            raise click.UsageError("--latency-budget is required (e.g. --latency-budget 2ms)")
        space = make_space(space_name, space_option)
        device = table_device(device, latency_table, device_given=_given("device"))
        data = dataset_spec_of(dataset_spec, dataset_option, input_shape)
        estimation = _estimation(estimator, supernet_path, accuracy_table, supernet_epochs=supernet_epochs,
                                 initial_estimates=initial_estimates, estimates_per_round=estimates_per_round)
        config = _new_config(space=space, space_options=parse_space_options(space_option), data=data,
                             recipe=make_recipe(epochs, data_fraction, recipe_option),
                             device=device, budget_ms=latency_budget, controller=controller, reward=reward,
                             max_trainings=max_trainings, max_measurements=max_measurements,
                             acquisition=acquisition, time_budget_s=time_budget, seed=seed,
                             initial_trainings=initial_trainings, candidates_per_round=candidates_per_round,
                             archs_per_round=archs_per_round, explore=explore, local_search_steps=local_search_steps,
                             profile_samples=profile_samples, threads=threads, profiles_dir=str(profiles_dir),
                             store=str(store_path) if store_path else None, train_threads=train_threads,
                             accuracy_table=str(accuracy_table) if accuracy_table else None,
                             **({"latency_table": str(latency_table)} if latency_table else {}),
                             mode=mode, skip_equivalent=not train_equivalent, **estimation)
        run_dir = run_dir or Path("runs") / default_run_name(space.name, config["dataset_name"], device,
                                                            latency_budget, seed)
        run = RunDir.create(run_dir, config)
    _attach_log(run.log_file)
    echo = stderr_echo if as_json else click.echo
    bar = None
    if progress_wanted(no_progress=no_progress, as_json=as_json):
        from hwnas.search.budget import format_ms

        bar = SearchBar(int(run.config.get("max_trainings") or 30), format_ms(float(run.config["budget_ms"])))
        echo = bar.echo
    try:
        from hwnas.search.runner import run_search

        result = run_search(run, config, echo=echo, on_event=bar)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        fail(f"interrupted; finished trainings and measurements are kept: resume with "
             f"'hwnas search --resume {run.path}'", EXIT_INTERRUPTED)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        print_json({"run_dir": str(run.path), "pareto_plot": str(run.path / "pareto.png"), **result})
    else:
        _print_result(run, result)


def _estimation(estimator: str, supernet_path: Path | None, accuracy_table: Path | None, **settings) -> dict:
    """The run's estimator settings; a given supernet is checked now (finished, intact), before the run
    folder exists."""
    if supernet_path is not None:
        if _given("estimator") and estimator != "supernet":
            raise click.UsageError("--supernet is the supernet of --estimator supernet; drop one of them")
        estimator = "supernet"
    if estimator != "supernet":
        return {"estimator": "train"}
    if accuracy_table is not None:
        raise click.UsageError("--estimator supernet needs trainings, not --accuracy-table")
    if supernet_path is not None:
        from hwnas.supernet.folder import SupernetFolder

        SupernetFolder(supernet_path).finished_meta()
        supernet_path = supernet_path.resolve()
    return {"estimator": "supernet", "supernet": str(supernet_path) if supernet_path else None, **settings}


def table_device(device: str, latency_table: Path | None, *, device_given: bool) -> str:
    """The device name of a run: ``table-<file stem>`` for a latency table (which replaces the device)."""
    if latency_table is None:
        return device
    if device_given:
        raise click.UsageError("--device and --latency-table both give the latency; use one")
    return f"table-{latency_table.stem}"


#: What ``--resume`` may change; every other setting is the run's own (``config.json``).
RESUME_OPTIONS = ("max_trainings", "max_measurements", "time_budget")
#: How this session reports (not settings of the run): free with ``--resume``.
OUTPUT_OPTIONS = ("as_json", "no_progress")


#: Options a resume may repeat when they name what the run already uses (``config.json`` key).
_SAME_AS_RUN = {"profiles_dir": "profiles_dir", "store_path": "store"}


def _check_resume_flags(config: dict) -> None:
    ctx = click.get_current_context()

    def same_as_run(name: str) -> bool:
        key = _SAME_AS_RUN.get(name)
        value, stored = ctx.params.get(name), config.get(key) if key else None
        return key is not None and value is not None and stored is not None and \
            Path(value).resolve() == Path(stored).resolve()

    conflicting = [param.opts[0] for param in ctx.command.params
                   if param.name not in (*RESUME_OPTIONS, *OUTPUT_OPTIONS, "resume") and _given(param.name)
                   and not same_as_run(param.name)]
    if conflicting:
        raise click.UsageError(f"--resume keeps the run's own settings (its config.json); only --max-trainings, "
                               f"--max-measurements and --time-budget may change: drop {', '.join(conflicting)}")


def _given(name: str) -> bool:
    ctx = click.get_current_context()
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def dataset_spec_of(dataset_spec: str, dataset_option: tuple[str, ...] = (), input_shape=None):
    """The :class:`~hwnas.data.resolve.DatasetSpec` of the command line's data-set options (a path made
    absolute, so that a run resumes from any folder)."""
    from hwnas.data.resolve import DatasetSpec

    options = parse_space_options(dataset_option) if dataset_option else {}
    return DatasetSpec(dataset_spec, options, tuple(input_shape) if input_shape else None).absolute()


def default_run_name(space: str, dataset_name: str, device: str, budget_ms: float, seed: int) -> str:
    """``<space>-<data set's short name>-<device>-<budget>ms-s<seed>``: one folder name, never a path."""
    from hwnas.data.resolve import safe_name

    return safe_name(f"{space}-{dataset_name}-{device}-{budget_ms:g}ms-s{seed}", limit=120)


def _new_config(*, space, space_options, data, recipe, **settings) -> dict:
    """A new run's configuration: the data set (resolved once here, so a bad one fails before the run folder
    exists), its shape and classes, the recipe and the other settings."""
    from hwnas.data.resolve import short_name

    ds = data.resolve()
    return {"space": space.name, "space_options": space_options, **data.to_config(), "dataset_name": short_name(ds),
            "dataset_key": ds.key, "input_shape": list(ds.input_shape), "num_classes": ds.num_classes,
            "class_names": ds.class_names, "provider": "cpu", "batch_size": 1, "precision": "fp32",
            "recipe": recipe.to_dict(), "epochs": recipe.epochs, **settings,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


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


def _print_result(run, result: dict) -> None:
    from hwnas.search.budget import format_ms

    budget = result["budget_ms"]
    click.echo(f"\nsearch finished: {result['stop_reason']}; {result['trainings_used']} trainings, "
               f"{result.get('measurements_used', 0)} latency measurements, {result['rounds']} rounds, "
               f"{result['elapsed_s']:.0f} s")
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)
    best = result["best"]
    if best is None:
        click.echo(f"no architecture found within the budget of {format_ms(budget)}; the fastest measured:")
        for v in result["closest"]:
            accuracy = "not trained" if v.get("accuracy") is None else f"accuracy {v['accuracy']:.4f}"
            click.echo(f"  {v['arch']}  {accuracy}  latency {format_ms(v['latency_ms'])}")
        click.echo("raise the budget, or search longer (--max-trainings) for faster architectures")
        return
    measured = "measured" if best.get("latency_measured", True) else "PREDICTED (device not reachable)"
    click.echo(f"best: {best['arch']}")
    click.echo(f"  validation accuracy {best['accuracy']:.4f}"
               + (f", test accuracy {result['test_accuracy']:.4f} (measured once at the end of its search "
                  f"training; never used to select)" if result.get("test_accuracy") is not None else ""))
    click.echo(f"  latency {format_ms(best['latency_ms'])} {measured} (budget {format_ms(budget)})")
    click.echo(f"  Pareto front: {len(result['pareto_front'])} architectures; plot {run.path / 'pareto.png'}")
    click.echo(f"export it with: hwnas export {run.path} -o model.onnx")
