"""``hwnas benchmark``: every controller under the same real-evaluation budget and seeds, with curves."""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.common import FiniteFloat, make_space, parse_space_options, space_options
from hwnas.cli.search_cmds import (_acquisition_names, _budget, _given, _new_config, _reward_names, dataset_spec_of,
                                   table_device)
from hwnas.cli.train_cmds import dataset_options, make_recipe, recipe_options
from hwnas.profiling.store import DEFAULT_PROFILES_DIR

ALL_CONTROLLERS = "ppo,reinforce,a2c,qlearning,sarsa,random,evolution,mcts,dynaq"


def _controllers(ctx, param, value: str) -> list[str]:
    from hwnas.search.controllers import CONTROLLERS

    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give at least one controller")
    unknown = [name for name in names if name not in CONTROLLERS]
    if unknown:
        raise click.BadParameter(f"unknown controller {unknown[0]!r} (known: {', '.join(CONTROLLERS.names())})")
    return list(dict.fromkeys(names))


@click.command("benchmark")
@space_options
@dataset_options
@recipe_options
@click.option("--accuracy-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of arch,accuracy rows: a look-up replaces each training.")
@click.option("--device", default="host", show_default=True, help="Device profile to measure latency on.")
@click.option("--latency-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of arch,latency_ms rows: a look-up replaces each measurement.")
@click.option("--latency-budget", callback=_budget, metavar="LATENCY", required=True,
              help="Latency budget with a unit: 2ms, 800us.")
@click.option("--controllers", "controller_names", default=ALL_CONTROLLERS, show_default=True,
              callback=_controllers, help="Comma-separated controllers to compare.")
@click.option("--max-trainings", type=click.IntRange(min=1), default=50, show_default=True,
              help="Real evaluations per run (initial ones included), the same for every controller.")
@click.option("--max-measurements", type=click.IntRange(min=1),
              help="Latency measurements per run [default: 20 x --max-trainings].")
@click.option("--acquisition", type=click.Choice(_acquisition_names()), default="ucb", show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Runs per controller, seeds 0..K-1 (the same seeds for every controller).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Benchmark folder [default: runs/benchmark-<space>-<device>-<budget>]; rerun to resume.")
@click.option("--mode", type=click.Choice(["oneshot", "progressive"]), default="oneshot", show_default=True)
@click.option("--reward", type=click.Choice(_reward_names()), default="hard", show_default=True)
@click.option("--initial-trainings", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--candidates-per-round", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--archs-per-round", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Predicted evaluations each controller spends per round.")
@click.option("--explore", type=FiniteFloat(min=0), default=1.0, show_default=True)
@click.option("--local-search-steps", type=click.IntRange(min=0), default=3, show_default=True,
              help="Greedy moves on the predicted reward from the best proposals before candidates are picked "
                   "(0: none).")
@click.option("--profile-samples", type=click.IntRange(min=10), default=120, show_default=True,
              help="Host architectures profiled when the device has no profile (latency-table rows taken as "
                   "the prior with --latency-table).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_PROFILES_DIR,
              show_default=True)
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Evaluation store shared by the runs [default: <out>/evals.sqlite].")
@click.option("--train-threads", type=click.IntRange(min=1), default=1, show_default=True)
def benchmark_cmd(space_name, space_option, dataset_spec, dataset_option, input_shape, epochs, data_fraction,
                  recipe_option, accuracy_table, device, latency_table, latency_budget, controller_names,
                  max_trainings, max_measurements, acquisition, seeds, out, mode, reward, initial_trainings,
                  candidates_per_round, archs_per_round, explore, local_search_steps, profile_samples, threads,
                  profiles_dir, store_path, train_threads) -> None:
    """Compare controllers fairly: same real-evaluation budget, same seeds, curves and regret.

    \b
    hwnas benchmark --space nb201 --accuracy-table acc.csv --latency-table lat.csv --latency-budget 0.6ms \\
        --max-trainings 100 --seeds 5 --out runs/bench
    """
    from hwnas.search.benchmark import run_benchmark
    from hwnas.search.budget import format_ms

    space = make_space(space_name, space_option)
    device = table_device(device, latency_table, device_given=_given("device"))
    config = _new_config(space=space, space_options=parse_space_options(space_option),
                         data=dataset_spec_of(dataset_spec, dataset_option, input_shape),
                         recipe=make_recipe(epochs, data_fraction, recipe_option), device=device, budget_ms=latency_budget, reward=reward, max_trainings=max_trainings,
                         max_measurements=max_measurements, acquisition=acquisition,
                         time_budget_s=None, initial_trainings=initial_trainings,
                         candidates_per_round=candidates_per_round, archs_per_round=archs_per_round,
                         explore=explore, local_search_steps=local_search_steps, profile_samples=profile_samples,
                         threads=threads, profiles_dir=str(profiles_dir),
                         store=str(store_path) if store_path else None,
                         train_threads=train_threads, mode=mode,
                         accuracy_table=str(accuracy_table) if accuracy_table else None,
                         latency_table=str(latency_table) if latency_table else None)
    out = out or Path("runs") / f"benchmark-{space.name}-{device}-{latency_budget:g}ms"
    click.echo(f"benchmark: {', '.join(controller_names)} x {seeds} seeds, {max_trainings} evaluations each, "
               f"budget {format_ms(latency_budget)}, {mode} -> {out}")
    payload = run_benchmark(config, controllers=controller_names, seeds=range(seeds), out=out, echo=click.echo)
    _print_summary(payload, out)


def _print_summary(payload: dict, out: Path) -> None:
    best = payload["true_best"]
    if best is not None:
        click.echo(f"\ntrue best under the budget (tables): {best['accuracy']:.4f} @ {best['latency_ms']:.4g} ms  "
                   f"{best['arch']}")
    key = "median_regret" if best is not None else "median_best_accuracy"
    marks = payload["checkpoints"]
    click.echo(f"\n{key.replace('_', ' ')} over seeds, by evaluations used")
    click.echo(f"{'controller':>12} " + " ".join(f"{m:>9}" for m in marks))
    by_controller: dict[str, dict[int, float]] = {}
    for row in payload["summary"]:
        by_controller.setdefault(row["controller"], {})[row["evaluations"]] = row[key]
    for controller, values in by_controller.items():
        click.echo(f"{controller:>12} " + " ".join(f"{values[m]:>9.4f}" for m in marks))
    click.echo(f"\ncurves: {out / 'curves.csv'}, {out / 'curves.json'}, plot {out / 'curves.png'}")
