"""Export benchmark: what the final recipe buys, and what int8 quantization costs and gains, all measured.

    .venv/bin/python benchmarks/export.py           # full run: 4 architectures, default recipes (~5 min)
    .venv/bin/python benchmarks/export.py --quick   # smoke run: 2 architectures, 2-epoch search recipe

For architectures spread over the mobilenet space's size range on digits (smallest, largest and stratified
ones in between), each is

1. trained with the search recipe on the training split only, as the search does (test accuracy reported);
2. exported by ``hwnas export``'s pipeline: the final recipe (3x the epochs, train+validation), checked ONNX,
   onnxruntime accuracy of the file, latency re-measured with the profiler's protocol (1 thread, batch 1);
3. quantized to int8 (static, QDQ, per-channel), its accuracy, agreement with the float model, latency and
   size measured.

Prints a table and writes ``benchmarks/results/export.json`` (``export-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_table, write_result  # noqa: E402
from hwnas.data import create_dataset  # noqa: E402
from hwnas.deploy.pipeline import export_target  # noqa: E402
from hwnas.deploy.target import final_recipe, resolve_target  # noqa: E402
from hwnas.profiling.sampling import macs_size_fn, stratified_sample  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402
from hwnas.training import DEFAULT_RECIPE, train  # noqa: E402


def pick_archs(space, count: int, seed: int) -> list[str]:
    """``count`` architectures spread over the space's MACs range (as ``hwnas profile`` picks them)."""
    rng = np.random.default_rng(seed)
    archs = stratified_sample(space, count, rng=rng, size_fn=macs_size_fn(space, (1, 8, 8), 10))
    return [a.string for a in archs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 architectures, short recipes")
    parser.add_argument("--archs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="training threads")
    args = parser.parse_args()
    count = 2 if args.quick else args.archs
    search_recipe = replace(DEFAULT_RECIPE, epochs=2) if args.quick else DEFAULT_RECIPE
    space, dataset = create_space("mobilenet"), create_dataset("digits")
    protocol = {"min_runs": 50, "max_seconds": 0.3} if args.quick else {}

    rows, records = [], []
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-export-") as folder:
        for i, arch in enumerate(pick_archs(space, count, args.seed)):
            searched = train(space, space.parse(arch), dataset, recipe=search_recipe, seed=args.seed,
                             threads=args.threads, report_test=True)
            target = replace(resolve_target(None, arch=arch, dataset="digits", seed=args.seed),
                             recipe=final_recipe(search_recipe))
            start = time.perf_counter()
            summary = export_target(target, Path(folder) / f"m{i}.onnx", quantize="int8",
                                    threads=args.threads, echo=lambda line: None, protocol=protocol)
            seconds = time.perf_counter() - start
            model, q = summary.model, summary.quantized
            record = {"arch": arch, "params": searched.params, "search_epochs": search_recipe.epochs,
                      "final_epochs": target.recipe.epochs, "search_test_accuracy": searched.test_accuracy,
                      "final_test_accuracy": summary.torch_test_accuracy,
                      "onnx_test_accuracy": model.test_accuracy, "int8_test_accuracy": q.test_accuracy,
                      "int8_agreement": summary.agreement, "fp32_latency_ms": model.latency_ms,
                      "int8_latency_ms": q.latency_ms, "fp32_kib": model.size_bytes / 1024,
                      "int8_kib": q.size_bytes / 1024, "export_s": seconds}
            records.append(record)
            rows.append([arch, searched.params, 100 * searched.test_accuracy,
                         100 * summary.torch_test_accuracy, 100 * q.test_accuracy, 100 * summary.agreement,
                         model.latency_ms, q.latency_ms,
                         record["fp32_kib"], record["int8_kib"], seconds])
    print_table(["arch", "params", "search acc%", "final acc%", "int8 acc%", "agree%", "fp32 ms", "int8 ms",
                 "fp32 KiB", "int8 KiB", "export s"], rows)
    gain = float(np.mean([r["final_test_accuracy"] - r["search_test_accuracy"] for r in records]))
    int8_drop = float(np.mean([r["final_test_accuracy"] - r["int8_test_accuracy"] for r in records]))
    speedup = float(np.median([r["fp32_latency_ms"] / r["int8_latency_ms"] for r in records]))
    print(f"final recipe vs search recipe: {100 * gain:+.2f} points test accuracy (mean); int8: "
          f"{100 * int8_drop:+.2f} points lost (mean), latency x{speedup:.2f} faster (median; <1 is slower)")
    path = write_result("export-quick" if args.quick else "export",
                        {"quick": args.quick, "records": records, "mean_final_gain": gain,
                         "mean_int8_drop": int8_drop, "median_int8_speedup": speedup})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
