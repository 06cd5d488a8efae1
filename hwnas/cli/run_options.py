"""The options of a search run, shared by ``hwnas search`` and ``hwnas benchmark``, and the one way from them
to a :class:`~hwnas.search.config.RunConfig` (:func:`config_from_options`).

Defaults are :class:`RunConfig`'s own (``RunConfig.default``), so the command line and Python agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import click

from hwnas.cli.common import THREADS, FiniteFloat, parse_space_options, space_options, split_names
from hwnas.cli.train_cmds import dataset_options, make_recipe, recipe_options
from hwnas.search.config import ConfigError, RunConfig


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


parse_budget = _parsed_with("parse_latency")
parse_duration = _parsed_with("parse_duration")


def _names(registry: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        import importlib

        module, attribute = registry.rsplit(".", 1)
        return getattr(importlib.import_module(module), attribute).names()
    return names


controller_names = _names("hwnas.search.controllers.CONTROLLERS")
acquisition_names = _names("hwnas.search.acquisition.ACQUISITIONS")
exploration_names = _names("hwnas.search.acquisition.EXPLORATIONS")
reward_names = _names("hwnas.search.reward.REWARDS")

_D = RunConfig.default


def run_options(*, max_trainings: int | None = None) -> Callable:
    """The shared options (``max_trainings``: another default, the benchmark's)."""
    options = [
        click.option("--latency-budget", callback=parse_budget, metavar="LATENCY",
                     help="Latency budget with a unit: 2ms, 1.5 ms, 800us."),
        click.option("--device", default=_D("device"), show_default=True,
                     help="Device profile (<profiles-dir>/<device>, or <device>.<runtime> with --runtime); 'host' "
                          "is this machine, profiled on the spot "
                          "if needed."),
        space_options, dataset_options, recipe_options,
        click.option("--reward", type=click.Choice(reward_names()), default=_D("reward"), show_default=True,
                     help="soft: MnasNet ACC*(LAT/T)^-0.07; hard: steep penalty beyond T; absolute: TuNAS "
                          "ACC-0.07*|LAT/T-1|."),
        click.option("--max-trainings", type=click.IntRange(min=1), default=max_trainings or _D("max_trainings"),
                     show_default=True, help="Real trainings allowed per run (initial ones included)."),
        click.option("--max-measurements", type=click.IntRange(min=1),
                     help="Latency measurements allowed: every candidate is measured before it is trained and one "
                          "over the budget is never trained [default: 20 x --max-trainings]."),
        click.option("--acquisition", type=click.Choice(acquisition_names()), default=_D("acquisition"),
                     show_default=True,
                     help="How each round ranks its pool for measurement and training: ucb (mean + explore x std "
                          "of the accuracy ensemble), ei (expected improvement), ts (Thompson sampling), greedy "
                          "(mean)."),
        click.option("--initial-trainings", type=click.IntRange(min=1), default=_D("initial_trainings"),
                     show_default=True, help="Diverse real trainings before the first round."),
        click.option("--candidates-per-round", type=click.IntRange(min=1), default=_D("candidates_per_round"),
                     show_default=True),
        click.option("--archs-per-round", type=click.IntRange(min=1), default=_D("archs_per_round"),
                     show_default=True, help="Predicted evaluations the controller spends per round."),
        click.option("--explore", type=FiniteFloat(min=0), default=_D("explore"), show_default=True,
                     help="Weight of the accuracy predictor's uncertainty in the reward."),
        click.option("--explore-per-round", type=click.IntRange(min=0), default=_D("explore_per_round"),
                     show_default=True,
                     help="Trainings per round spent on candidates chosen for information, not exploitation."),
        click.option("--explore-by", type=click.Choice(exploration_names()), default=_D("explore_by"),
                     show_default=True,
                     help="How those are chosen among random candidates likely to fit the budget: acquisition "
                          "(its best value), distance (farthest from everything trained), uncertainty (the "
                          "predictor's largest spread)."),
        click.option("--final-seeds", type=click.IntRange(min=0), default=None,
                     help="Extra training seeds for each finalist before the search ends; the answer is the "
                          "finalist with the best mean, reported with its spread (0: the single best training) "
                          "[default: 2 when training, 0 with --accuracy-table]."),
        click.option("--finalists", type=click.IntRange(min=1), default=_D("finalists"), show_default=True,
                     help="How many of the best trained architectures --final-seeds re-trains (the finals take "
                          "at most a quarter of --max-trainings)."),
        click.option("--local-search-steps", type=click.IntRange(min=0), default=_D("local_search_steps"),
                     show_default=True,
                     help="Greedy moves on the predicted reward from the best proposals before candidates are "
                          "picked (0: none)."),
        click.option("--profile-samples", type=click.IntRange(min=10), default=_D("profile_samples"),
                     show_default=True,
                     help="Architectures measured when the device has no profile yet (latency-table rows taken "
                          "as the prior with --latency-table)."),
        click.option("--measure-threads", "--threads", "measure_threads", type=THREADS,
                     default=_D("measure_threads"), show_default=True,
                     help="The runtime's threads in latency measurements (must match the profile); --threads is "
                          "its old name."),
        click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=_D("profiles_dir"), show_default=True),
        runtime_option, transfer_options,
        click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="Evaluation store (SQLite) [default: $HWNAS_STORE or ./evals.sqlite; a benchmark's "
                          "<out>/evals.sqlite]."),
        click.option("--train-threads", type=THREADS, default=_D("train_threads"), show_default=True,
                     help="PyTorch threads per training, 1 in every command (keeps training from disturbing "
                          "latency measurements and is as fast per core for these small models)."),
        click.option("--train-device", default=_D("train_device"), show_default=True,
                     metavar="auto|cpu|cuda|cuda:N|mps",
                     help="Where trainings run: auto is the GPU Ray assigned (--gpus-per-training), else CUDA if "
                          "present, else the CPU. Checked before any work starts."),
        click.option("--loader-workers", type=click.IntRange(min=0),
                     help="DataLoader worker processes reading a streamed data set [default: up to 4; 0: in the "
                          "training's own process]."),
        click.option("--accuracy-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="CSV of arch,accuracy rows: a table look-up replaces each training (counted the same)."),
        click.option("--latency-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="CSV of arch,latency_ms rows instead of a device: a look-up replaces each measurement "
                          "(counted the same); --profile-samples rows spread over its latency range stand in for "
                          "the profile."),
        click.option("--mode", type=click.Choice(["oneshot", "progressive"]), default=_D("mode"), show_default=True,
                     help="oneshot: reward a complete architecture; progressive: grow it a stage/cell edge at a "
                          "time, rewarding each partial architecture's improvement."),
        click.option("--train-equivalent", is_flag=True,
                     help="Also train architectures equivalent to one trained already (nb201: the same effective "
                          "cell, which computes the same function); by default each equivalence class is trained "
                          "once."),
    ]

    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _ray_timeout(ctx, param, value):
    """``--ray-timeout``: parsed like ``--time-budget`` and in force (:func:`hwnas.cluster.ray_timeout`) until
    the command ends."""
    from hwnas.cluster import ray_timeout
    from hwnas.search.budget import BudgetError
    from hwnas.search.budget import parse_duration as parse

    if value is None:
        return None
    try:
        seconds = parse(value)
    except BudgetError as exc:
        raise click.BadParameter(str(exc).replace("time budget", "time limit")) from None
    ctx.with_resource(ray_timeout(seconds))
    return seconds


