"""Training throughput on the default task: architectures per minute at the default recipe, and how the
time per training scales with epochs, threads and parallel processes; and the data pipeline (``--pipeline``).

    python benchmarks/training.py            # full: 10 random archs, epochs 5..30, threads 1..all, workers
    python benchmarks/training.py --quick    # smoke: 2 archs at 2 epochs, epochs {1, 2}, threads {1, all}
    python benchmarks/training.py --pipeline          # the data pipeline (see _pipeline.py), ~10 min
    python benchmarks/training.py --pipeline --quick  # its smoke version
    python benchmarks/training.py --pipeline --parts a  # only (a): the trainer against a plain loop

Also checks the issue's target: the reference architecture reaches >= 95% validation accuracy at the
default recipe within a minute. Prints tables and writes ``benchmarks/results/training[-quick].json``
(``training-pipeline[-quick].json`` with ``--pipeline``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402

REFERENCE = "24:k3e3/32:k5e3/48:k3e6.k3e6/64:k3e6"  # a sensible small mobilenet for 8x8 digits


def _run(job: tuple) -> dict:
    arch, epochs, threads, seed = job
    from hwnas.data import create_dataset
    from hwnas.spaces import create_space
    from hwnas.training import DEFAULT_RECIPE, train

    space = create_space("mobilenet")
    recipe = DEFAULT_RECIPE if epochs is None else DEFAULT_RECIPE.with_fidelity(epochs=epochs)
    from hwnas.training import available_cores

    result = train(space, space.parse(arch), create_dataset("digits"), recipe=recipe, seed=seed,
                   threads=available_cores() if threads is None else threads)  # None: every core
    return {"arch": arch, "epochs": recipe.epochs, "threads": result.threads, "seed": seed,
            "val_accuracy": result.val_accuracy, "wall_time_s": result.wall_time_s, "params": result.params}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke mode (well under a minute).")
    parser.add_argument("--archs", type=int, default=10, help="Random architectures for the throughput.")
    parser.add_argument("--pipeline", action="store_true",
                        help="Measure the data pipeline instead (trainer vs plain loop, streaming memory and speed).")
    parser.add_argument("--parts", default="abc", help="With --pipeline: which of (a), (b), (c) to measure.")
    args = parser.parse_args(argv)
    if args.pipeline:
        from _pipeline import run_pipeline

        return run_pipeline(quick=args.quick, parts=args.parts)

    from hwnas.spaces import create_space
    from hwnas.training import DEFAULT_RECIPE, available_cores

    cores = available_cores()
    n_archs = 2 if args.quick else args.archs
    base_epochs = 2 if args.quick else None  # None: the default recipe's epochs
    epoch_grid = [1, 2] if args.quick else [5, 10, 15, 30]
    thread_grid = sorted({1, cores}) if args.quick else sorted({1, 2, 4, 8, cores} & set(range(1, cores + 1)))
    scale_epochs = 1 if args.quick else DEFAULT_RECIPE.epochs
    space = create_space("mobilenet")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng).string for _ in range(n_archs)]
    out: dict = {"quick": args.quick, "cores": cores, "default_recipe": DEFAULT_RECIPE.to_dict(),
                 "recipe_hash": DEFAULT_RECIPE.hash()}

    # 1. Throughput at the default recipe (all cores, one process) and the accuracy target.
    _run((REFERENCE, 1, 1, 0))  # warm-up: imports, data loading, thread pools
    runs = [_run((a, base_epochs, None, 0)) for a in archs]
    ref = _run((REFERENCE, base_epochs, None, 0))
    mean_s = float(np.mean([r["wall_time_s"] for r in runs]))
    print(f"default recipe ({runs[0]['epochs']} epochs, {cores} threads): {60 / mean_s:.1f} "
          f"architectures/minute "
          f"(mean {mean_s:.1f} s, mean val accuracy {np.mean([r['val_accuracy'] for r in runs]):.4f})")
    target = ref["val_accuracy"] >= 0.95 and ref["wall_time_s"] <= 60
    verdict = "n/a in quick mode (reduced epochs)" if args.quick else ("met" if target else "NOT met")
    print(f"reference {REFERENCE}: val accuracy {ref['val_accuracy']:.4f} in {ref['wall_time_s']:.1f} s; "
          f"target >= 95% within 60 s: {verdict}")
    out.update(throughput={"archs_per_minute": 60 / mean_s, "mean_s": mean_s, "runs": runs},
               reference=ref, target_met=bool(target) if not args.quick else None)

    # 2. Scaling with epochs (reference arch, all cores).
    rows = []
    for epochs in epoch_grid:
        r = _run((REFERENCE, epochs, None, 0))
        rows.append((epochs, r["wall_time_s"], r["wall_time_s"] / epochs, r["val_accuracy"]))
    print("\nscaling with epochs (reference arch)")
    print_table(("epochs", "time s", "s/epoch", "val acc"), rows)
    out["epochs_scaling"] = [dict(zip(("epochs", "time_s", "s_per_epoch", "val_accuracy"), r)) for r in rows]

    # 3. Scaling with threads (one process).
    rows = []
    for threads in thread_grid:
        r = _run((REFERENCE, scale_epochs, threads, 0))
        rows.append((threads, r["wall_time_s"], 60 / r["wall_time_s"], r["val_accuracy"]))
    print(f"\nscaling with threads (reference arch, {scale_epochs} epochs, one process)")
    print_table(("threads", "time s", "archs/min", "val acc"), rows)
    out["threads_scaling"] = [dict(zip(("threads", "time_s", "archs_per_minute", "val_accuracy"), r))
                              for r in rows]

    # 4. Parallel processes with one thread each (throughput of a search's training queue).
    if cores > 1 and not args.quick:
        jobs = [(a, scale_epochs, 1, 0) for a in archs]
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(cores) as pool:
            pool.map(_run, jobs[:cores])  # warm the workers up
            start = time.perf_counter()
            pool.map(_run, jobs, chunksize=1)
        elapsed = time.perf_counter() - start
        print(f"\n{cores} processes x 1 thread: {60 * len(jobs) / elapsed:.1f} architectures/minute "
              f"({len(jobs)} archs in {elapsed:.1f} s)")
        out["processes"] = {"workers": cores, "archs_per_minute": 60 * len(jobs) / elapsed,
                            "elapsed_s": elapsed}

    path = write_result("training-quick" if args.quick else "training", out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
