"""The ``hwnas`` command line. Each command lives in a module of this package and is added here."""

from __future__ import annotations

import click

from hwnas import __version__
from hwnas.cli.arch_cmds import inspect_cmd, onnx_cmd, sample_cmd, spaces_cmd
from hwnas.cli.benchmark_cmds import benchmark_cmd
from hwnas.cli.common import HwnasGroup, setup_logging
from hwnas.cli.export_cmds import evaluate_cmd, export_cmd
from hwnas.cli.predictor_cmds import predict_cmd, predictors_cmd
from hwnas.cli.profile_cmds import profile_cmd
from hwnas.cli.search_cmds import search_cmd
from hwnas.cli.train_cmds import datasets_cmd, evals_cmd, train_cmd


@click.group(cls=HwnasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwnas")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """hwnas: hardware-aware, predictor-driven neural architecture search."""
    setup_logging(verbose)


for command in (spaces_cmd, sample_cmd, inspect_cmd, onnx_cmd, profile_cmd, predictors_cmd, predict_cmd,
                search_cmd, benchmark_cmd, export_cmd, evaluate_cmd, train_cmd, datasets_cmd, evals_cmd):
    main.add_command(command)

__all__ = ["main"]
