"""Importing published latency tables: CSV rows of ``arch,latency_ms`` (canonical architecture strings), or
one ``arch`` column and one column per device (``arch,pixel3,raspi4,...``, as in the HELP release).

Users can start a profile from published per-device measurements (HW-NAS-Bench-style tables for edge
devices) instead of measuring, and use other devices' tables as transfer sources. Every row that cannot be
used is reported with its line number and skipped;
none is dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.profiling.errors import MAX_LATENCY_MS, MIN_LATENCY_MS, ProfileError, latency_in_range
from hwnas.spaces.base import SearchSpace

HEADER = ("arch", "latency_ms")
#: A column suffix of several-device tables that is not part of the device's name.
DEVICE_SUFFIX = "_latency_ms"


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


def _csv_rows(text: str, problems: list[TableProblem]):
    """``(line number, stripped cells)`` of each CSV row that is not blank or a ``#`` comment; rows that are
    not CSV are added to ``problems``."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(TableProblem(reader.line_num, f"not CSV ({exc})"))
            continue
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        yield reader.line_num, [f.strip() for f in fields]


def _arch(cell: str, space: SearchSpace, line: int, problems: list[TableProblem]) -> Arch | None:
    """The architecture in a cell, or None with the problem recorded."""
    try:
        return space.parse(cell)
    except HwnasError as exc:
        problems.append(TableProblem(line, f"architecture does not parse: {exc}"))
        return None


def _latency(cell: str) -> tuple[float | None, str | None]:
    """The latency in a cell, or the reason it is not one."""
    try:
        latency = float(cell)
    except ValueError:
        return None, f"latency {cell[:40]!r} is not a number"
    if not math.isfinite(latency) or latency <= 0:
        return None, f"latency {cell[:40]!r} is not a positive finite number"
    if not latency_in_range(latency):
        return None, f"latency {cell[:40]!r} is outside {MIN_LATENCY_MS:g} .. {MAX_LATENCY_MS:g} ms"
    return latency, None


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
    first = True
    for line, cells in _csv_rows(text, problems):
        is_first, first = first, False
        if is_first and tuple(c.lower() for c in cells) == HEADER:
            continue
        if is_first and cells and cells[0].lower() == "arch":  # a header of another table (e.g. accuracies)
            raise ProfileError(f"the table's header names the columns {','.join(cells)!r}, not "
                               f"'arch,latency_ms': it is not a latency table (a table of several devices' "
                               f"latencies is imported with --columns)")
        if len(cells) != 2:
            problems.append(TableProblem(line, f"expected 2 fields (arch,latency_ms), got {len(cells)}"))
            continue
        arch = _arch(cells[0], space, line, problems)
        if arch is None:
            continue
        latency, problem = _latency(cells[1])
        if problem:
            problems.append(TableProblem(line, problem))
            continue
        if arch.string in seen:
            problems.append(TableProblem(line, f"architecture repeats line {seen[arch.string]}"))
            continue
        seen[arch.string] = line
        rows.append(TableRow(line, arch, latency))
    return rows, problems


def device_column(name: str) -> str:
    """The device a column of a several-device table names: ``pixel3_latency_ms`` and ``pixel3`` are ``pixel3``."""
    return name[: -len(DEVICE_SUFFIX)] if name.endswith(DEVICE_SUFFIX) and name != DEVICE_SUFFIX else name


def parse_device_table(text: str, space: SearchSpace, columns: Sequence[str] | None = None
                       ) -> tuple[dict[str, list[TableRow]], list[TableProblem]]:
    """Parses a table of several devices' latencies: a header ``arch,<device>,<device>...`` then one row per
    architecture (the HELP release's NAS-Bench-201 table is one; a column ``<device>_latency_ms`` is
    ``<device>``'s).

    Args:
        text: The table's text.
        space: The space its architectures belong to.
        columns: The device columns to read (None: all).

    Returns:
        The usable rows of each column asked for (in the table's order) and the problems (a cell that is not a
        positive latency is skipped for its column only; a row whose architecture does not parse, or repeats,
        for all).

    Raises:
        ProfileError: no header naming ``arch`` first, a column asked for is not in it, or it repeats a column.
    """
    problems: list[TableProblem] = []
    rows = _csv_rows(text, problems)
    first = next(rows, None)
    if first is None or not first[1] or first[1][0].lower() != "arch" or len(first[1]) < 2:
        raise ProfileError("a table of several devices starts with a header 'arch,<device>,<device>...'")
    if tuple(c.lower() for c in first[1]) == HEADER:
        raise ProfileError("the table holds one device's latencies (arch,latency_ms), not a column per device: "
                           "import it with --device NAME instead of --columns")
    header = [device_column(c) for c in first[1][1:]]
    if len(set(header)) != len(header) or not all(header):
        raise ProfileError(f"the table's header repeats a column or has an empty one: {','.join(first[1])!r}")
    wanted = list(header) if columns is None else list(dict.fromkeys(device_column(c) for c in columns))
    unknown = [c for c in wanted if c not in header]
    if unknown:
        raise ProfileError(f"no column {unknown[0]!r} in the table (it has: {', '.join(header)})")
    index = {c: header.index(c) + 1 for c in wanted}
    out: dict[str, list[TableRow]] = {c: [] for c in wanted}
    seen: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) != len(header) + 1:
            problems.append(TableProblem(line, f"expected {len(header) + 1} fields, got {len(cells)}"))
            continue
        arch = _arch(cells[0], space, line, problems)
        if arch is None:
            continue
        if arch.string in seen:
            problems.append(TableProblem(line, f"architecture repeats line {seen[arch.string]}"))
            continue
        seen[arch.string] = line
        for column in wanted:
            latency, problem = _latency(cells[index[column]])
            if problem:
                problems.append(TableProblem(line, f"{column}: {problem}"))
            else:
                out[column].append(TableRow(line, arch, latency))
    return out, problems


def read_table_text(path: str | os.PathLike) -> str:
    """A table file's text (UTF-8).

    Raises:
        ProfileError: the file cannot be read or is not UTF-8 text.
    """
    file = Path(path)
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ProfileError(f"{file}: not UTF-8 text; a latency table is a CSV of arch,latency_ms "
                           f"rows") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {file}: {exc.strerror or exc}") from None


def read_latency_table(path: str | os.PathLike,
                       space: SearchSpace) -> tuple[list[TableRow], list[TableProblem]]:
    """Reads and parses a latency table file (UTF-8); see :func:`parse_latency_table`.

    Raises:
        ProfileError: the file cannot be read or is not UTF-8 text.
    """
    return parse_latency_table(read_table_text(path), space)


def table_record_stats(latency_ms: float) -> dict:
    """The statistics fields of a record imported from a table: only the median is known."""
    return {"median_ms": float(latency_ms), "p10_ms": None, "p90_ms": None, "mean_ms": None, "std_ms": None,
            "min_ms": None, "runs": None, "converged": None, "rel_ci": None}
