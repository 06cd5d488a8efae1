"""``hwnas benchmark``: every controller under the same real-evaluation budget and seeds, with curves."""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.common import json_option, print_json, progress_echo, split_names
from hwnas.cli.run_options import (RUN_PARAMS, check_device_for, config_from_options, execution_options,
                                   executor_from_options,
                                   run_options)
from hwnas.units import format_latency

ALL_CONTROLLERS = "ppo,reinforce,a2c,qlearning,sarsa,random,evolution,mcts,dynaq"
#: Real evaluations per run of a benchmark (more than a search's: curves need room).
BENCHMARK_TRAININGS = 50


def _controllers(ctx, param, value: str) -> list[str]:
    from hwnas.search.controllers import CONTROLLERS

    names = split_names(value, "--controllers")
    unknown = [name for name in names if name not in CONTROLLERS]
    if unknown:
        raise click.BadParameter(f"unknown controller {unknown[0]!r} (known: {', '.join(CONTROLLERS.names())})")
    return list(dict.fromkeys(names))


@click.command("benchmark")
@run_options(max_trainings=BENCHMARK_TRAININGS)
@execution_options
@click.option("--controllers", "controller_names", default=ALL_CONTROLLERS, show_default=True,
              callback=_controllers, help="Comma-separated controllers to compare.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Runs per controller, seeds 0..K-1 (the same seeds for every controller).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Benchmark folder [default: runs/benchmark-<space>-<device>-<budget>]; rerun to resume.")
@json_option
def benchmark_cmd(controller_names, seeds, out, as_json, **params) -> None:
    """Compare controllers fairly: same real-evaluation budget, same seeds, curves and regret.

    \b
    hwnas benchmark --space nb201 --accuracy-table acc.csv --latency-table lat.csv --latency-budget 0.6ms \\
        --max-trainings 100 --seeds 5 --out runs/bench
    """
    from hwnas.search.benchmark import check_benchmark_folder, run_benchmark

    config = config_from_options({k: params[k] for k in RUN_PARAMS})
    check_device_for(config, params)
    budget = format_latency(config.budget_ms)
    out = out or Path("runs") / f"benchmark-{config.space}-{config.device}-{budget}"
    check_benchmark_folder(out)  # a foreign folder, a file or a device: no Ray, no work
    echo = progress_echo(as_json)
    echo(f"benchmark: {', '.join(controller_names)} x {seeds} seeds, {config.max_trainings} evaluations "
         f"each, budget {budget}, {config.mode} -> {out}")
    executor = executor_from_options(params, train_threads=config.train_threads)
    try:
        payload = run_benchmark(config, controllers=controller_names, seeds=range(seeds), out=out, echo=echo,
                                executor=executor)
    finally:
        executor.close()
    if as_json:
        print_json({"out": str(out), "curves_csv": str(out / "curves.csv"), "curves_json": str(out / "curves.json"),
                    "curves_plot": str(out / "curves.png"), **payload})
        return
    _print_summary(payload, out)


def _print_summary(payload: dict, out: Path) -> None:
    best = payload["true_best"]
    if best is not None:
        click.echo(f"\ntrue best under the budget (tables): {best['accuracy']:.4f} @ "
                   f"{format_latency(best['latency_ms'])}  "
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
