"""``hwnas trials RUN``: every trained candidate of a search run, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click

from hwnas.cli.common import fail, print_json
from hwnas.search.result import DESCENDING, TRIAL_COLUMNS, Trial, sort_trials

#: The text table's columns: (heading, Trial attribute, format).
_TEXT_COLUMNS = (("#", "number", "{:d}"), ("round", "round", "{:d}"), ("val_acc", "accuracy", "{:.4f}"),
                 ("mean±sd", "mean_accuracy", None), ("test_acc", "test_accuracy", "{:.4f}"),
                 ("latency", "latency_ms", None), ("params", "params", "{:d}"), ("MACs", "macs", "{:d}"),
                 ("train_s", "train_seconds", "{:.1f}"), ("at_s", "elapsed_s", "{:.0f}"), ("seed", "seed", "{:d}"),
                 ("arch", "arch", "{}"))


@click.command("trials")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--sort", "sort", type=click.Choice(TRIAL_COLUMNS), default="number", show_default=True,
              help="Column to sort by (accuracies best first, the others ascending).")
@click.option("--reverse", is_flag=True, help="Reverse the order.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list of trials).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per trial, every column).")
def trials_cmd(run: Path, sort: str, reverse: bool, as_json: bool, as_csv: bool) -> None:
    """List every trained candidate of search RUN (a run folder): round, architecture, validation accuracy
    (mean ± standard deviation over seeds where re-trained), test accuracy, latency, parameters, MACs, training
    seconds, the run's wall-clock time when it finished, and seed. The answer is marked with a star. A running
    search lists what it has trained so far."""
    from hwnas.search.rundir import RunDir

    if as_json and as_csv:
        fail("give one of --json and --csv")
    folder = RunDir.open(run)
    result, trials = folder.progress()
    best = result.best if result is not None else None
    ordered = sort_trials(trials, sort, descending=(sort not in DESCENDING) if reverse else None)
    if as_json:
        print_json([t.row() for t in ordered])
        return
    if as_csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(TRIAL_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in t.row().items()} for t in ordered)
        click.echo(buffer.getvalue(), nl=False)
        return
    if not ordered:
        click.echo(f"{folder.path}: nothing trained yet")
        return
    rows = [[" "] + [h for h, _, _ in _TEXT_COLUMNS]]
    for trial in ordered:
        rows.append(["*" if best is not None and trial.arch == best.arch else " "]
                    + [_cell(trial, name, shown) for _, name, shown in _TEXT_COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo(" ".join(c.rjust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    done = "" if best is None else "; * is the answer"
    click.echo(f"{len(ordered)} trials{done}")


def _cell(trial: Trial, name: str, shown: str | None) -> str:
    from hwnas.units import format_latency

    value = getattr(trial, name)
    if value is None:
        return "-"
    if name == "mean_accuracy":
        return f"{value:.4f}±{trial.accuracy_std or 0.0:.4f}({trial.seeds})"
    if name == "latency_ms":
        return format_latency(value) + ("" if trial.latency_measured else "(pred)")
    return shown.format(value) if shown else str(value)
