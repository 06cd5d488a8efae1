"""Parallel trainings on Ray (issue 17): a digits search serial vs ``--workers 2``, side by side in one run, and
Ray's overhead per task.

1. The host is profiled once (shared by both runs, so neither pays for it).
2. The same search (mobilenet on digits, default recipe, ``--trainings`` trainings, seed 0) runs serially and
   with ``--workers 2`` on a local Ray (each in its own evaluation store, so both really train). Reported:
   wall time of each, the speed-up, whether the answer and every trained record are the same, and the share
   of the serial run spent inside trainings (the rest -- controller learning, predictor fits, measurements --
   stays on the driver: the Amdahl limit of the speed-up).
3. Ray's overhead: start-up of a local Ray, and the round trip of ``--tasks`` empty jobs through the executor
   (one at a time) minus the same jobs called in-process.

Run on an otherwise idle machine: ``python benchmarks/parallel.py`` (``--quick``: 8 trainings of 3 epochs).
Writes ``benchmarks/results/parallel[-quick].json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402


class _Empty:
    local = False

    def __call__(self):
        return None


def search(folder: Path, *, workers: int, trainings: int, epochs: int | None, profiles: Path) -> dict:
    from hwnas.cluster import make_executor
    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir
    from hwnas.search.runner import run_search
    from hwnas.training.recipe import DEFAULT_RECIPE

    recipe = DEFAULT_RECIPE if epochs is None else DEFAULT_RECIPE.with_fidelity(epochs=epochs)
    config = RunConfig(budget_ms=0.05, dataset="digits", recipe=recipe, max_trainings=trainings,
                       profiles_dir=str(profiles), store=str(folder / "evals.sqlite")).resolved()
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
    return {"wall_s": wall, "train_s": train_s, "best": result["best"]["arch"] if result["best"] else None,
            "records": [(v.arch, v.accuracy) for v in verified]}


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
        profile_space(ProfileStore(profiles, "host"), create_space("mobilenet"), samples=120, input_shape=(1, 8, 8),
                      num_classes=10)
        runs = {}
        for workers in (1, 2):
            runs[workers] = search(tmp / f"w{workers}", workers=workers, trainings=args.trainings,
                                   epochs=args.epochs, profiles=profiles)
            print(f"workers {workers}: {runs[workers]['wall_s']:.1f} s", flush=True)
    cost = overhead(args.tasks)
    serial, parallel = runs[1], runs[2]
    speedup = serial["wall_s"] / parallel["wall_s"]
    share = serial["train_s"] / serial["wall_s"]
    rows = [["serial", f"{serial['wall_s']:.1f}", "1.00", f"{share:.2f}"],
            ["--workers 2", f"{parallel['wall_s']:.1f}", f"{speedup:.2f}", ""]]
    print(f"\ndigits search, {args.trainings} trainings, {args.epochs or 15} epochs, seed 0")
    print_table(["run", "wall s", "speed-up", "training share"], rows)
    same = serial["records"] == parallel["records"]
    print(f"same answer: {serial['best'] == parallel['best']}; same records: {same}")
    print(f"Amdahl bound at 2 workers with this training share: {1 / ((1 - share) + share / 2):.2f}")
    print(f"Ray: local start-up {cost['startup_s']:.1f} s; per task {cost['task_ms_median']:.2f} ms median "
          f"(p90 {cost['task_ms_p90']:.2f} ms round trip)")
    path = write_result("parallel" + ("-quick" if args.quick else ""), {
        "trainings": args.trainings, "epochs": args.epochs or 15, "serial_s": serial["wall_s"],
        "workers2_s": parallel["wall_s"], "speedup": speedup, "target_speedup": 1.6, "training_share": share,
        "amdahl_bound": 1 / ((1 - share) + share / 2), "same_answer": serial["best"] == parallel["best"],
        "same_records": same, "ray": cost})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
