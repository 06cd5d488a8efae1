"""Parallel trainings on Ray (issue 17): a digits search serial vs ``--workers 2``, side by side in one run, and
Ray's overhead per task.

1. The host is profiled once; each run starts from its own copy of that profile (neither pays for it, and
   neither sees what the other measured). A candidate's latency is measured again by each run, so near the
   budget two runs can disagree on feasibility by measurement noise: "same records" says whether they did.
2. The same search (mobilenet on digits, default recipe, ``--trainings`` trainings, seed 0) runs serially and
   with ``--workers 2`` on a local Ray (each in its own evaluation store, so both really train). Reported:
   wall time of each, the speed-up, whether the answer and every trained record are the same, and the share
   of the serial run spent inside trainings (the rest -- controller learning, predictor fits, measurements --
   stays on the driver: the Amdahl limit of the speed-up).
3. Ray's overhead: start-up of a local Ray, and the round trip of ``--tasks`` empty jobs through the executor
   (one at a time) minus the same jobs called in-process.
4. One training alone vs two side by side on two workers: what two trainings at once gain on this machine.

Run on an otherwise idle machine: ``python benchmarks/parallel.py`` (``--quick``: 8 trainings of 3 epochs).
Writes ``benchmarks/results/parallel[-quick].json``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchdata" / "nb201"


class _Empty:
    local = False

    def __call__(self):
        return None


def search(folder: Path, *, workers: int, trainings: int, epochs: int | None, profiles: Path,
           candidates: int, table: Path | None = None, budget_ms: float = 0.05) -> dict:
    from hwnas.cluster import make_executor
    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir
    from hwnas.search.runner import run_search
    from hwnas.training.recipe import DEFAULT_RECIPE

    recipe = DEFAULT_RECIPE if epochs is None else DEFAULT_RECIPE.with_fidelity(epochs=epochs)
    task = {} if table is None else {"space": "nb201", "space_options": {"channels": 8, "cells_per_stage": 2},
                                     "latency_table": str(table)}
    config = RunConfig(budget_ms=budget_ms, dataset="digits", recipe=recipe, max_trainings=trainings,
                       candidates_per_round=candidates, profiles_dir=str(profiles),
                       store=str(folder / "evals.sqlite"), **task).resolved()
    run = RunDir.create(folder / "run", config)
    start = time.perf_counter()
    executor = make_executor(None if workers == 1 else "local", workers=workers)
    try:
        result = run_search(run, echo=lambda line: None, executor=executor)
    finally:
        executor.close()
    wall = time.perf_counter() - start
    verified = run.load_state().verified
    from hwnas.training.store import EvalStore

    with EvalStore(folder / "evals.sqlite") as store:
        train_s = sum(r.wall_time_s or 0.0 for r in store.query())
    return {"wall_s": wall, "train_s": train_s, "best": result.best.arch if result.best else None,
            "records": [(v.arch, v.accuracy) for v in verified]}


def side_by_side(epochs: int | None) -> dict:
    """One digits training alone vs two of them at once on two Ray workers (one thread each): how much slower a
    training runs beside another on this machine (shared caches and memory bandwidth, or cores that are not
    whole cores)."""
    from hwnas.cluster import RayExecutor
    from hwnas.data.resolve import DatasetSpec
    from hwnas.spaces import create_space
    from hwnas.training import Trainer
    from hwnas.training.job import TrainingJob
    from hwnas.training.recipe import DEFAULT_RECIPE

    space = create_space("mobilenet")
    recipe = DEFAULT_RECIPE if epochs is None else DEFAULT_RECIPE.with_fidelity(epochs=epochs)
    job = TrainingJob(space=space, arch="24:k5e3/32:k5e3.k3e3/48:k5e6/64:k3e3", dataset=DatasetSpec("digits"),
                      recipe=recipe, seed=0, evaluator=Trainer(threads=1))
    executor = RayExecutor(None, workers=2)
    try:
        list(executor.run([job, job]))  # warm: both workers import and build the data set
        t0 = time.perf_counter()
        list(executor.run([job]))
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(executor.run([job, job]))
        together = time.perf_counter() - t0
    finally:
        executor.close()
    return {"alone_s": alone, "two_at_once_s": together, "slowdown": together / alone,
            "throughput_gain": 2 * alone / together}


def overhead(tasks: int) -> dict:
    from hwnas.cluster import RayExecutor

    start = time.perf_counter()
    executor = RayExecutor(None, workers=1)
    startup = time.perf_counter() - start
    try:
        list(executor.run([_Empty()] * 3))  # workers started and warm
        times = []
        for _ in range(tasks):
            t0 = time.perf_counter()
            list(executor.run([_Empty()]))
            times.append(time.perf_counter() - t0)
    finally:
        executor.close()
    local = []
    for _ in range(tasks):
        t0 = time.perf_counter()
        _Empty()()
        local.append(time.perf_counter() - t0)
    return {"startup_s": startup, "task_ms_median": 1000 * (statistics.median(times) - statistics.median(local)),
            "task_ms_p90": 1000 * sorted(times)[int(0.9 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainings", type=int, default=30)
    parser.add_argument("--epochs", type=int, help="Search epochs [default: the recipe's 15].")
    parser.add_argument("--tasks", type=int, default=200, help="Empty tasks timed for the overhead.")
    parser.add_argument("--table", action="store_true",
                        help="nb201 (C=8, N=2) trained on digits, latencies looked up in HW-NAS-Bench's raspi4 "
                             "column (budget: its 25%% quantile): no measurement noise, so both runs must train "
                             "the same architectures.")
    parser.add_argument("--candidates-per-round", type=int, default=4,
                        help="Trainings per round (+1 exploration): the most that run side by side.")
    parser.add_argument("--quick", action="store_true", help="8 trainings of 3 epochs, 50 tasks.")
    args = parser.parse_args()
    if args.quick:
        args.trainings, args.epochs, args.tasks = 8, 3, 50
    import logging

    logging.disable(logging.WARNING)
    from hwnas.profiling import ProfileStore, profile_space
    from hwnas.spaces import create_space

    with tempfile.TemporaryDirectory(prefix="hwnas-parallel-") as tmp:
        tmp = Path(tmp)
        profiles = tmp / "profiles"
        table, budget_ms = None, 0.05
        if args.table:
            import csv

            import numpy as np

            with open(SHARED / "cifar100.csv", newline="") as handle:
                rows = [(r["arch"], float(r["raspi4_latency_ms"])) for r in csv.DictReader(handle)]
            table = tmp / "raspi4.csv"
            table.write_text("arch,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in rows))
            budget_ms = float(np.quantile([v for _, v in rows], 0.25))
            profiles.mkdir()
        else:
            profile_space(ProfileStore(profiles, "host"), create_space("mobilenet"), samples=120,
                          input_shape=(1, 8, 8), num_classes=10)
        runs = {}
        for workers in (1, 2):  # each run starts from its own copy of the same profile
            copy = tmp / f"profiles-w{workers}"
            shutil.copytree(profiles, copy)
            runs[workers] = search(tmp / f"w{workers}", workers=workers, trainings=args.trainings,
                                   epochs=args.epochs, profiles=copy, candidates=args.candidates_per_round,
                                   table=table, budget_ms=budget_ms)
            print(f"workers {workers}: {runs[workers]['wall_s']:.1f} s", flush=True)
    cost = overhead(args.tasks)
    pair = side_by_side(args.epochs)
    serial, parallel = runs[1], runs[2]
    speedup = serial["wall_s"] / parallel["wall_s"]
    share = serial["train_s"] / serial["wall_s"]
    rows = [["serial", f"{serial['wall_s']:.1f}", "1.00", f"{share:.2f}"],
            ["--workers 2", f"{parallel['wall_s']:.1f}", f"{speedup:.2f}", ""]]
    print(f"\ndigits search, {args.trainings} trainings, {args.epochs or 15} epochs, "
          f"{args.candidates_per_round} candidates per round, seed 0")
    print_table(["run", "wall s", "speed-up", "training share"], rows)
    same = serial["records"] == parallel["records"]
    print(f"same answer: {serial['best'] == parallel['best']}; same records: {same}")
    print(f"Amdahl bound at 2 workers with this training share: {1 / ((1 - share) + share / 2):.2f}")
    print(f"one training alone {pair['alone_s']:.1f} s, two at once {pair['two_at_once_s']:.1f} s: each "
          f"{pair['slowdown']:.2f}x slower beside another, throughput x{pair['throughput_gain']:.2f} at best")
    print(f"Ray: local start-up {cost['startup_s']:.1f} s; per task {cost['task_ms_median']:.2f} ms median "
          f"(p90 {cost['task_ms_p90']:.2f} ms round trip)")
    name = "parallel" + ("-table" if args.table else "") + ("-quick" if args.quick else "") + (
        f"-c{args.candidates_per_round}" if args.candidates_per_round != 4 else "")
    path = write_result(name, {
        "trainings": args.trainings, "candidates_per_round": args.candidates_per_round,
        "task": "nb201 C8 N2 on digits, raspi4 latency table" if args.table else "mobilenet on digits, host", "epochs": args.epochs or 15, "serial_s": serial["wall_s"],
        "workers2_s": parallel["wall_s"], "speedup": speedup, "target_speedup": 1.6, "training_share": share,
        "amdahl_bound": 1 / ((1 - share) + share / 2), "same_answer": serial["best"] == parallel["best"],
        "same_records": same, "ray": cost, "side_by_side": pair})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
