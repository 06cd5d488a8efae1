"""A tabular accuracy source: ``--accuracy-table FILE.csv`` with ``arch,accuracy`` rows.

For spaces whose benchmark tables are published (NAS-Bench-201-style), a table replaces training so search
algorithms can be compared at zero training cost. Format: UTF-8 CSV, an optional ``arch,accuracy`` header,
one architecture a row (any string the space parses; it is stored canonically), accuracy as a fraction in
[0, 1]; blank lines and lines starting with ``#`` are skipped. Every bad row is reported with its line number.
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from pathlib import Path
from typing import Any

from hwnas.arch import Arch
from hwnas.data.base import Dataset
from hwnas.errors import ArchError, HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.training.evaluator import Evaluator
from hwnas.training.recipe import Recipe
from hwnas.training.trainer import TrainResult


class TableError(HwnasError):
    """An accuracy table is unreadable or malformed, or lacks an architecture."""


class AccuracyTable:
    """Architecture -> accuracy, read from a CSV file and checked against a space.

    Args:
        path: The CSV file.
        space: The space its architectures belong to.

    Raises:
        TableError: the file is missing or unreadable, has a bad header, a row without exactly two fields,
            an architecture the space rejects, an accuracy that is not a number in [0, 1], a repeated
            architecture, or no rows (each reported as ``FILE line N: ...``).
    """

    def __init__(self, path: str | Path, space: SearchSpace) -> None:
        self.path = Path(path)
        self.space_name = space.name
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise TableError(f"{self.path}: no such file") from None
        except OSError as exc:
            raise TableError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        self.digest = hashlib.sha1(raw).hexdigest()[:12]
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TableError(f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        self._acc: dict[str, float] = {}
        self._parse(text, space)

    def _parse(self, text: str, space: SearchSpace) -> None:
        first_line: dict[str, int] = {}
        seen_row = False
        for number, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            where = f"{self.path} line {number}"
            fields = [f.strip() for f in row]
            if not seen_row:
                seen_row = True
                if [f.lower() for f in fields] == ["arch", "accuracy"]:
                    continue
            if len(fields) != 2:
                raise TableError(f"{where}: expected 2 fields 'arch,accuracy', got {len(fields)}")
            arch_text, acc_text = fields
            try:
                arch = space.parse(arch_text)
            except ArchError as exc:
                raise TableError(f"{where}: {exc}") from None
            try:
                accuracy = float(acc_text)
            except ValueError:
                raise TableError(f"{where}: accuracy {acc_text!r} is not a number") from None
            if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
                hint = " (divide percentages by 100)" if 1.0 < accuracy <= 100.0 else ""
                raise TableError(f"{where}: accuracy {acc_text} is not in [0, 1]{hint}")
            if arch.string in first_line:
                raise TableError(f"{where}: architecture repeats line {first_line[arch.string]}")
            first_line[arch.string] = number
            self._acc[arch.string] = accuracy
        if not self._acc:
            raise TableError(f"{self.path}: no 'arch,accuracy' rows")

    def __len__(self) -> int:
        return len(self._acc)

    def __contains__(self, arch: object) -> bool:
        return str(arch) in self._acc

    def lookup(self, arch: Arch | str) -> float:
        """The accuracy of ``arch`` (canonical string or :class:`Arch`).

        Raises:
            TableError: the table does not hold it.
        """
        try:
            return self._acc[str(arch)]
        except KeyError:
            raise TableError(f"architecture {str(arch)!r} is not in accuracy table {self.path} "
                             f"({len(self)} architectures)") from None

    def architectures(self) -> list[str]:
        """Canonical strings of every architecture in the table, in file order."""
        return list(self._acc)


class TableEvaluator(Evaluator):
    """Evaluates by looking an architecture up in an :class:`AccuracyTable` (counted like a training run).

    The recipe and seed do not change a table's answer; results are stored under the recipe hash
    ``table-<SHA-1 of the file>``, 0 epochs and data fraction 1.

    Args:
        table: The table, or the path of its CSV file (then ``space`` is required).
        space: The space of the table's architectures, when ``table`` is a path.
    """

    source = "table"

    def __init__(self, table: AccuracyTable | str | Path, space: SearchSpace | None = None) -> None:
        super().__init__()
        if not isinstance(table, AccuracyTable):
            if space is None:
                raise TypeError("a table given by path needs its space")
            table = AccuracyTable(table, space)
        self.table = table

    def evaluate(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe,
                 seed: int) -> TrainResult:
        if space.name != self.table.space_name:
            raise TableError(f"accuracy table {self.table.path} is for space {self.table.space_name!r}, "
                             f"not {space.name!r}")
        start = time.perf_counter()
        accuracy = self.table.lookup(arch)
        return TrainResult(val_accuracy=accuracy, val_loss=float("nan"), params=None,
                           wall_time_s=time.perf_counter() - start, epochs=0, data_fraction=1.0,
                           source="table")

    def protocol_key(self, recipe: Recipe) -> tuple[str, int, float]:
        return f"table-{self.table.digest}", 0, 1.0

    def protocol(self, recipe: Recipe) -> dict[str, Any]:
        return {"table": str(self.table.path), "sha1": self.table.digest}