def ray_option(func):
    """``--ray [ADDRESS]``: run on Ray (no address: a local Ray started for this command on 127.0.0.1; ``auto``
    or ``HOST:PORT``: an existing cluster), and ``--ray-timeout``: how long any wait on Ray may last."""
    from hwnas.cluster import DEFAULT_RAY_TIMEOUT_S

    func = click.option("--ray-timeout", callback=_ray_timeout, metavar="DURATION", expose_value=False,
                        help=f"How long reaching the Ray cluster, or a task no live node can take, may wait "
                             f"before one line says so (30s, 2m) [default: {DEFAULT_RAY_TIMEOUT_S:g}s].")(func)
    return click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None,
                        metavar="[ADDRESS]",
                        help="Run on Ray: trainings as tasks, device nodes measure (no ADDRESS: a local Ray for "
                             "this command; auto or HOST:PORT: an existing cluster). Needs hwnas[ray].")(func)


def runtime_option(func):
    """``--runtime``: the runtime latencies are measured in (and the model ships in)."""
    from hwnas.runtimes import DEFAULT_RUNTIME, RUNTIMES

    return click.option("--runtime", type=click.Choice(RUNTIMES.names()), default=DEFAULT_RUNTIME,
                        show_default=True,
                        help="Runtime that measures latency and runs the shipped model (openvino needs "
                             "hwnas[openvino]; 'hwnas runtimes' lists what is usable here).")(func)


