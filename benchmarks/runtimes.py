"""Runtimes side by side: the default task's architectures measured in every installed runtime on this CPU.

    .venv/bin/python benchmarks/runtimes.py            # 150 architectures + one search per runtime (~15 min)
    .venv/bin/python benchmarks/runtimes.py --quick    # 20 architectures, no search (~1 min)

Keep the machine otherwise idle: these are latency measurements.

1. **Latency range** per runtime: 150 architectures of the mobilenet space at the default task's shape (1x32x32,
   10 classes; stratified over MACs, as ``hwnas profile`` picks them), 1 thread, batch 1, fp32, the profiler's
   protocol. Each architecture is measured in every runtime back to back (the runtimes' order rotates), so a
   disturbance of the machine falls on all of them alike.
2. **Spearman** rank correlation between each pair of runtimes over those architectures.
3. **Latency predictor** (XGBoost, hwnas's) per runtime at 100 profiles: share of the 50 held-out
   architectures predicted within +-10%, median over 5 random splits.
4. **Searched answer** per runtime: ``hwnas search`` of the default task with the same seed, budget (the
   onnxruntime profile's 40th percentile) and a cheap recipe (2 epochs, a quarter of the data, 8 trainings),
   each runtime's profile being the measurements above; then each answer's latency in every runtime.

Prints the tables and writes ``benchmarks/results/runtimes.json``; the measured profiles and the runs stay
under ``benchmarks/results/runtimes/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, print_table, write_result  # noqa: E402

from hwnas.data import resolve_dataset  # noqa: E402
from hwnas.devices import LocalDevice, profile_name  # noqa: E402
from hwnas.onnx_export import check_onnx, seeded_model, to_onnx_bytes  # noqa: E402
from hwnas.predictors import LatencyPredictor  # noqa: E402
from hwnas.predictors.metrics import spearman, within  # noqa: E402
from hwnas.profiling import Conditions, ProfileStore  # noqa: E402
from hwnas.profiling.measure import make_record, measure_latency, torch_single_thread  # noqa: E402
from hwnas.profiling.sampling import macs_size_fn, stratified_sample  # noqa: E402
from hwnas.runtimes import RUNTIMES, get_runtime  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402

DATASET = "cluttered-digits"
SPACE = "mobilenet"


def installed() -> list[str]:
    names = [n for n in RUNTIMES.names() if get_runtime(n).version() is not None]
    return ["onnxruntime"] + [n for n in names if n != "onnxruntime"]


def measure_all(runtimes: list[str], count: int, profiles: Path, seed: int) -> dict[str, dict[str, float]]:
    """``runtime -> arch -> median ms``; each runtime's measurements also go to its profile under ``profiles``."""
    space = create_space(SPACE)
    data = resolve_dataset(DATASET)
    shape, classes = tuple(data.input_shape), data.num_classes
    archs = stratified_sample(space, count, rng=np.random.default_rng(seed),
                              size_fn=macs_size_fn(space, shape, classes))
    stores = {}
    for name in runtimes:
        conditions = Conditions(runtime=name)
        stores[name] = ProfileStore(profiles, profile_name("host", name))
        stores[name].ensure(LocalDevice("host").fingerprint(conditions))
    latencies: dict[str, dict[str, float]] = {name: {} for name in runtimes}
    start = time.perf_counter()
    for index, arch in enumerate(archs):
        with torch_single_thread():
            model = seeded_model(space, arch, shape, classes, seed=seed).eval()
            onnx_bytes = to_onnx_bytes(model, shape)
            check_onnx(onnx_bytes)
            files = {n: get_runtime(n).measured_files(model, onnx_bytes, input_shape=shape, batch_size=1)
                     for n in runtimes}
        order = runtimes[index % len(runtimes):] + runtimes[:index % len(runtimes)]
        for name in order:
            stats = measure_latency(files[name], shape, runtime=name, threads=1, seed=seed)
            latencies[name][arch.string] = stats.median_ms
            stores[name].add(make_record(space=SPACE, arch=arch, input_shape=shape, num_classes=classes,
                                         stats=stats.to_dict()))
        if (index + 1) % 25 == 0:
            print(f"  measured {index + 1}/{len(archs)} architectures in {len(runtimes)} runtimes "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return latencies


def predictor_share(latencies: dict[str, float], *, train: int, splits: int, seed: int) -> float:
    archs = sorted(latencies)
    y = np.array([latencies[a] for a in archs])
    shape = list(resolve_dataset(DATASET).input_shape)
    shares = []
    for split in range(splits):
        order = np.random.default_rng(seed + split).permutation(len(archs))
        fit, held = order[:train], order[train:]
        model = LatencyPredictor(space=SPACE, input_shape=shape, num_classes=10, random_state=seed).fit(
            [archs[i] for i in fit], y[fit])
        shares.append(within(y[held], model.predict([archs[i] for i in held]), 0.10))
    return float(np.median(shares))


def search_in(runtime: str, budget_ms: float, out: Path, profiles: Path, seed: int) -> dict:
    from hwnas.api import start_search
    from hwnas.search.config import RunConfig
    from hwnas.training.recipe import Recipe

    run_dir = out / "runs" / runtime
    shutil.rmtree(run_dir, ignore_errors=True)
    config = RunConfig(budget_ms=budget_ms, space=SPACE, dataset=DATASET, device="host", runtime=runtime,
                       profiles_dir=str(profiles), recipe=Recipe(epochs=2, data_fraction=0.25), max_trainings=8,
                       initial_trainings=4, seed=seed, store=str(out / "evals.sqlite"), final_seeds=0)
    t0 = time.perf_counter()
    result = start_search(config, run_dir, echo=lambda line: None)
    best = result.best
    return {"arch": best.arch if best else None, "accuracy": best.accuracy if best else None,
            "latency_ms": best.latency_ms if best else None, "seconds": time.perf_counter() - t0}


def latency_in(runtime: str, arch: str, seed: int) -> float:
    space = create_space(SPACE)
    data = resolve_dataset(DATASET)
    conditions = Conditions(runtime=runtime)
    return LocalDevice("host").measure_arch(space, space.parse(arch), tuple(data.input_shape), data.num_classes,
                                            conditions=conditions, seed=seed)["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=150)
    parser.add_argument("--train", type=int, default=100, help="Profiles the latency predictor is fitted on.")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 architectures, 15 to fit, no search.")
    parser.add_argument("--no-search", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.train, args.no_search = 20, 15, True
    out = RESULTS / "runtimes"
    profiles = out / "profiles"
    shutil.rmtree(profiles, ignore_errors=True)
    runtimes = installed()
    versions = {n: get_runtime(n).version() for n in runtimes}
    print(f"runtimes: {', '.join(f'{n} {v}' for n, v in versions.items())}; {args.archs} architectures of "
          f"{SPACE} at {DATASET}'s shape, 1 thread, batch 1", flush=True)
    t0 = time.perf_counter()
    latencies = measure_all(runtimes, args.archs, profiles, args.seed)
    measure_s = time.perf_counter() - t0
    archs = sorted(latencies[runtimes[0]])

    print("\n1. latency range (ms)")
    ranges = {}
    for name in runtimes:
        values = np.array([latencies[name][a] for a in archs])
        ranges[name] = {"min": float(values.min()), "p10": float(np.percentile(values, 10)),
                        "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
                        "max": float(values.max()),
                        "median_ratio_to_onnxruntime": float(np.median(values / np.array(
                            [latencies["onnxruntime"][a] for a in archs])))}
    print_table(["runtime", "version", "min", "p10", "median", "p90", "max", "median ratio to ort"],
                [[n, versions[n], *(ranges[n][k] for k in ("min", "p10", "median", "p90", "max",
                                                            "median_ratio_to_onnxruntime"))] for n in runtimes])

    print("\n2. Spearman rank correlation between runtimes")
    pairs = {}
    for a, b in combinations(runtimes, 2):
        pairs[f"{a}~{b}"] = spearman([latencies[a][x] for x in archs], [latencies[b][x] for x in archs])
    print_table(["pair", "spearman"], [[k, v] for k, v in pairs.items()])

    print(f"\n3. latency predictor within +-10% at {args.train} profiles (median of {args.splits} splits)")
    shares = {n: predictor_share(latencies[n], train=args.train, splits=args.splits, seed=args.seed)
              for n in runtimes}
    print_table(["runtime", "within 10%"], [[n, shares[n]] for n in runtimes])

    answers, cross = {}, {}
    budget = float(np.percentile([latencies["onnxruntime"][a] for a in archs], 40))
    if not args.no_search:
        print(f"\n4. searched answer per runtime, budget {budget:.4g} ms (onnxruntime's 40th percentile)")
        for name in runtimes:
            answers[name] = search_in(name, budget, out, profiles, args.seed)
            print(f"  {name}: {answers[name]}", flush=True)
        for name, answer in answers.items():
            if answer["arch"]:
                cross[name] = {other: latency_in(other, answer["arch"], args.seed) for other in runtimes}
        print_table(["searched in", "answer", "val acc"] + [f"ms in {o}" for o in runtimes],
                    [[n, a["arch"], a["accuracy"], *(cross.get(n, {}).get(o, float("nan")) for o in runtimes)]
                     for n, a in answers.items()])
    path = write_result("runtimes", {
        "runtimes": versions, "archs": args.archs, "dataset": DATASET, "space": SPACE, "threads": 1,
        "measure_seconds": measure_s, "ranges": ranges, "spearman": pairs, "predictor_train": args.train,
        "predictor_within_10": shares, "budget_ms": budget, "answers": answers, "answer_latencies": cross,
        "latencies": latencies})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
