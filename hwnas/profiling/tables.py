"""Importing published latency tables: CSV rows of ``arch,latency_ms`` (canonical architecture strings).

Users can start a profile from published per-device measurements (HW-NAS-Bench-style tables for edge
devices) instead of measuring. Every row that cannot be used is reported with its line number and skipped;
none is dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.profiling.errors import ProfileError
from hwnas.spaces.base import SearchSpace

HEADER = ("arch", "latency_ms")


@dataclass(frozen=True)
class TableRow:
    """One usable row: the parsed architecture and its latency."""

    line: int
    arch: Arch
    latency_ms: float


@dataclass(frozen=True)
class TableProblem:
    """One row that was skipped, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def parse_latency_table(text: str, space: SearchSpace) -> tuple[list[TableRow], list[TableProblem]]:
    """Parses the text of a latency table.

    An optional first row ``arch,latency_ms`` is a header (a header naming other columns, such as an accuracy
    table's ``arch,accuracy``, is refused: ProfileError); blank lines and lines starting with ``#`` are
    ignored. A row is skipped (and reported) when it does not have exactly two fields, its architecture does
    not parse in ``space``, its latency is not a positive finite number, or it repeats an earlier row's
    architecture.

    Returns:
        The usable rows and the problems, both in file order.
    """
    rows: list[TableRow] = []
    problems: list[TableProblem] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text))
    first = True
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(TableProblem(reader.line_num, f"not CSV ({exc})"))
            continue
        line = reader.line_num
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        cells = [f.strip() for f in fields]
        is_first, first = first, False
        if is_first and tuple(c.lower() for c in cells) == HEADER:
            continue
        if is_first and cells and cells[0].lower() == "arch":  # a header of another table (e.g. accuracies)
            raise ProfileError(f"the table's header names the columns {','.join(cells)!r}, not "
                               f"'arch,latency_ms': it is not a latency table")
        if len(cells) != 2:
            problems.append(TableProblem(line, f"expected 2 fields (arch,latency_ms), got {len(cells)}"))
            continue
        try:
            arch = space.parse(cells[0])
        except HwnasError as exc:
            problems.append(TableProblem(line, f"architecture does not parse: {exc}"))
            continue
        try:
            latency = float(cells[1])
        except ValueError:
            problems.append(TableProblem(line, f"latency {cells[1]!r} is not a number"))
            continue
        if not math.isfinite(latency) or latency <= 0:
            problems.append(TableProblem(line, f"latency {cells[1]!r} is not a positive finite number"))
            continue
        if arch.string in seen:
            problems.append(TableProblem(line, f"architecture repeats line {seen[arch.string]}"))
            continue
        seen[arch.string] = line
        rows.append(TableRow(line, arch, latency))
    return rows, problems


def read_latency_table(path: str | os.PathLike,
                       space: SearchSpace) -> tuple[list[TableRow], list[TableProblem]]:
    """Reads and parses a latency table file (UTF-8); see :func:`parse_latency_table`.

    Raises:
        ProfileError: the file cannot be read or is not UTF-8 text.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ProfileError(f"{file}: not UTF-8 text; a latency table is a CSV of arch,latency_ms "
                           f"rows") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {file}: {exc.strerror or exc}") from None
    return parse_latency_table(text, space)


def table_record_stats(latency_ms: float) -> dict:
    """The statistics fields of a record imported from a table: only the median is known."""
    return {"median_ms": float(latency_ms), "p10_ms": None, "p90_ms": None, "mean_ms": None, "std_ms": None,
            "min_ms": None, "runs": None, "converged": None, "rel_ci": None}
