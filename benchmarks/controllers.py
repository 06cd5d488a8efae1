"""Every controller under the same real-evaluation budget on a synthetic nb201 table with a known optimum.

The full nb201 space (15,625 cells) is tabulated from a known function of the operations plus fixed noise
(``benchmarks/_synthetic.py``: accuracy and latency per edge operation), written as ``arch,accuracy`` and
``arch,latency_ms`` CSVs, and ``hwnas.search.benchmark.run_benchmark`` — what ``hwnas benchmark`` runs — compares
the controllers on them: same seeds, same settings, each run's predictors knowing only its own verifications.
Reported: median over seeds of the regret (true best accuracy under the budget minus the best verified one)
and of the best verified accuracy at 25/50/100 evaluations.

    python benchmarks/controllers.py            # full: 7 controllers x 5 seeds x 100 evaluations (about an hour)
    python benchmarks/controllers.py --quick    # smoke: 7 controllers x 2 seeds x 12 evaluations, small rounds
    python benchmarks/controllers.py --mode progressive
    python benchmarks/controllers.py --local-search-steps 0   # ablation: the loop without its local search

Prints the table and writes ``benchmarks/results/controllers[-progressive][-lsN][-quick].json`` (the curves,
plot and run directories go to ``benchmarks/results/controllers[...]/``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_result  # noqa: E402
from _synthetic import make_table  # noqa: E402

CONTROLLERS = ["ppo", "reinforce", "a2c", "qlearning", "sarsa", "random", "evolution"]


def write_tables(folder: Path, *, seed: int) -> tuple[Path, Path, object]:
    table = make_table(seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    acc, lat = folder / "accuracy.csv", folder / "latency.csv"
    acc.write_text("arch,accuracy\n" + "".join(f"{s},{a:.6f}\n" for s, a in zip(table.strings, table.accuracy)))
    lat.write_text("arch,latency_ms\n" + "".join(f"{s},{t:.6f}\n" for s, t in zip(table.strings, table.latency_ms)))
    return acc, lat, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 seeds, 12 evaluations)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--max-trainings", type=int, default=None)
    parser.add_argument("--controllers", default=",".join(CONTROLLERS))
    parser.add_argument("--mode", choices=["oneshot", "progressive"], default="oneshot")
    parser.add_argument("--budget-quantile", type=float, default=0.3,
                        help="latency budget = this quantile of the table's latencies")
    parser.add_argument("--local-search-steps", type=int, default=3,
                        help="the loop's local search on the predicted reward (0: off)")
    args = parser.parse_args()
    from hwnas.search.benchmark import run_benchmark
    from hwnas.search.config import RunConfig

    seeds = args.seeds or (2 if args.quick else 5)
    max_trainings = args.max_trainings or (12 if args.quick else 100)
    name = ("controllers" + ("-progressive" if args.mode == "progressive" else "")
            + (f"-ls{args.local_search_steps}" if args.local_search_steps != 3 else "")
            + ("-quick" if args.quick else ""))
    folder = RESULTS / name
    shutil.rmtree(folder, ignore_errors=True)  # a fresh comparison every time
    acc, lat, table = write_tables(folder / "tables", seed=0)
    budget = float(np.quantile(table.latency_ms, args.budget_quantile))
    config = RunConfig(space="nb201", budget_ms=budget, reward="hard", max_trainings=max_trainings,
                       initial_trainings=4 if args.quick else 8, candidates_per_round=4,
                       archs_per_round=300 if args.quick else 2000, explore=0.5,
                       local_search_steps=args.local_search_steps, profile_samples=120, accuracy_table=str(acc),
                       latency_table=str(lat), mode=args.mode,
                       predictor_options={"ensemble_size": 2, "n_estimators": 60} if args.quick else {}).resolved()
    controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    payload = run_benchmark(config, controllers=controllers, seeds=range(seeds), out=folder / "runs",
                            echo=print)
    marks = payload["checkpoints"]
    rows = []
    for controller in controllers:
        cells = {r["evaluations"]: r for r in payload["summary"] if r["controller"] == controller}
        rows.append([controller] + [cells[m]["median_regret"] for m in marks]
                    + [cells[m]["median_best_accuracy"] for m in marks])
    print(f"\nnb201 synthetic table, budget {budget:.3f} ms (q{args.budget_quantile:g} of latencies), "
          f"{args.mode}, {seeds} seeds; true best {payload['true_best']['accuracy']:.4f}")
    print_table(["controller"] + [f"regret@{m}" for m in marks] + [f"acc@{m}" for m in marks], rows)
    path = write_result(name, {"budget_ms": budget, "seeds": seeds, "max_trainings": max_trainings,
                               "mode": args.mode, "settings": payload["settings"], "true_best": payload["true_best"],
                               "checkpoints": marks, "summary": payload["summary"],
                               "curves_dir": str((folder / "runs").relative_to(RESULTS.parent))})
    print(f"\nwrote {path}; curves and plot in {folder / 'runs'}")


if __name__ == "__main__":
    main()
