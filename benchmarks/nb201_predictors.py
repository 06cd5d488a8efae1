"""Accuracy predictors on the real NAS-Bench-201 tables (issue 12, item 2): do they rank the *top*?

    .venv/bin/python benchmarks/nb201_predictors.py           # full run: 5 seeds, both tables (~6 min, 2 cores)
    .venv/bin/python benchmarks/nb201_predictors.py --quick   # smoke run (~30 s): CIFAR-100, 2 seeds
    .venv/bin/python benchmarks/nb201_predictors.py --variants baseline,default --seeds 10

Data: ``/work/shared/benchdata/nb201/{cifar100,imagenet16-120}.csv`` (``--data``), the published test
accuracy of all 15,625 cells. For each table, each training-set size N (25/50/100/200, drawn uniformly at
random; the draw depends on the seed and N only, so every variant sees the same training sets) and each seed,
every variant is fitted on N cells and predicts all 15,625. Reported, as medians over seeds:

* ``tau_all``: Kendall tau over every cell;
* ``tau_top``: Kendall tau among the true top 10% (by table accuracy): does it order the cells a search ends
  on;
* ``prec_top``: share of the true top 10% among the predicted top 10%.

Variants (``VARIANTS``; the full run takes those up to ``default``, the rest on request) change the features
(the space's structure features on or off, by group), the XGBoost objective (regression or ``rank:pairwise``),
the target (raw accuracies or normal scores of their ranks), the ensemble size and the trees. Prints one
table per data set and writes ``benchmarks/results/nb201_predictors.json`` (``-quick``: ``…-quick.json``; any
other subset: ``…-custom.json``). ``--ceiling`` adds what the features reach with 12,500 training points and
the noise floor among identical effective cells (see :func:`ceiling`).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, print_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwnas.predictors import AccuracyPredictor, ArchFeaturizer  # noqa: E402
from hwnas.predictors.metrics import kendall  # noqa: E402
from hwnas.spaces.nb201 import CELL_STATS  # noqa: E402

logger = logging.getLogger(__name__)

DATA = Path("/work/shared/benchdata/nb201")
TABLES = {"cifar100": ((3, 32, 32), 100), "imagenet16-120": ((3, 16, 16), 120)}
SIZES = (25, 50, 100, 200)
STATS = tuple(f"struct:{name}" for name in CELL_STATS)

# name -> (featurizer options, predictor options (None: the library's default), target transform done here).
# Predictor options start from target="raw" (the old regression on accuracies) unless they say otherwise.
NO_STRUCT = {"structure": False}
RAW = {"target": "raw"}
Q = {"target": "quantile"}
NO_ONEHOT = {"encoding": False}
VARIANTS: dict[str, tuple[dict, dict | None, str]] = {
    "baseline": (NO_STRUCT, RAW, "raw"),
    "+counts": ({"drop": ("struct:eff:", "struct:path:") + STATS}, RAW, "raw"),
    "+eff": ({"drop": ("struct:path:",) + STATS}, RAW, "raw"),
    "+eff+paths": ({"drop": STATS}, RAW, "raw"),
    "+eff+paths+stats": ({}, RAW, "raw"),
    "struct-only": ({"encoding": False, "analytic": False}, RAW, "raw"),
    "no-raw-onehot": (NO_ONEHOT, RAW, "raw"),
    "baseline+quantile": (NO_STRUCT, Q, "raw"),
    "all+quantile": ({}, Q, "raw"),
    "no-raw+quantile": (NO_ONEHOT, Q, "raw"),
    "all+rank": ({}, {"objective": "rank:pairwise", **RAW}, "raw"),
    "baseline+rank": (NO_STRUCT, {"objective": "rank:pairwise", **RAW}, "raw"),
    "all+q+ens1": ({}, {"ensemble_size": 1, **Q}, "raw"),
    "all+q+ens4": ({}, {"ensemble_size": 4, **Q}, "raw"),
    "all+q+d4n500": ({}, {"max_depth": 4, "n_estimators": 500, **Q}, "raw"),
    "default": ({}, None, "raw"),  # AccuracyPredictor exactly as the library builds it
    # exploratory, not in the full run by default (--variants):
    "all+rank+lr.1": ({}, {"objective": "rank:pairwise", "learning_rate": 0.1, **RAW}, "raw"),
    "all+logerr": ({}, RAW, "log_error"),
    "struct-only+quantile": ({"encoding": False, "analytic": False}, Q, "raw"),
    "struct-only+rank": ({"encoding": False, "analytic": False}, {"objective": "rank:pairwise", **RAW},
                         "raw"),
    "no-raw+rank": (NO_ONEHOT, {"objective": "rank:pairwise", **RAW}, "raw"),
    "no-raw+q+d2n600": (NO_ONEHOT, {"max_depth": 2, "n_estimators": 600, **Q}, "raw"),
    "no-raw+q+col.5": (NO_ONEHOT, {"colsample_bytree": 0.5, **Q}, "raw"),
}
FULL_VARIANTS = tuple(VARIANTS)[:tuple(VARIANTS).index("default") + 1]
QUICK_VARIANTS = ("baseline", "+eff+paths+stats", "default")


def read_table(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["arch"] for r in rows], np.array([float(r["test_accuracy"]) for r in rows])


def transform_target(y: np.ndarray, kind: str) -> np.ndarray:
    """A monotone transform of the training accuracies (the ranking metrics ignore the inverse)."""
    if kind == "raw":
        return y
    if kind == "log_error":  # spreads the top: 0.70 and 0.72 differ more than 0.10 and 0.12
        return -np.log1p(-np.clip(y, 0.0, 0.999))
    raise ValueError(f"unknown target transform {kind!r}")


def top_metrics(y: np.ndarray, pred: np.ndarray, top: np.ndarray) -> dict[str, float]:
    k = len(top)
    predicted_top = np.argsort(-pred, kind="stable")[:k]
    return {"tau_all": kendall(y, pred), "tau_top": kendall(y[top], pred[top]),
            "prec_top": len(set(predicted_top.tolist()) & set(top.tolist())) / k}


def run_job(job: tuple) -> dict:
    """One (table, variant): every size and seed. Returns per-run metrics."""
    table, variant, sizes, seeds, data = job
    features, options, target = VARIANTS[variant]
    input_shape, classes = TABLES[table]
    archs, y = read_table(Path(data) / f"{table}.csv")
    top = np.argsort(-y, kind="stable")[:len(y) // 10]
    task = {"space": "nb201", "input_shape": input_shape, "num_classes": classes}
    featurizer = (AccuracyPredictor(**task).make_featurizer() if options is None
                  else ArchFeaturizer(**task, **features).fit())
    t0 = time.perf_counter()
    featurizer.transform(archs)  # fills the row cache once
    transform_s = time.perf_counter() - t0
    runs = []
    for n in sizes:
        for seed in seeds:
            train = np.random.default_rng([seed, n]).choice(len(archs), size=n, replace=False)
            t0 = time.perf_counter()
            model = AccuracyPredictor(**task, random_state=seed, **(options or {})).fit(
                [archs[i] for i in train], transform_target(y[train], target), featurizer=featurizer)
            fit_s = time.perf_counter() - t0
            pred = model.predict(archs)
            runs.append({"n_train": n, "seed": seed, "fit_s": fit_s, **top_metrics(y, pred, top)})
    return {"table": table, "variant": variant, "n_features": len(featurizer.feature_names_),
            "transform_s": transform_s, "runs": runs}


def ceiling(table: str, data: str) -> dict:
    """What the features allow with (almost) all the data, and the noise among identical effective cells.

    ``cv5``: the library's default predictor, 5-fold cross-validated on all 15,625 cells (12,500 training
    points per fold). ``same_cell``: every cell predicted by the mean accuracy of the *other* cells with the
    same effective cell (nb201 strings that differ only in dead edges): only training noise separates them, so
    its tau_top bounds what any predictor of the architecture can reach among them.
    """
    from hwnas.spaces import create_space
    from hwnas.spaces.nb201 import EDGES, edge_label, effective_ops

    input_shape, classes = TABLES[table]
    archs, y = read_table(Path(data) / f"{table}.csv")
    top = np.argsort(-y, kind="stable")[:len(y) // 10]
    fold = np.random.default_rng(0).integers(0, 5, len(y))
    pred = np.zeros(len(y))
    task = {"space": "nb201", "input_shape": input_shape, "num_classes": classes}
    featurizer = AccuracyPredictor(**task).make_featurizer()
    for k in range(5):
        model = AccuracyPredictor(**task, ensemble_size=1, n_estimators=500, max_depth=6).fit(
            [a for a, f in zip(archs, fold) if f != k], y[fold != k], featurizer=featurizer)
        pred[fold == k] = model.predict([a for a, f in zip(archs, fold) if f == k])
    space = create_space("nb201")
    keys = [effective_ops([space.parse(a)[edge_label(to, frm)] for to, frm in EDGES]) for a in archs]
    sums: dict[tuple, list[float]] = {}
    for key, value in zip(keys, y):
        sums.setdefault(key, [0.0, 0])[0] += value
        sums[key][1] += 1
    same = np.array([(sums[k][0] - v) / (sums[k][1] - 1) if sums[k][1] > 1 else np.nan
                     for k, v in zip(keys, y)])
    shared = top[~np.isnan(same[top])]
    return {"table": table, "cv5": top_metrics(y, pred, top),
            "same_cell": {"tau_top": kendall(y[shared], same[shared]), "top_cells_with_a_twin": len(shared)}}


def describe(variant: str) -> dict:
    features, options, transform = VARIANTS[variant]
    return {"features": {k: list(x) if isinstance(x, tuple) else x for k, x in features.items()},
            "predictor": options, "transform": transform}


def summarise(results: list[dict], sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for result in results:
        row = {"table": result["table"], "variant": result["variant"], "n_features": result["n_features"]}
        for n in sizes:
            runs = [r for r in result["runs"] if r["n_train"] == n]
            for key in ("tau_all", "tau_top", "prec_top"):
                row[f"{key}@{n}"] = float(np.median([r[key] for r in runs]))
            row[f"fit_s@{n}"] = float(np.median([r["fit_s"] for r in runs]))
        rows.append(row)
    return rows


def _ceiling_job(job: tuple) -> dict:
    return ceiling(*job)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="CIFAR-100 only, N in 50/100, 2 seeds, 3 variants")
    parser.add_argument("--seeds", type=int, default=5, help="training draws per size (default 5)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated subset of the tables")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated training-set sizes (default 25,50,100,200)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also the ceiling: 5-fold CV on all cells, and the noise among identical cells")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"folder of the tables (default {DATA})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    default_variants = QUICK_VARIANTS if args.quick else FULL_VARIANTS
    variants = args.variants.split(",") if args.variants else list(default_variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    tables = ["cifar100"] if args.quick else args.tables.split(",")
    sizes = (tuple(int(n) for n in args.sizes.split(",")) if args.sizes
             else (50, 100) if args.quick else SIZES)
    seeds = list(range(2 if args.quick else args.seeds))
    jobs = [(t, v, sizes, seeds, str(args.data)) for t in tables for v in variants]
    # Longest first, so that the pool does not end on one slow job.
    jobs.sort(key=lambda j: "n_estimators" in (VARIANTS[j[1]][1] or {}), reverse=True)
    t0 = time.perf_counter()
    results = map_jobs(run_job, jobs, args.workers)
    wall = time.perf_counter() - t0
    order = {(t, v): i for i, (t, v) in enumerate((t, v) for t in tables for v in variants)}
    results.sort(key=lambda r: order[(r["table"], r["variant"])])
    rows = summarise(results, sizes)
    for table in tables:
        print(f"\n{table}: medians over {len(seeds)} seeds; tau_all / tau_top (true top 10%) / prec_top")
        header = ["variant", "feats"] + [f"{k}@{n}" for k in ("tau_all", "tau_top") for n in sizes] + \
                 [f"prec_top@{n}" for n in sizes]
        print_table(header, [[r["variant"], r["n_features"]] + [round(r[h], 3) for h in header[2:]]
                             for r in rows if r["table"] == table])
    ceilings = (map_jobs(_ceiling_job, [(t, str(args.data)) for t in tables], args.workers)
                if args.ceiling else [])
    for c in ceilings:
        print(f"\nceiling {c['table']}: 5-fold CV on all cells {c['cv5']}; same effective cell: tau_top "
              f"{c['same_cell']['tau_top']:.3f} over the {c['same_cell']['top_cells_with_a_twin']} top cells "
              f"that have a twin")
    wall = time.perf_counter() - t0
    print(f"\nwall {wall:.0f} s with {args.workers} worker(s)")
    custom = args.variants or args.sizes or args.seeds != 5 or args.tables != ",".join(TABLES)
    name = "nb201_predictors" + ("-quick" if args.quick else "-custom" if custom else "")
    path = write_result(name,
                        {"tables": tables, "sizes": list(sizes), "seeds": seeds, "workers": args.workers,
                         "wall_s": wall, "variants": {v: describe(v) for v in variants},
                         "summary": rows, "ceiling": ceilings, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
