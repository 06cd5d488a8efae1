"""The live progress bar of ``hwnas search``: trainings used of ``--max-trainings``, elapsed time, ETA and the
best verified architecture, on stderr (``rich``, as ``hwnas profile`` has).

It is on only when stderr is a terminal (and stdout too, unless ``--json`` keeps stdout for the document),
and never with ``--no-progress`` or ``hwnas -q``. It is redrawn when an event arrives, never from a background thread: a
refresh thread waking up during latency measurements would disturb them. The search's progress lines are
printed through the bar's console so that they scroll above it.
"""

from __future__ import annotations

import sys

from hwnas.cli.common import bars_wanted
from hwnas.search.events import RoundDone, SearchCallback, Trained, TrainingStarted
from hwnas.units import format_latency


def progress_wanted(*, no_progress: bool, as_json: bool) -> bool:
    """Whether ``hwnas search`` shows the bar (see the module docstring; never with ``hwnas -q``)."""
    if not bars_wanted(no_progress):
        return False
    return as_json or sys.stdout.isatty()


class SearchBar(SearchCallback):
    """A ``rich`` progress bar fed with the search loop's events (a
    :class:`~hwnas.search.events.SearchCallback`).

    Args:
        max_trainings: The run's training budget (the bar's total).
        budget_ms: The latency budget.
    """

    def __init__(self, max_trainings: int, budget_ms: float) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.budget = format_latency(budget_ms)
        self._progress = Progress(TextColumn("trainings"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                  console=Console(stderr=True), transient=False, auto_refresh=False)
        self._task = self._progress.add_task("search", total=max_trainings, note="")
        self._progress.start()
        self._closed = False

    def echo(self, message: str = "") -> None:
        """Prints a progress line above the bar."""
        self._progress.console.print(message, markup=False, highlight=False, soft_wrap=True)
        self._progress.refresh()

    def on_training(self, event: TrainingStarted) -> None:
        self._update(completed=event.trainings, note=f"training {event.arch}")

    def on_trained(self, event: Trained) -> None:
        best = event.best
        note = (f"best {best.accuracy:.4f} @ {format_latency(best.latency_ms)} (budget {self.budget})" if best
                else f"nothing under {self.budget} yet")
        self._update(advance=1, note=note)

    def on_round_done(self, event: RoundDone) -> None:
        self._update(completed=event.trainings_used)

    def _update(self, **changes) -> None:
        self._progress.update(self._task, **changes)
        self._progress.refresh()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._progress.refresh()
            self._progress.stop()
