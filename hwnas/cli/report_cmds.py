"""``hwnas report``: a self-contained HTML page about one search run, or comparing several."""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.common import force_option, json_option, print_json


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="The HTML file to write (its folder is created).")
@force_option
@json_option
def report_cmd(runs: tuple[Path, ...], output: Path, force: bool, as_json: bool) -> None:
    """Write one HTML page about search RUNS (run folders): settings, answer, Pareto front with the chosen
    model, best so far over trainings and over wall-clock time, predictor error per round, latency budget use,
    decision importance and every trial in a sortable table; with several runs, compared side by side. The page
    is self-contained (plots embedded, one small inline script for sorting, no network)."""
    from hwnas.search.report import write_report

    path = write_report(runs, output, force=force)
    if as_json:
        print_json({"report": str(path), "runs": [str(run) for run in runs]})
        return
    click.echo(f"wrote {path} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
