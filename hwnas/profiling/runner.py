"""Profiling runs: measure a space on this machine, or import a published table, into a device profile.

This is what ``hwnas profile`` does, as a library call (the search also uses it to profile the local host
on the spot). A run is resumable by construction: ``samples`` is the number of architectures the profile
should hold for the space at the input shape; a run measures only what is missing, and every finished
measurement is stored at once, so Ctrl-C loses at most the architecture being measured.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas.profiling.errors import ProfileError
from hwnas.profiling.fingerprint import host_fingerprint, table_fingerprint
from hwnas.profiling.measure import (DEFAULT_CONDITIONS, DEFAULT_PROTOCOL, Conditions, Protocol,
                                     make_record, profile_arch)
from hwnas.profiling.progress import ProfileProgress
from hwnas.profiling.sampling import SizeFn, macs_size_fn, stratified_sample
from hwnas.profiling.store import ProfileStore, normalize_space_options
from hwnas.profiling.tables import (TableProblem, TableRow, parse_device_table, read_latency_table,
                                    read_table_text, table_record_stats)
from hwnas.runtimes import get_runtime
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a profiling run did.

    Attributes:
        held_before: Records of this space and input shape in the profile before the run.
        measured: Architectures measured (or imported) by this run.
        not_converged: Of those, how many hit a cap before their median was stable.
        held_after: Records of this space and input shape after the run.
        seconds: Wall time of the run.
        problems: Table rows that were skipped (table imports only).
        already: Table rows whose architecture the profile already held (table imports only).
    """

    held_before: int = 0
    measured: int = 0
    not_converged: int = 0
    held_after: int = 0
    seconds: float = 0.0
    problems: list[TableProblem] = field(default_factory=list)
    already: int = 0


def profile_space(store: ProfileStore, space: SearchSpace, *, samples: int, input_shape: Sequence[int],
                  num_classes: int, conditions: Conditions = DEFAULT_CONDITIONS,
                  space_options: Mapping[str, Any] | None = None, seed: int = 0,
                  protocol: Protocol = DEFAULT_PROTOCOL, progress: ProfileProgress | None = None,
                  size_fn: SizeFn | None = None, summary: RunSummary | None = None,
                  measure_fn: Callable[..., dict[str, Any]] | None = None,
                  fingerprint: Mapping[str, Any] | None = None) -> RunSummary:
    """Brings the profile to ``samples`` measured architectures of ``space`` at ``input_shape``.

    Args:
        store: The device profile (created on the first measurement if it does not exist).
        space: The search space.
        samples: Architectures the profile should hold for this space and input shape.
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of output logits of the measured models.
        conditions: Provider, threads, batch size, precision (must match an existing profile's).
        space_options: The space's constructor options, recorded with each measurement.
        seed: Seed of the architecture sampler, the weights and the inputs.
        protocol: Warm-up and stopping rule.
        progress: Progress display (silent when None).
        size_fn: Size of an architecture for stratification; MACs at ``input_shape`` when None.
        summary: Filled in as the run goes (so a caller still has the figures after Ctrl-C).
        measure_fn: Measures one architecture, called like :func:`profile_arch`: a device's
            (:meth:`hwnas.devices.Device.measure_arch`); None: :func:`profile_arch` here.
        fingerprint: The measuring device's fingerprint (:meth:`hwnas.devices.Device.fingerprint`); None: this
            machine's.

    Raises:
        ProviderError: the runtime or provider is not usable here (checked before anything is written).
        ProfileError: the profile is corrupt, locked, or was measured under other conditions.
    """
    progress = progress or ProfileProgress()
    summary = summary if summary is not None else RunSummary()
    start = time.perf_counter()
    if fingerprint is None:
        get_runtime(conditions.runtime).require(conditions.provider, conditions.precision)
        fingerprint = host_fingerprint(store.device, conditions)
    options = normalize_space_options(space.name, space_options)
    if store.exists or store.measurements_file.exists():
        store.ensure(fingerprint)  # fails early on a mismatch or a corrupt profile
    with store.lock():
        store.refresh()  # what other processes measured before we held the lock
        existing = store.records(space.name, input_shape, options)
        summary.held_before = summary.held_after = len(existing)
        missing = samples - len(existing)
        if missing <= 0:
            summary.seconds = time.perf_counter() - start
            return summary
        size_fn = size_fn or macs_size_fn(space, input_shape, num_classes)
        rng = np.random.default_rng(seed)
        try:
            progress.planning()
            plan = stratified_sample(space, missing, rng=rng, size_fn=size_fn,
                                     existing=[r["arch"] for r in existing], progress=progress.planned)
            progress.measuring(total=len(plan))
            for arch in plan:
                record = (measure_fn or profile_arch)(space, arch, input_shape, num_classes, conditions=conditions,
                                                      space_options=options, protocol=protocol, seed=seed)
                if not store.exists:
                    store.ensure(fingerprint)
                store.add(record)
                summary.measured += 1
                summary.not_converged += 0 if record["converged"] else 1
                summary.held_after += 1
                progress.measured(record)
        finally:
            summary.seconds = time.perf_counter() - start
    return summary


