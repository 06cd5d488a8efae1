"""Does the data set tell architectures apart? Spread of validation accuracy across architectures vs seeds.

Trains ``--archs`` random architectures (seed 0 and, for a rank correlation, seed 1) and ``--ref-archs`` of
them with ``--seeds`` seeds each, at the default recipe unless overridden. A data set discriminates when the
spread across architectures is clearly larger than the seed-to-seed spread of one architecture, i.e. when
two seeds rank the architectures alike (Kendall's tau well above 0).

    python benchmarks/discrimination.py                  # full: 30 archs x 2 seeds + 2 archs x 5 seeds
    python benchmarks/discrimination.py --quick          # smoke: 6 archs, 3 seeds, 3 epochs
    python benchmarks/discrimination.py -D noise=0 -D val_fraction=0.2 -D test_fraction=0.2   # plain digits

Prints a table and writes ``benchmarks/results/discrimination[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, parse_options, print_table, write_result  # noqa: E402

_DATASETS: dict = {}


def _train_one(job: tuple) -> tuple[str, int, float, float, float]:
    space_name, arch, dataset_name, dataset_options, recipe_options, seed, threads = job
    from hwnas.data import create_dataset
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, train

    key = (space_name, dataset_name, tuple(sorted(dataset_options.items())))
    if key not in _DATASETS:
        _DATASETS[key] = (create_space(space_name), create_dataset(dataset_name, **dataset_options))
    space, dataset = _DATASETS[key]
    result = train(space, space.parse(arch), dataset, recipe=Recipe(**recipe_options), seed=seed,
                   threads=threads)
    return arch, seed, result.val_accuracy, result.val_loss, result.wall_time_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke mode: 6 archs, 3 seeds, 3 epochs.")
    parser.add_argument("--space", default="mobilenet")
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
    args = parser.parse_args(argv)
    if args.quick:
        args.archs, args.seeds, args.ref_archs = min(args.archs, 6), min(args.seeds, 3), 1

    from hwnas.spaces import create_space
    from hwnas.training import Recipe

    dataset_options = parse_options(args.dataset_option)
    recipe_options = parse_options(args.recipe_option)
    if args.quick:
        recipe_options.setdefault("epochs", 3)
    recipe = Recipe(**recipe_options)
    space = create_space(args.space)
    rng = np.random.default_rng(args.sample_seed)
    archs = [a.string for a in space.sample_distinct(args.archs, rng)]
    jobs = {(a, s) for a in archs for s in (0, 1)}
    jobs |= {(a, s) for a in archs[: args.ref_archs] for s in range(args.seeds)}
    payload = [(args.space, a, args.dataset, dataset_options, recipe_options, s, args.threads)
               for a, s in sorted(jobs, key=lambda j: (j[1], archs.index(j[0])))]
    start = time.perf_counter()
    results = map_jobs(_train_one, payload, args.workers)
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
    name = "discrimination" + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    path = write_result(name, {
        "space": args.space, "dataset": args.dataset, "dataset_options": dataset_options,
        "recipe": recipe.to_dict(), "recipe_hash": recipe.hash(), "threads": args.threads,
        "workers": args.workers, "elapsed_s": elapsed, "mean_train_s": float(np.mean(times)),
        "arch_std": arch_std, "seed_std_ref": seed_std, "seed_std_pairs": pair_std,
        "ratio_ref": arch_std / max(seed_std, 1e-9), "ratio_pairs": arch_std / max(pair_std, 1e-9),
        "kendall_tau": tau, "spearman": rho,
        "runs": [{"arch": a, "seed": s, "val_accuracy": v, "val_loss": loss, "wall_time_s": t}
                 for a, s, v, loss, t in results],
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
