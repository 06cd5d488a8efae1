"""Does the data set tell architectures apart, and does a latency budget trade accuracy for speed?

Trains ``--archs`` random architectures (seed 0 and, for a rank correlation, seed 1) and ``--ref-archs`` of
them with ``--seeds`` seeds each, at the default recipe unless overridden (``-R``). A data set discriminates
when the spread across architectures is clearly larger than the seed-to-seed spread of one architecture, i.e.
when two seeds rank the architectures alike (Kendall's tau well above 0).

Before any training (so the machine is otherwise idle) it measures the latency of the same architectures on
this machine (onnxruntime, 1 thread) into the device profile ``--profiles-dir/--device``, topped up to
``--latency-samples`` architectures at the data set's input shape; from these it reports
(b) Spearman(measured latency, accuracy) -- does accuracy rise with cost? -- (c) the ratio of the slowest to the
fastest profiled latency, and the latency predictor's share of held-out predictions within +-10% (5-fold
cross-validation over the profile). The targets of issue 13 are printed beside the figures: (a) arch/seed
spread >= 3 and two-seed Kendall tau >= 0.6, (b) >= 0.4, (c) >= 10x.

    python benchmarks/discrimination.py                  # digits: 30 archs x 2 seeds + 2 archs x 5 seeds
    python benchmarks/discrimination.py --quick          # smoke: 6 archs, 3 seeds, 3 epochs
    python benchmarks/discrimination.py -D noise=0 -D val_fraction=0.2 -D test_fraction=0.2   # plain digits
    python benchmarks/discrimination.py --dataset cluttered-digits -R epochs=4 -R data_fraction=0.67 \
        --workers 2 --tag cluttered       # the task where architecture matters (~45 min on 2 cores)

Prints a table and writes ``benchmarks/results/discrimination[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, parse_options, print_table, train_job, write_result  # noqa: E402


def _train_one(job: tuple) -> tuple[str, int, float, float, float]:
    space_name, space_options, arch, dataset_name, dataset_options, recipe_options, seed, threads = job
    result = train_job(space_name, arch, dataset_name, dataset_options, recipe_options, seed, threads,
                       space_options=space_options)
    return arch, seed, result.val_accuracy, result.val_loss, result.wall_time_s


def reusable_runs(paths: list[str], *, space: str, space_options: dict, dataset: str, dataset_options: dict,
                  recipe_hash: str) -> dict[tuple[str, int], tuple[str, int, float, float, float]]:
    """The trainings of earlier results of this benchmark (``--reuse``) made with the same space and options,
    data set, data-set options and recipe, by (arch, seed); a result made otherwise is refused with one line."""
    import json

    runs = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--reuse {path}: not a readable result ({exc})") from None
        mine = {"space": space, "space_options": space_options, "dataset": dataset,
                "dataset_options": dataset_options, "recipe_hash": recipe_hash}
        theirs = {key: data.get(key, {} if key == "space_options" else None) for key in mine}
        if theirs != mine:
            raise SystemExit(f"--reuse {path}: made with {theirs}, not {mine}")
        for run in data["runs"]:
            runs[(run["arch"], int(run["seed"]))] = (run["arch"], int(run["seed"]), run["val_accuracy"],
                                                      run["val_loss"], run["wall_time_s"])
    return runs


def measure_latencies(args, space, archs: list[str], input_shape: tuple, num_classes: int) -> dict:
    """Latency of ``archs`` (and of the profile topped up to ``--latency-samples``) on this machine, and the
    latency predictor's cross-validated quality over the profile."""
    from hwnas.predictors import LatencyPredictor
    from hwnas.predictors.quality import assess
    from hwnas.profiling import Conditions, ProfileStore, profile_space
    from hwnas.profiling.fingerprint import host_fingerprint
    from hwnas.profiling.measure import profile_arch

    conditions = Conditions(threads=1)
    store = ProfileStore(args.profiles_dir, args.device)
    fingerprint = host_fingerprint(store.device, conditions)
    if store.exists:
        store.ensure(fingerprint)
    start = time.perf_counter()
    with store.lock():
        for arch in archs:
            if not (store.exists and store.has(space.name, arch, input_shape)):
                record = profile_arch(space, arch, input_shape, num_classes, conditions=conditions,
                                      seed=args.sample_seed)
                store.ensure(fingerprint)
                store.add(record)
    profile_space(store, space, samples=max(args.latency_samples, len(archs)), input_shape=input_shape,
                  num_classes=num_classes, conditions=conditions, seed=args.sample_seed)
    records = store.records(space.name, input_shape)
    measured_s = time.perf_counter() - start
    by_arch = {r["arch"]: float(r["median_ms"]) for r in records}
    all_ms = np.array(list(by_arch.values()))
    quality = assess(lambda: LatencyPredictor(space=space.name, input_shape=input_shape, num_classes=num_classes,
                                              random_state=args.sample_seed),
                     list(by_arch), all_ms, folds=5, seed=args.sample_seed)
    return {"profile": str(store.path), "records": len(records), "measure_s": measured_s,
            "latency_ms": {a: by_arch[a] for a in archs}, "min_ms": float(all_ms.min()),
            "max_ms": float(all_ms.max()), "slowest_over_fastest": float(all_ms.max() / all_ms.min()),
            "predictor_within_10pct_cv": quality["cv"]["within_10pct"],
            "predictor_within_10pct_holdout": quality["holdout"]["within_10pct"], "predictor": quality}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke mode: 6 archs, 3 seeds, 3 epochs.")
    parser.add_argument("--space", default="mobilenet")
    parser.add_argument("-O", "--space-option", action="append", default=[], metavar="KEY=VALUE",
                        help="Keyword argument of the space, e.g. -O channels=8 for nb201.")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("-D", "--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-R", "--recipe-option", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a recipe field, e.g. -R epochs=10.")
    parser.add_argument("--archs", type=int, default=30, help="Random architectures.")
    parser.add_argument("--seeds", type=int, default=5, help="Seeds per reference architecture.")
    parser.add_argument("--ref-archs", type=int, default=2, help="Architectures trained with every seed.")
    parser.add_argument("--sample-seed", type=int, default=0, help="Seed of the architecture sample.")
    parser.add_argument("--workers", type=int, default=1, help="Training processes in parallel.")
    parser.add_argument("--threads", type=int, default=1, help="Threads per training process.")
    parser.add_argument("--tag", default="", help="Suffix of the result file name.")
    parser.add_argument("--latency-samples", type=int, default=200,
                        help="Architectures the device profile should hold at the data set's input shape.")
    parser.add_argument("--profiles-dir", default="profiles", help="Folder of device profiles.")
    parser.add_argument("--device", default="host", help="Device profile name of this machine.")
    parser.add_argument("--no-latency", action="store_true", help="Skip the latency measurements.")
    parser.add_argument("--reuse", action="append", default=[], metavar="RESULT.json",
                        help="Take the trainings an earlier result of this benchmark holds for the same "
                             "space, data set and recipe instead of training them again (repeatable).")
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.seeds, args.ref_archs = min(args.archs, 6), min(args.seeds, 3), 1
        args.latency_samples = min(args.latency_samples, 20)

    from hwnas.spaces import create_space
    from hwnas.training import Recipe

    dataset_options = parse_options(args.dataset_option)
    recipe_options = parse_options(args.recipe_option)
    if args.quick:
        recipe_options.setdefault("epochs", 3)
    recipe = Recipe(**recipe_options)
    space_options = parse_options(args.space_option)
    space = create_space(args.space, **space_options)
    rng = np.random.default_rng(args.sample_seed)
    archs = [a.string for a in space.sample_distinct(args.archs, rng)]
    from hwnas.data import resolve_dataset

    dataset = resolve_dataset(args.dataset, **dataset_options)
    latency = None
    if not args.no_latency:
        latency = measure_latencies(args, space, archs, tuple(dataset.input_shape), dataset.num_classes)
        print(f"latency: {len(archs)} architectures (profile {latency['profile']}, {latency['records']} "
              f"records at {'x'.join(map(str, dataset.input_shape))}) in {latency['measure_s']:.0f} s", flush=True)
    jobs = {(a, s) for a in archs for s in (0, 1)}
    jobs |= {(a, s) for a in archs[: args.ref_archs] for s in range(args.seeds)}
    reused = reusable_runs(args.reuse, space=args.space, space_options=space_options, dataset=args.dataset,
                           dataset_options=dataset_options, recipe_hash=recipe.hash())
    ordered = sorted(jobs, key=lambda j: (j[1], archs.index(j[0])))
    results = [reused[job] for job in ordered if job in reused]
    payload = [(args.space, space_options, a, args.dataset, dataset_options, recipe_options, s, args.threads)
               for a, s in ordered if (a, s) not in reused]
    if results:
        print(f"reusing {len(results)} trainings of {', '.join(args.reuse)}", flush=True)
    start = time.perf_counter()
    results += map_jobs(_train_one, payload, args.workers)
    elapsed = time.perf_counter() - start
    acc = {(a, s): v for a, s, v, _, _ in results}
    times = [t for *_, t in results]

    seed0 = np.array([acc[(a, 0)] for a in archs])
    seed1 = np.array([acc[(a, 1)] for a in archs])
    arch_std = float(np.std(seed0, ddof=1)) if len(archs) > 1 else 0.0
    seed_stds = [float(np.std([acc[(a, s)] for s in range(args.seeds)], ddof=1))
                 for a in archs[: args.ref_archs]]
    seed_std = float(np.mean(seed_stds))
    # Seed noise over all archs from the two seeds: the std of a difference of two draws is sqrt(2) sigma.
    pair_std = float(np.std(seed0 - seed1, ddof=1) / np.sqrt(2)) if len(archs) > 1 else 0.0
    from scipy.stats import kendalltau, spearmanr

    tau = float(kendalltau(seed0, seed1).statistic) if len(archs) > 2 else float("nan")
    rho = float(spearmanr(seed0, seed1).statistic) if len(archs) > 2 else float("nan")

    rows = [
        ("architectures (seed 0)", len(archs), f"{seed0.mean():.4f}", f"{arch_std:.4f}",
         f"{seed0.min():.4f}..{seed0.max():.4f}"),
    ]
    for a, s_std in zip(archs[: args.ref_archs], seed_stds):
        vals = [acc[(a, s)] for s in range(args.seeds)]
        rows.append((f"seeds of arch {archs.index(a)}", args.seeds, f"{np.mean(vals):.4f}", f"{s_std:.4f}",
                     f"{min(vals):.4f}..{max(vals):.4f}"))
    rows.append(("seed noise, all archs (s0 vs s1)", len(archs), "", f"{pair_std:.4f}", ""))
    print(f"{args.dataset} {dataset_options or ''} recipe {recipe.hash()} ({recipe.fidelity}), "
          f"{len(payload)} trainings in {elapsed:.0f} s")
    print_table(("spread of val accuracy", "n", "mean", "std", "range"), rows)
    print(f"ratio arch std / seed std: {arch_std / max(seed_std, 1e-9):.2f} (ref archs), "
          f"{arch_std / max(pair_std, 1e-9):.2f} (all archs); rank agreement of two seeds: Kendall tau "
          f"{tau:.3f}, Spearman {rho:.3f}")
    criteria = [("(a) arch std / seed std (all archs)", arch_std / max(pair_std, 1e-9), ">= 3"),
                ("(a) arch std / seed std (ref archs)", arch_std / max(seed_std, 1e-9), ">= 3"),
                ("(a) Kendall tau, seed 0 vs seed 1", tau, ">= 0.6")]
    latency_rho = None
    if latency is not None:
        lat = np.array([latency["latency_ms"][a] for a in archs])
        latency_rho = float(spearmanr(lat, (seed0 + seed1) / 2).statistic) if len(archs) > 2 else float("nan")
        criteria += [("(b) Spearman(latency, accuracy)", latency_rho, ">= 0.4"),
                     ("(c) slowest / fastest profiled latency", latency["slowest_over_fastest"], ">= 10"),
                     ("latency predictor within +-10% (5-fold CV)", latency["predictor_within_10pct_cv"],
                      "report")]
        print(f"latency of the {len(archs)} archs {lat.min():.3f}..{lat.max():.3f} ms; profile "
              f"{latency['min_ms']:.3f}..{latency['max_ms']:.3f} ms")
    print_table(("criterion", "measured", "target"), criteria)
    name = "discrimination" + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    path = write_result(name, {
        "space": args.space, "space_options": space_options, "dataset": args.dataset,
        "dataset_options": dataset_options,
        "recipe": recipe.to_dict(), "recipe_hash": recipe.hash(), "threads": args.threads,
        "workers": args.workers, "elapsed_s": elapsed, "mean_train_s": float(np.mean(times)),
        "reused_from": args.reuse,
        "arch_std": arch_std, "seed_std_ref": seed_std, "seed_std_pairs": pair_std,
        "ratio_ref": arch_std / max(seed_std, 1e-9), "ratio_pairs": arch_std / max(pair_std, 1e-9),
        "kendall_tau": tau, "spearman": rho, "spearman_latency_accuracy": latency_rho,
        "latency": None if latency is None else {k: v for k, v in latency.items() if k != "predictor"},
        "latency_predictor": None if latency is None else latency["predictor"],
        "criteria": [{"criterion": c, "measured": m, "target": t} for c, m, t in criteria],
        "runs": [{"arch": a, "seed": s, "val_accuracy": v, "val_loss": loss, "wall_time_s": t}
                 for a, s, v, loss, t in results],
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