def import_table(store: ProfileStore, space: SearchSpace, path: str, *, input_shape: Sequence[int],
                 num_classes: int, space_options: Mapping[str, Any] | None = None,
                 report: Callable[[TableProblem], None] | None = None, runtime: str | None = None) -> RunSummary:
    """Adds the rows of a published ``arch,latency_ms`` table to a (table-sourced) device profile (``runtime``:
    the runtime the table was measured in, when known; recorded, and compared with the profile's).

    Rows that do not parse are skipped, passed to ``report`` (before anything else happens) and returned in
    :attr:`RunSummary.problems`, with their line numbers; rows the profile already holds are counted in
    :attr:`RunSummary.already`.

    Raises:
        ProfileError: the table has no usable row, the profile holds real measurements (tables and
            measurements are never mixed), or it is corrupt.
    """
    start = time.perf_counter()
    rows, problems = read_latency_table(path, space)
    for problem in problems if report is not None else ():
        report(problem)
    if not rows:
        raise ProfileError(f"{path}: no usable arch,latency_ms row ({len(problems)} skipped); "
                           f"nothing imported")
    summary = _import_rows(store, space, rows, Path(path).name, input_shape=input_shape, num_classes=num_classes,
                           space_options=space_options, runtime=runtime)
    summary.problems = problems
    summary.seconds = time.perf_counter() - start
    return summary


def import_device_table(root: str | os.PathLike, space: SearchSpace, path: str, *, input_shape: Sequence[int],
                        num_classes: int, columns: Sequence[str] | None = None, prefix: str = "",
                        space_options: Mapping[str, Any] | None = None,
                        report: Callable[[TableProblem], None] | None = None,
                        runtime: str | None = None) -> dict[str, RunSummary]:
    """Imports each device column of a table ``arch,<device>,<device>...`` into its own table-sourced profile
    ``<root>/<prefix><device>`` (one command for a published release such as HELP's 20 devices).

    Returns:
        The summary of each profile written, by profile name; a column without a usable cell is skipped (with a
        problem reported) and is not among them.

    Raises:
        ProfileError: the table has no header naming its columns, a column asked for is missing, a profile name
            is not usable, or a profile holds real measurements.
    """
    from hwnas.runtimes import DEFAULT_RUNTIME

    start = time.perf_counter()
    per_column, problems = parse_device_table(read_table_text(path), space, columns)
    suffix = "" if runtime in (None, DEFAULT_RUNTIME) else f".{runtime}"  # as hwnas.devices.profile_name
    names = {column: ProfileStore(root, f"{prefix}{column}{suffix}").device for column in per_column}
    for name in names.values():  # every profile checked before any is written
        store = ProfileStore(root, name)
        if store.exists and (store.fingerprint or {}).get("source") != "table":
            raise ProfileError(f"profile {name!r} holds real measurements; a table is never mixed with them: "
                               f"use another --device-prefix")
    for problem in problems if report is not None else ():
        report(problem)
    summaries: dict[str, RunSummary] = {}
    for column, rows in per_column.items():
        if not rows:
            if report is not None:
                report(TableProblem(0, f"column {column!r} has no usable latency: not imported"))
            continue
        summary = _import_rows(ProfileStore(root, names[column]), space, rows, f"{Path(path).name}#{column}",
                               input_shape=input_shape, num_classes=num_classes, space_options=space_options,
                               runtime=runtime)
        summary.problems = [p for p in problems if p.message.startswith(f"{column}: ")]
        summary.seconds = time.perf_counter() - start
        summaries[names[column]] = summary
    return summaries


def _import_rows(store: ProfileStore, space: SearchSpace, rows: Sequence[TableRow], table_name: str, *,
                 input_shape: Sequence[int], num_classes: int, space_options: Mapping[str, Any] | None,
                 runtime: str | None) -> RunSummary:
    """Adds a table's rows to a table-sourced profile, in one durable append."""
    summary = RunSummary()
    options = normalize_space_options(space.name, space_options)
    with store.lock():
        store.ensure(table_fingerprint(store.device, table_name, runtime=runtime))
        summary.held_before = len(store.records(space.name, input_shape, options))
        records = [make_record(space=space.name, arch=row.arch, input_shape=input_shape, num_classes=num_classes,
                               stats=table_record_stats(row.latency_ms), space_options=options, source="table")
                   for row in rows]
        summary.measured = store.add_many(records)
        summary.already = len(records) - summary.measured
        summary.held_after = summary.held_before + summary.measured
    return summary
