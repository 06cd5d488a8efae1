"""Predictor benchmarks (issue 5): learning curves of the latency and accuracy predictors, and throughput.

    .venv/bin/python benchmarks/predictors.py            # full run (see the estimate in --help's epilog)
    .venv/bin/python benchmarks/predictors.py --quick    # smoke run (~1-2 min): existing profile, tiny digits

1. Latency, mobilenet at the digits shape (1x8x8), from a device profile (``--profiles-dir``/``--device``;
   topped up with ``profile_space`` when it holds fewer than max(N) + held-out records). A fixed held-out set
   (``--latency-holdout`` records, never trained on); for each N in 50/100/200/500: share within +-5%/+-10%,
   MAPE, median absolute relative error, RMSE, Spearman, Kendall. Noise floor: ``--noise-archs`` held-out
   architectures measured once more (``profile_arch``), median |b - a| / a between the two measurements; the
   target is predictor median error <= 1.5x that. Ablation at the largest N: encoding only / analytic only /
   both.
2. Accuracy, (a) a synthetic nb201 table (known function of the ops + noise; ``_synthetic.py``), N in
   50/100/200/500, a fixed held-out set, median over ``--repeats`` training draws; (b) digits: real trainings
   at low fidelity through the evaluation store (``--store``, reused across reruns), N in 25/50/100, the
   rest held out. Kendall tau, Spearman, MAE, top-10 precision.
3. Throughput: predictions per second on batches of 10,000 architectures, featurisation included (cold and
   warm unit caches) and XGBoost alone, with 1 thread and all cores.

Prints tables and writes ``benchmarks/results/predictors[-quick].json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, print_table, write_result  # noqa: E402
from _synthetic import make_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwnas.predictors import AccuracyPredictor, ArchFeaturizer, LatencyPredictor  # noqa: E402
from hwnas.predictors.metrics import accuracy_metrics, latency_metrics  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402

SHAPE, CLASSES = (1, 8, 8), 10  # the digits task


def median_rel_error(y_true, y_pred) -> float:
    return float(np.median(np.abs(np.asarray(y_pred) / np.asarray(y_true) - 1.0)))


# -- 1. latency ----------------------------------------------------------------------------------------------
def latency_records(args, need: int) -> tuple[list[str], np.ndarray, dict]:
    """Records of mobilenet@1x8x8 in the profile, topped up to ``need`` by measuring (unless --quick)."""
    from hwnas.profiling import Conditions, ProfileStore, profile_space

    store = ProfileStore(args.profiles_dir, args.device)
    fp = store.fingerprint or {}
    conditions = Conditions(provider=fp.get("provider", "cpu"), threads=int(fp.get("threads", 1)),
                            batch_size=int(fp.get("batch_size", 1)), precision=fp.get("precision", "fp32"))
    held = len(store.records("mobilenet", SHAPE)) if store.exists else 0
    profiled = 0
    if held < need and not args.quick:
        print(f"profile {store.path} holds {held} mobilenet@1x8x8 records; measuring {need - held} more "
              f"(~{(need - held) * 0.3 / 60:.0f} min)", flush=True)
        summary = profile_space(store, create_space("mobilenet"), samples=need, input_shape=SHAPE,
                                num_classes=CLASSES, conditions=conditions, seed=args.seed)
        profiled = summary.measured
    records = store.records("mobilenet", SHAPE) if store.exists else []
    if len(records) < 40:
        raise SystemExit(f"profile {store.path} holds {len(records)} mobilenet@1x8x8 records; run "
                         f"'hwnas profile --device {args.device} --space mobilenet --input-shape 1x8x8' "
                         f"first")
    return ([r["arch"] for r in records], np.array([float(r["median_ms"]) for r in records]),
            {"conditions": conditions.to_dict(), "profiled_now": profiled, "records": len(records)})


def noise_floor(archs: list[str], first: np.ndarray, conditions: dict, seed: int) -> dict:
    from hwnas.profiling import Conditions, profile_arch

    space = create_space("mobilenet")
    second = np.array([profile_arch(space, a, SHAPE, CLASSES, conditions=Conditions(**conditions),
                                    seed=seed)["median_ms"] for a in archs])
    rel = np.abs(second - first) / first
    return {"archs": len(archs), "median": float(np.median(rel)), "p90": float(np.percentile(rel, 90)),
            "within_5pct": float(np.mean(rel <= 0.05)), "within_10pct": float(np.mean(rel <= 0.10))}


def latency_curve(args) -> tuple[dict, list[str], np.ndarray]:
    """The learning curve, ablation and noise floor; also returns all profile records (archs, latencies)."""
    sizes = [n for n in args.latency_sizes]
    archs, y, info = latency_records(args, max(sizes) + args.latency_holdout)
    order = np.random.default_rng(args.seed).permutation(len(archs))
    holdout = order[:args.latency_holdout]
    pool = order[args.latency_holdout:]
    sizes = [n for n in sizes if n <= len(pool)] or [len(pool)]
    test_archs, test_y = [archs[i] for i in holdout], y[holdout]
    featurizer = LatencyPredictor(space="mobilenet", input_shape=SHAPE).make_featurizer()
    rows = []
    for n in sizes:
        train = pool[:n]
        t0 = time.perf_counter()
        model = LatencyPredictor(space="mobilenet", input_shape=SHAPE, random_state=args.seed).fit(
            [archs[i] for i in train], y[train], featurizer=featurizer)
        fit_s = time.perf_counter() - t0
        pred = model.predict(test_archs)
        rows.append({"n_train": n, "fit_s": fit_s, **latency_metrics(test_y, pred),
                     "median_rel_error": median_rel_error(test_y, pred)})
    ablation = []
    train = pool[:sizes[-1]]
    for name, enc, ana in (("encoding only", True, False), ("analytic only", False, True),
                           ("encoding+analytic", True, True)):
        feats = ArchFeaturizer(space="mobilenet", input_shape=SHAPE, encoding=enc, analytic=ana).fit()
        model = LatencyPredictor(space="mobilenet", input_shape=SHAPE, random_state=args.seed).fit(
            [archs[i] for i in train], y[train], featurizer=feats)
        pred = model.predict(test_archs)
        ablation.append({"features": name, "n_train": len(train), "n_features": len(feats.feature_names_),
                         **latency_metrics(test_y, pred), "median_rel_error": median_rel_error(test_y, pred)})
    noise_idx = holdout[:args.noise_archs]
    noise = noise_floor([archs[i] for i in noise_idx], y[noise_idx], info["conditions"], args.seed)
    largest = rows[-1]
    return {"profile": info, "holdout": len(holdout), "latency_ms_range": [float(y.min()), float(y.max())],
            "curve": rows, "ablation": ablation, "noise_floor": noise,
            "error_over_noise": largest["median_rel_error"] / max(noise["median"], 1e-12),
            "targets": {"within_10pct_at_largest_n": largest["within_10pct"], "goal_within_10pct": 0.99,
                        "goal_error_over_noise": 1.5}}, archs, y


# -- 2. accuracy ---------------------------------------------------------------------------------------------
def accuracy_synthetic(args) -> dict:
    table = make_table(noise=args.synthetic_noise, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(table.strings))
    holdout, pool = order[:args.accuracy_holdout], order[args.accuracy_holdout:]
    test = [table.strings[i] for i in holdout]
    featurizer = AccuracyPredictor(space="nb201", input_shape=SHAPE).make_featurizer()
    rows = []
    for n in args.accuracy_sizes:
        per_repeat = []
        for r in range(args.repeats):
            train = np.random.default_rng([args.seed, r]).choice(pool, size=n, replace=False)
            model = AccuracyPredictor(space="nb201", input_shape=SHAPE, random_state=r).fit(
                [table.strings[i] for i in train], table.accuracy[train], featurizer=featurizer)
            per_repeat.append(accuracy_metrics(table.accuracy[holdout], model.predict(test)))
        rows.append({"n_train": n, "repeats": args.repeats,
                     **{k: float(np.median([m[k] for m in per_repeat])) for k in per_repeat[0]}})
    return {"noise": args.synthetic_noise, "holdout": len(holdout), "curve": rows}


def _train_one(job: tuple) -> tuple[str, float, bool]:
    arch, store_path, epochs, seed = job
    from hwnas.data import create_dataset
    from hwnas.training import DEFAULT_RECIPE, EvalStore, Trainer

    space = create_space("mobilenet")
    with EvalStore(store_path) as store:
        record = store.evaluate(space, arch, create_dataset("digits"),
                                recipe=DEFAULT_RECIPE.with_fidelity(epochs=epochs), seed=seed,
                                trainer=Trainer(threads=1))
    return arch, float(record.val_accuracy), bool(record.reused)


def accuracy_digits(args) -> dict:
    space = create_space("mobilenet")
    rng = np.random.default_rng([args.seed, 1])
    archs = [a.string for a in space.sample_distinct(args.digits_archs, rng)]
    jobs = [(a, str(args.store), args.epochs, 0) for a in archs]
    args.store.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"digits: {len(jobs)} trainings at {args.epochs} epochs through {args.store} "
          f"({args.workers} worker(s); stored ones are reused)", flush=True)
    results = map_jobs(_train_one, jobs, args.workers)
    wall = time.perf_counter() - t0
    strings = [r[0] for r in results]
    acc = np.array([r[1] for r in results])
    order = np.random.default_rng([args.seed, 2]).permutation(len(strings))
    sizes = [n for n in args.digits_sizes if n < len(strings)]
    holdout = order[max(sizes):]
    test = [strings[i] for i in holdout]
    featurizer = AccuracyPredictor(space="mobilenet", input_shape=SHAPE).make_featurizer()
    rows = []
    for n in sizes:
        train = order[:n]
        model = AccuracyPredictor(space="mobilenet", input_shape=SHAPE, random_state=args.seed).fit(
            [strings[i] for i in train], acc[train], featurizer=featurizer)
        rows.append({"n_train": n, **accuracy_metrics(acc[holdout], model.predict(test))})
    return {"epochs": args.epochs, "archs": len(strings), "trained_now": sum(not r[2] for r in results),
            "training_wall_s": wall, "holdout": len(holdout),
            "accuracy_range": [float(acc.min()), float(acc.max())], "accuracy_std": float(acc.std()),
            "curve": rows}


# -- 3. throughput -------------------------------------------------------------------------------------------
def _set_jobs(predictor, n_jobs: int) -> None:
    for model in predictor.models_:
        model.set_params(n_jobs=n_jobs)


def throughput(args, latency_archs: list[str], latency_y: np.ndarray) -> list[dict]:
    space = create_space("mobilenet")
    rng = np.random.default_rng([args.seed, 3])
    batches = [[space.sample(rng).string for _ in range(args.batch)] for _ in range(2)]
    lat = LatencyPredictor(space="mobilenet", input_shape=SHAPE, random_state=args.seed).fit(latency_archs,
                                                                                              latency_y)
    acc = AccuracyPredictor(space="mobilenet", input_shape=SHAPE, random_state=args.seed).fit(
        latency_archs, np.log(latency_y))  # labels do not change the cost: same trees, same depth
    cores = os.cpu_count() or 1
    rows = []
    for name, predictor in (("latency", lat), ("accuracy", acc)):
        for n_jobs in sorted({1, cores}):
            _set_jobs(predictor, n_jobs)
            predictor.featurizer_ = predictor.make_featurizer()  # cold caches
            t0 = time.perf_counter()
            predictor.predict(batches[0])
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            predictor.predict(batches[1])  # unit statistics cached, rows not
            warm = time.perf_counter() - t0
            x = predictor.featurizer_.transform(batches[1])
            t0 = time.perf_counter()
            for model in predictor.models_:
                model.predict(x)
            xgb = time.perf_counter() - t0
            rows.append({"predictor": name, "members": len(predictor.models_),
                         "trees": int(predictor.n_estimators), "n_jobs": n_jobs, "batch": args.batch,
                         "per_s_cold": args.batch / cold, "per_s_warm": args.batch / warm,
                         "per_s_xgboost_only": args.batch / xgb})
    return rows


# -- main ----------------------------------------------------------------------------------------------------
def report(result: dict) -> None:
    lat = result["latency"]
    print(f"\n1. latency, mobilenet@1x8x8 ({lat['profile']['records']} records, held-out {lat['holdout']}, "
          f"{lat['latency_ms_range'][0]:.3f}-{lat['latency_ms_range'][1]:.3f} ms)")
    print_table(["N", "<=5%", "<=10%", "MAPE %", "med.err %", "RMSE ms", "Spearman", "Kendall", "fit s"],
                [[r["n_train"], r["within_5pct"], r["within_10pct"], r["mape"], 100 * r["median_rel_error"],
                  r["rmse"], r["spearman"], r["kendall"], r["fit_s"]] for r in lat["curve"]])
    print("\n   features ablation at the largest N")
    print_table(["features", "n_feat", "<=5%", "<=10%", "MAPE %", "med.err %", "Kendall"],
                [[r["features"], r["n_features"], r["within_5pct"], r["within_10pct"], r["mape"],
                  100 * r["median_rel_error"], r["kendall"]] for r in lat["ablation"]])
    nf = lat["noise_floor"]
    print(f"\n   noise floor ({nf['archs']} held-out archs re-measured): median {100 * nf['median']:.2f}%, "
          f"p90 {100 * nf['p90']:.2f}%, within 10% {100 * nf['within_10pct']:.0f}%; predictor median error / "
          f"noise floor = {lat['error_over_noise']:.2f}x (target <= 1.5x); within 10% at N="
          f"{lat['curve'][-1]['n_train']}: {100 * lat['curve'][-1]['within_10pct']:.1f}% (target >= 99%)")
    for key, title in (("accuracy_synthetic", "2a. accuracy, synthetic nb201 table"),
                       ("accuracy_digits", "2b. accuracy, digits (real trainings)")):
        part = result.get(key)
        if not part:
            continue
        extra = (f"noise sd {part['noise']}, median of {part['curve'][0]['repeats']} draws" if "noise" in part
                 else f"{part['archs']} archs at {part['epochs']} epochs, accuracy "
                      f"{part['accuracy_range'][0]:.3f}-{part['accuracy_range'][1]:.3f}")
        print(f"\n{title} (held-out {part['holdout']}; {extra})")
        print_table(["N", "Kendall", "Spearman", "MAE", "top-10"],
                    [[r["n_train"], r["kendall"], r["spearman"], r["mae"], r["top10_precision"]]
                     for r in part["curve"]])
    print("\n3. throughput, predictions/s (mobilenet; cold = fresh caches, warm = unit stats cached)")
    print_table(["predictor", "members x trees", "n_jobs", "cold", "warm", "xgboost only"],
                [[r["predictor"], f"{r['members']}x{r['trees']}", r["n_jobs"], r["per_s_cold"],
                  r["per_s_warm"], r["per_s_xgboost_only"]] for r in result["throughput"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: existing profile only, tiny sizes")
    parser.add_argument("--profiles-dir", type=Path, default=ROOT / "profiles")
    parser.add_argument("--device", default="host")
    parser.add_argument("--latency-holdout", type=int, default=200)
    parser.add_argument("--noise-archs", type=int, default=50)
    parser.add_argument("--latency-sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--accuracy-sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--accuracy-holdout", type=int, default=2000)
    parser.add_argument("--synthetic-noise", type=float, default=0.004)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-digits", action="store_true", help="skip the real-training part")
    parser.add_argument("--store", type=Path, default=ROOT / "benchmarks" / "results" / "evals-bench.sqlite")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--digits-archs", type=int, default=150)
    parser.add_argument("--digits-sizes", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--workers", type=int, default=1, help="parallel training processes (1 thread each)")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    if parser.parse_known_args()[0].quick:  # smaller defaults; options given explicitly still win
        parser.set_defaults(latency_holdout=100, noise_archs=10, latency_sizes=[50, 100, 200],
                            accuracy_sizes=[50, 100, 200], accuracy_holdout=500, repeats=1, epochs=2,
                            digits_archs=16, digits_sizes=[8], batch=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    result: dict = {"quick": args.quick, "seed": args.seed, "cores": os.cpu_count()}
    result["latency"], archs, latency_y = latency_curve(args)
    result["accuracy_synthetic"] = accuracy_synthetic(args)
    if not args.no_digits:
        result["accuracy_digits"] = accuracy_digits(args)
    result["throughput"] = throughput(args, archs, latency_y)
    result["wall_s"] = time.perf_counter() - t0
    report(result)
    path = write_result("predictors-quick" if args.quick else "predictors", result)
    print(f"\n{result['wall_s']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