def _device_list(ctx, param, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(dict.fromkeys(split_names(value, "--transfer-from")))


def transfer_options(func):
    """``--transfer-from A,B`` and ``--no-transfer``: which other device profiles the latency predictor of a
    device with few measurements learns from (:mod:`hwnas.predictors.transfer`)."""
    func = click.option("--no-transfer", is_flag=True,
                        help="Fit the latency predictor on this device's own measurements only (as before "
                             "transfer existed).")(func)
    return click.option("--transfer-from", callback=_device_list, metavar="DEVICE,DEVICE...",
                        help="Profiles the latency predictor transfers from [default: every profile under "
                             "--profiles-dir of the same space, input shape, batch size and precision].")(func)


def execution_options(func):
    """How a search's trainings run (not settings of the run: a resume may change them)."""
    func = click.option("--gpus-per-training", type=FiniteFloat(min=0), default=0.0, show_default=True,
                        help="GPUs each training asks Ray for.")(func)
    func = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                        help="Trainings at once (more than 1 runs them as Ray tasks; implies --ray).")(func)
    return ray_option(func)


#: The options of :func:`execution_options` (a resume may give them).
EXECUTION_PARAMS = ("ray_address", "workers", "gpus_per_training", "ray_timeout")


def check_device_for(config: RunConfig, params: Mapping[str, Any]) -> None:
    """Refuses, before any work, a training device the run cannot train on with :func:`execution_options`'
    values (one line)."""
    config.check_execution(ray_address=params["ray_address"], workers=params["workers"],
                           gpus_per_training=params["gpus_per_training"])


def executor_from_options(params: Mapping[str, Any], *, train_threads: int):
    """The executor of :func:`execution_options`' values (:func:`hwnas.cluster.make_executor`)."""
    from hwnas.cluster import make_executor

    return make_executor(params["ray_address"], workers=params["workers"], cpus_per_task=train_threads,
                         gpus_per_task=params["gpus_per_training"])


#: The parameters :func:`run_options` adds (what a command passes on to :func:`config_from_options`).
RUN_PARAMS = ("latency_budget", "device", "space_name", "space_option", "dataset_spec", "dataset_option",
              "input_shape", "epochs", "data_fraction", "recipe_option", "reward", "max_trainings",
              "max_measurements", "acquisition", "initial_trainings", "candidates_per_round", "archs_per_round",
              "explore", "local_search_steps", "profile_samples", "measure_threads", "profiles_dir", "store_path",
              "train_threads", "train_device", "loader_workers", "accuracy_table", "latency_table", "mode",
              "train_equivalent", "explore_per_round", "explore_by", "final_seeds", "finalists", "runtime",
              "transfer_from", "no_transfer")


#: The :class:`RunConfig` setting of each option whose name differs (``--epochs``, ``--data-fraction`` and ``-R`` set
#: parts of the recipe).
OPTION_SETTINGS = {"latency_budget": "budget_ms", "space_name": "space", "space_option": "space_options",
                   "dataset_spec": "dataset", "dataset_option": "dataset_options", "input_shape": "dataset_input_shape",
                   "store_path": "store", "train_equivalent": "skip_equivalent", "no_transfer": "transfer",
                   "time_budget": "time_budget_s", "supernet_path": "supernet"}
