"""Profiler benchmarks: noise floor, throughput (and where the time goes), and the naive method's error.

    .venv/bin/python benchmarks/profiling.py           # full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/profiling.py --quick   # smoke run (~15 s)

1. Noise floor: N architectures of the mobilenet space at the digits shape (stratified over MACs, as
   ``hwnas profile`` picks them) are measured, then all of them again in a later pass (fresh sessions);
   reported: median and p90 of the relative difference |b - a| / a between the passes. Target: median <= 2%.
2. Throughput: architectures profiled per minute at 1x8x8 (digits) and 3x32x32, end to end (choosing them
   included), and the share of the time spent choosing, exporting, creating sessions, warming up and timing.
3. Naive method: one un-warmed run on a fresh session per model (what Archai's evaluator does), compared with
   the stable median of the second pass: how much further off it lands than a re-measurement does.

Prints a table and writes ``benchmarks/results/profiling.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwnas.data import create_dataset  # noqa: E402
from hwnas.profiling.fingerprint import cpu_model  # noqa: E402
from hwnas.profiling.measure import (DEFAULT_PROTOCOL, ArchTiming, Conditions,  # noqa: E402
                                     export_for_measurement, measure_latency, profile_arch)
from hwnas.runtimes.onnxruntime import create_session  # noqa: E402
from hwnas.profiling.sampling import macs_size_fn, stratified_sample  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402

SHARES = ("choose", "export", "session", "warmup", "timed", "other")


def rel_stats(reference: np.ndarray, other: np.ndarray) -> dict:
    rel = np.abs(other - reference) / reference
    return {"median": float(np.median(rel)), "p90": float(np.percentile(rel, 90)), "max": float(rel.max())}


def pick(space, count: int, shape, classes: int, seed: int):
    return stratified_sample(space, count, rng=np.random.default_rng(seed),
                             size_fn=macs_size_fn(space, shape, classes))


def naive_latency(model_bytes: bytes, shape, threads: int) -> float:
    """The counter-example: a fresh session and one un-warmed, timed run."""
    session = create_session(model_bytes, provider="cpu", threads=threads)
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    t0 = time.perf_counter()
    session.run(None, {name: x})
    return (time.perf_counter() - t0) * 1e3


def noise_and_naive(count: int, threads: int, seed: int) -> dict:
    space = create_space("mobilenet")
    ds = create_dataset("digits")
    shape, classes = ds.input_shape, ds.num_classes
    archs = pick(space, count, shape, classes, seed)
    models = [export_for_measurement(space, a, shape, classes) for a in archs]
    first = np.array([measure_latency(m, shape, threads=threads).median_ms for m in models])
    naive = np.array([naive_latency(m, shape, threads) for m in models])
    later = [measure_latency(m, shape, threads=threads) for m in models]
    second = np.array([s.median_ms for s in later])
    noise, naive_err = rel_stats(first, second), rel_stats(second, naive)
    return {"archs": count, "latency_ms_range": [float(second.min()), float(second.max())],
            "noise_floor": noise, "naive_error": naive_err,
            "naive_over_protocol": naive_err["median"] / max(noise["median"], 1e-12),
            "converged_share": float(np.mean([s.converged for s in later])),
            "median_runs": float(np.median([s.runs for s in later]))}


def throughput(shape, count: int, threads: int, seed: int) -> dict:
    space = create_space("mobilenet")
    t0 = time.perf_counter()
    archs = pick(space, count, shape, 10, seed + 1)
    totals = dict.fromkeys(SHARES, 0.0)
    totals["choose"] = time.perf_counter() - t0
    medians = []
    for arch in archs:
        timing = ArchTiming()
        record = profile_arch(space, arch, shape, 10, conditions=Conditions(threads=threads), timing=timing)
        medians.append(record["median_ms"])
        for key in ("export", "session", "warmup", "timed"):
            totals[key] += getattr(timing, f"{key}_s")
    wall = time.perf_counter() - t0
    totals["other"] = max(0.0, wall - sum(totals.values()))
    return {"input_shape": "x".join(map(str, shape)), "archs": count, "seconds": wall,
            "archs_per_minute": 60.0 * count / wall, "share": {k: v / wall for k, v in totals.items()},
            "median_latency_ms": float(np.median(medians))}


def report(noise: dict, runs: list[dict], args) -> None:
    kind = "quick" if args.quick else "full"
    print(f"\nprofiler benchmark ({kind}; {cpu_model()}, {args.threads} thread(s))")
    print(f"protocol: {DEFAULT_PROTOCOL}")
    low, high = noise["latency_ms_range"]
    print(f"\n1+3. {noise['archs']} mobilenet archs at 1x8x8 ({low:.3f}-{high:.3f} ms), measured twice")
    print(f"     {'relative difference':28}{'median':>8}{'p90':>8}{'max':>8}")
    row = "".join(f"{100 * noise['noise_floor'][k]:7.2f}%" for k in ("median", "p90", "max"))
    print(f"     {'protocol, later pass':28}{row}   (target: median <= 2%)")
    row = "".join(f"{100 * noise['naive_error'][k]:7.1f}%" for k in ("median", "p90", "max"))
    print(f"     {'naive (1 cold run) vs stable':28}{row}")
    print(f"     naive lands {noise['naive_over_protocol']:.0f}x further from the stable median than a "
          f"re-measurement; {100 * noise['converged_share']:.0f}% converged, "
          f"median {noise['median_runs']:.0f} timed runs")
    print("\n2.   throughput (share of wall time)")
    header = "".join(f"{k:>9}" for k in SHARES)
    print(f"     {'input':9}{'archs/min':>10}{header}{'median ms':>11}")
    for r in runs:
        shares = "".join(f"{100 * r['share'][k]:8.0f}%" for k in SHARES)
        print(f"     {r['input_shape']:9}{r['archs_per_minute']:10.0f}{shares}{r['median_latency_ms']:11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run with few architectures")
    parser.add_argument("--archs", type=int, default=50, help="architectures for the noise floor")
    parser.add_argument("--throughput-archs", type=int, default=40, help="architectures per input shape")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "profiling.json")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.throughput_archs = 8, 4
    noise = noise_and_naive(args.archs, args.threads, args.seed)
    runs = [throughput(shape, args.throughput_archs, args.threads, args.seed)
            for shape in ((1, 8, 8), (3, 32, 32))]
    report(noise, runs, args)
    result = {"benchmark": "profiling", "quick": args.quick, "threads": args.threads,
              "protocol": asdict(DEFAULT_PROTOCOL), "cpu_model": cpu_model(), "machine": platform.platform(),
              "noise": noise, "throughput": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
