"""The ``hwnas`` command line. Each command lives in a module of this package and is listed here.

Commands are imported when they run (or their own help is asked for): ``hwnas --version`` and ``hwnas --help``
then start in a fraction of a second instead of importing torch, onnxruntime and the controllers (about 2 s).
"""

from __future__ import annotations

import importlib

import click

from hwnas import __version__
from hwnas.cli.common import HwnasGroup, set_quiet, setup_logging

# name -> (module in hwnas.cli, command object, one-line help shown by 'hwnas --help'; a test keeps it equal to
# the command's own).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "spaces": ("arch_cmds", "spaces_cmd", "List the registered search spaces with their sizes."),
    "sample": ("arch_cmds", "sample_cmd",
               "Print N architectures sampled uniformly per decision, one canonical string a line."),
    "inspect": ("arch_cmds", "inspect_cmd", "Show an architecture's decisions, parameters, MACs and layers."),
    "onnx": ("arch_cmds", "onnx_cmd", "Export an (untrained) architecture to a checked ONNX file."),
    "profile": ("profile_cmds", "profile_cmd", "Measure latency on this device and store it as a device profile."),
    "predictors": ("predictor_cmds", "predictors_cmd", "Fit, inspect and list the latency and accuracy predictors."),
    "predict": ("predictor_cmds", "predict_cmd",
                "Predict latency (ms) or accuracy (± std) of architectures, one line each, in the order given."),
    "search": ("search_cmds", "search_cmd",
               "Search the most accurate architecture whose measured latency fits the budget."),
    "benchmark": ("benchmark_cmds", "benchmark_cmd",
                  "Compare controllers fairly: same real-evaluation budget, same seeds, curves and regret."),
    "export": ("export_cmds", "export_cmd",
               "Train the chosen architecture with the final recipe and export it as a checked ONNX model."),
    "evaluate": ("export_cmds", "evaluate_cmd",
                 "Run an exported model over a test split in its runtime (and/or measure its latency)."),
    "runtimes": ("runtime_cmds", "runtimes_cmd",
                 "List the runtimes and providers usable here, their versions, and how to install the missing."),
    "train": ("train_cmds", "train_cmd",
              "Train ARCH (or look it up) and print its validation accuracy, parameters and time."),
    "datasets": ("train_cmds", "datasets_cmd",
                 "List the registered data sets (or check your own) with shapes, classes and split sizes."),
    "evals": ("train_cmds", "evals_cmd", "List the stored evaluations, filtered."),
    "report": ("report_cmds", "report_cmd",
               "Write one HTML page about search RUNS (run folders): settings, answer, Pareto front with the "
               "chosen model, best so far over trainings and over wall-clock time, predictor error per round, "
               "latency budget use, decision importance and every trial in a sortable table; with several runs, "
               "compared side by side."),
    "trials": ("trials_cmds", "trials_cmd",
               "List every trained candidate of search RUN (a run folder): round, architecture, validation "
               "accuracy (mean ± standard deviation over seeds where re-trained), test accuracy, latency, "
               "parameters, MACs, training seconds, the run's wall-clock time when it finished, and seed."),
    "supernet": ("supernet_cmds", "supernet_cmd",
                 "Train a weight-sharing supernet and estimate architectures with it."),
}


class LazyGroup(HwnasGroup):
    """A :class:`HwnasGroup` whose subcommands (:data:`COMMANDS`) are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, attribute, _ = COMMANDS[name]
            self.add_command(getattr(importlib.import_module(f"hwnas.cli.{module}"), attribute), name)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2] if name in COMMANDS and name not in self.commands
                 else self.commands[name].get_short_help_str(limit=formatter.width))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwnas")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True,
              help="Only results, warnings and errors: no progress lines or bars, no info logging.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """hwnas: hardware-aware, predictor-driven neural architecture search."""
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other; give one")
    set_quiet(ctx, quiet)
    setup_logging(verbose, quiet)


__all__ = ["COMMANDS", "main"]
