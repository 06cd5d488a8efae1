"""Helpers shared by the benchmark scripts: option parsing, table printing, JSON results."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

RESULTS = Path(__file__).resolve().parent / "results"


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["noise=0.5", "optimizer=sgd"]`` -> ``{"noise": 0.5, "optimizer": "sgd"}`` (int, float, else text)."""
    from hwnas.io import parse_key_values

    return parse_key_values(pairs)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(job) for job in jobs]``, over ``workers`` spawned processes when more than one (one job at a time
    each, results in job order; PyTorch at one thread in each, so that the workers do not oversubscribe the
    cores)."""
    if workers <= 1:
        return [fn(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
        return pool.map(fn, jobs, chunksize=1)


_TASKS: dict = {}


def train_job(space_name: str, arch: str, dataset_name: str, dataset_options: dict, recipe_options: dict,
              seed: int, threads: int | None = 1, space_options: dict | None = None, **train_options: Any):
    """``hwnas.training.train`` of one architecture by name, as a benchmark worker runs it: the space and the
    data set are made once per process (generating a data set such as cluttered-digits takes seconds)."""
    from hwnas.data import resolve_dataset
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, train

    space_options = space_options or {}
    key = (space_name, tuple(sorted(space_options.items())), dataset_name, tuple(sorted(dataset_options.items())))
    if key not in _TASKS:
        _TASKS[key] = (create_space(space_name, **space_options), resolve_dataset(dataset_name, **dataset_options))
    space, dataset = _TASKS[key]
    return train(space, space.parse(arch), dataset, recipe=Recipe(**recipe_options), seed=seed, threads=threads,
                 **train_options)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r]
                                          for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Writes ``benchmarks/results/<name>.json`` with the machine and versions added."""
    import torch

    from hwnas import __version__
    from hwnas.io import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "hwnas_version": __version__, "torch_version": torch.__version__,
               "python": sys.version.split()[0], "machine": platform.machine(),
               "processor": platform.processor() or platform.machine(), **payload}
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, payload)
    return path
