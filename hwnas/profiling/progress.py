"""Progress reporting for long profiling runs: a no-op base and a ``rich`` progress bar with ETA."""

from __future__ import annotations

import sys
import time
from typing import Any, Mapping


class ProfileProgress:
    """Receives progress events; this base class ignores them (for library use and tests)."""

    def planning(self) -> None:
        """Choosing architectures starts."""

    def planned(self, done: int, total: int) -> None:
        """``done`` of about ``total`` architecture sizes computed."""

    def measuring(self, total: int) -> None:
        """Measuring starts: ``total`` architectures."""

    def measured(self, record: Mapping[str, Any]) -> None:
        """One architecture measured and stored."""

    def close(self) -> None:
        """The run ended (normally or not)."""


class RichProgress(ProfileProgress):
    """Progress bars with elapsed time and ETA on stderr (``rich.progress``).

    Redrawn only when something happened (at most ten times a second), never from a background thread: a
    refresh thread waking up during timed runs would compete with them for the interpreter and the CPU.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                                  TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                  console=Console(stderr=True), transient=False, auto_refresh=False)
        self._progress.start()
        self._plan: Any = None
        self._measure: Any = None
        self._last_refresh = 0.0
        self._closed = False

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_refresh >= 0.1:
            self._progress.refresh()
            self._last_refresh = now

    def planning(self) -> None:
        self._plan = self._progress.add_task("choosing architectures", total=None, note="")
        self._refresh(force=True)

    def planned(self, done: int, total: int) -> None:
        if self._plan is not None:
            self._progress.update(self._plan, completed=done, total=total)
            self._refresh()

    def measuring(self, total: int) -> None:
        if self._plan is not None:
            task = self._progress.tasks[self._plan]
            self._progress.update(self._plan, total=task.completed)
        self._measure = self._progress.add_task("measuring", total=total, note="")
        self._refresh(force=True)

    def measured(self, record: Mapping[str, Any]) -> None:
        if self._measure is not None:
            self._progress.update(self._measure, advance=1, note=f"last {record['median_ms']:.3f} ms")
            self._refresh()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._progress.refresh()
            self._progress.stop()


def make_progress(enabled: bool | None = None) -> ProfileProgress:
    """A :class:`RichProgress` when ``enabled`` (default: when stderr is a terminal), else a silent one."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return RichProgress() if enabled else ProfileProgress()
