"""A latency table as the search's latency source: a look-up is the "measurement" of a verification.

``hwnas search --latency-table L.csv`` (and ``hwnas benchmark``) read ``arch,latency_ms`` rows keyed by
canonical strings (for nb201: NAS-Bench-201 strings, so HW-NAS-Bench per-device tables plug in). This is a
light :class:`~hwnas.search.loop.LatencySource` rather than an imported device profile, so nothing is written
to ``profiles/`` and the table is never mistaken for the whole prior knowledge of the device:

- :meth:`TableLatency.measure` looks a candidate up; like a real measurement it counts against the search's
  budget (it is part of a verification).
- :meth:`TableLatency.known` — what the latency predictor is first fit on, standing in for the device
  profile a real search starts from — is ``prior_samples`` rows spread evenly over the table's latency range
  (every ``n/k``-th row by latency; deterministic, the same for every controller and seed).

Rows that do not parse are skipped with a warning naming their lines (as ``hwnas profile --latency-table``
does); a candidate the table lacks is an error.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.search.config import DEFAULT_PROFILE_SAMPLES
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)


_CACHE: dict[tuple, Any] = {}


def _cached(kind: str, path: str | os.PathLike, space: SearchSpace, load):
    """``load()`` once per file version and space in this process (a benchmark opens the same tables for every
    run; parsing 15,625 nb201 rows takes about half a second)."""
    stat = os.stat(path)
    key = (kind, os.path.abspath(path), stat.st_mtime_ns, stat.st_size, space.name, tuple(space.decisions))
    if key not in _CACHE:
        _CACHE[key] = load()
    return _CACHE[key]


def accuracy_table(path: str | os.PathLike, space: SearchSpace):
    """The :class:`~hwnas.training.table.AccuracyTable` of ``path``, parsed once per process and file version."""
    from hwnas.training.table import AccuracyTable

    if not os.path.isfile(path):
        return AccuracyTable(path, space)  # its own clear error
    return _cached("accuracy", path, space, lambda: AccuracyTable(path, space))


def spread_rows(latency: dict[str, float], n: int) -> list[tuple[str, float]]:
    """``n`` ``(arch, latency_ms)`` rows of a table spread evenly over its latency range (every ``len/n``-th
    row by latency; deterministic): the stand-in for a device profile."""
    ranked = sorted(latency.items(), key=lambda item: (item[1], item[0]))
    picks = np.unique(np.linspace(0, len(ranked) - 1, min(n, len(ranked))).round().astype(int))
    return [ranked[i] for i in picks]


def _read_latency_table(path, space: SearchSpace):
    """:func:`read_latency_table`, warning of the skipped rows once per read (the cached rows are opened again by
    every source a run or a benchmark makes)."""
    from hwnas.profiling.tables import read_latency_table

    rows, problems = read_latency_table(path, space)
    if problems:
        logger.warning("%s: %d rows skipped (%s%s); fix or delete them to use the table's every row", path,
                       len(problems), "; ".join(map(str, problems[:3])), ", ..." if len(problems) > 3 else "")
    return rows, problems


class LatencyTableError(HwnasError):
    """A latency table is unusable or lacks an architecture."""


class TableLatency:
    """Latency looked up in an ``arch,latency_ms`` table.

    Args:
        path: The CSV file.
        space: The space of its architectures.
        prior_samples: Rows returned by :meth:`known` (the stand-in for a device profile).

    Raises:
        LatencyTableError: the file cannot be read or has no usable row.
    """

    def __init__(self, path: str | os.PathLike, space: SearchSpace, *,
                 prior_samples: int = DEFAULT_PROFILE_SAMPLES) -> None:
        from hwnas.profiling.errors import ProfileError

        self.path = str(path)
        try:
            rows, problems = (_cached("latency", path, space, lambda: _read_latency_table(path, space))
                              if os.path.isfile(path) else _read_latency_table(path, space))
        except ProfileError as exc:
            raise LatencyTableError(str(exc)) from None
        if not rows:
            raise LatencyTableError(f"{path}: no usable arch,latency_ms row ({len(problems)} skipped)")
        self.latency = {row.arch.string: float(row.latency_ms) for row in rows}
        self._prior = spread_rows(self.latency, prior_samples)

    def __len__(self) -> int:
        return len(self.latency)

    def measure(self, arch: Arch) -> dict[str, Any]:
        """``{"latency_ms": ..., "measured": True}`` from the table."""
        try:
            return {"latency_ms": self.latency[arch.string], "measured": True}
        except KeyError:
            raise LatencyTableError(f"architecture {arch.string!r} is not in latency table {self.path} "
                                    f"({len(self)} architectures)") from None

    def known(self) -> list[tuple[str, float]]:
        return list(self._prior)