RECIPE_OPTIONS = ("epochs", "data_fraction", "recipe_option")


def on_command_line(name: str) -> bool:
    """Whether the current command's option ``name`` was given on the command line (not a default)."""
    return click.get_current_context().get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def _with_file(settings: dict[str, Any], config_file: Path, p: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (of the options) where a setting the command line did not give is the file's
    (:mod:`hwnas.search.config_file`); options and the recipe merge key by key, the given flags' keys winning."""
    from hwnas.search.config_file import merge_fields, read_config_file

    ctx = click.get_current_context()
    given = {OPTION_SETTINGS.get(name, name) for name in ctx.params
             if on_command_line(name) and name not in RECIPE_OPTIONS}
    from_file = read_config_file(config_file)
    over = {name: value for name, value in settings.items() if name in given}
    recipe = parse_space_options(p["recipe_option"]) if on_command_line("recipe_option") else {}
    recipe.update({name: p[name] for name in ("epochs", "data_fraction") if on_command_line(name)})
    if recipe:
        over["recipe"] = recipe
    return merge_fields({**settings, **from_file}, over)


def config_from_options(params: Mapping[str, Any], *, config_file: Path | None = None, **settings: Any) -> RunConfig:
    """The resolved :class:`RunConfig` of the shared options' values ``params`` and a command's own
    ``settings`` (controller, seed, ...), over the settings of ``config_file`` (a TOML file: a setting given on the
    command line wins): the data set, space and tables are checked here, before any run folder exists.

    Raises:
        click.UsageError: no budget, or a device together with a latency table.
        HwnasError: a setting the configuration refuses (one line).
    """
    p = params
    if p["latency_budget"] is None and config_file is None:
        raise click.UsageError("--latency-budget is required (e.g. --latency-budget 2ms)")
    ctx = click.get_current_context()
    if p["latency_table"] is not None and ctx.get_parameter_source("device") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--device and --latency-table both give the latency; use one")
    if p["no_transfer"] and p["transfer_from"]:
        raise click.UsageError("--transfer-from and --no-transfer contradict each other; give one")
    fields = dict(
        budget_ms=p["latency_budget"], space=p["space_name"], space_options=parse_space_options(p["space_option"]),
        dataset=p["dataset_spec"],
        dataset_options=parse_space_options(p["dataset_option"]) if p["dataset_option"] else {},
        dataset_input_shape=tuple(p["input_shape"]) if p["input_shape"] else None,
        recipe=make_recipe(p["epochs"], p["data_fraction"], p["recipe_option"]), device=p["device"],
        profiles_dir=str(p["profiles_dir"]), latency_table=_text(p["latency_table"]),
        measure_threads=p["measure_threads"], runtime=p["runtime"], profile_samples=p["profile_samples"],
        reward=p["reward"],
        mode=p["mode"], acquisition=p["acquisition"], max_trainings=p["max_trainings"],
        max_measurements=p["max_measurements"], initial_trainings=p["initial_trainings"],
        candidates_per_round=p["candidates_per_round"], archs_per_round=p["archs_per_round"],
        explore=p["explore"], local_search_steps=p["local_search_steps"], skip_equivalent=not p["train_equivalent"],
        explore_per_round=p["explore_per_round"], explore_by=p["explore_by"], final_seeds=p["final_seeds"],
        finalists=p["finalists"],
        store=_text(p["store_path"]), train_threads=p["train_threads"], train_device=p["train_device"],
        loader_workers=p["loader_workers"], accuracy_table=_text(p["accuracy_table"]),
        transfer=not p["no_transfer"], transfer_from=p["transfer_from"], **settings)
    if config_file is not None:
        fields = _with_file(fields, config_file, p)
        if fields["budget_ms"] is None:
            raise click.UsageError(f"no latency budget: give --latency-budget or latency-budget = \"2ms\" in "
                                   f"{config_file}")
        try:
            return RunConfig(**fields).resolved()
        except ConfigError as exc:
            raise ConfigError(f"{exc} (settings of {config_file} and the command line)") from None
    return RunConfig(**fields).resolved()


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
