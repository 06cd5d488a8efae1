"""Where does seed-to-seed noise come from? Validation accuracy after every epoch, architectures x seeds.

Trains each ``--arch`` (or ``--archs`` random ones) with every seed of ``--seeds`` at the default recipe
unless overridden (``-R``), measuring the validation accuracy after each epoch (``train(...,
val_curve=True)``, which changes nothing in the training). For each architecture it reports the spread of the final accuracy across
seeds and how well the seeds' order after each epoch predicts their final order (Spearman over all
architectures' seeds, accuracies centred per architecture): a high correlation early means the final gap is
decided early (e.g. by when a seed starts learning) rather than by noise at the end of the schedule.

    python benchmarks/learning_curves.py --dataset cluttered-digits -R epochs=10 -R data_fraction=0.67 \\
        --archs 2 --seeds 0,1,2,3 --workers 2      # ~13 min on 2 cores

Prints a table and writes ``benchmarks/results/learning_curves[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import map_jobs, parse_options, print_table, train_job, write_result  # noqa: E402


def _curve(job: tuple) -> tuple[str, int, list[float], float]:
    space_name, arch, dataset_name, dataset_options, recipe_options, seed = job
    result = train_job(space_name, arch, dataset_name, dataset_options, recipe_options, seed, val_curve=True)
    return arch, seed, list(result.val_curve), result.wall_time_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mobilenet")
    parser.add_argument("--dataset", default="cluttered-digits")
    parser.add_argument("-D", "--dataset-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-R", "--recipe-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--arch", action="append", default=[], help="An architecture (repeatable).")
    parser.add_argument("--archs", type=int, default=2,
                        help="Random architectures when no --arch is given (those of discrimination.py).")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--seeds", default="0,1,2,3", help="Comma-separated training seeds.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)

    from hwnas.spaces import create_space
    from hwnas.training import Recipe

    dataset_options, recipe_options = parse_options(args.dataset_option), parse_options(args.recipe_option)
    recipe = Recipe(**recipe_options)
    space = create_space(args.space)
    rng = np.random.default_rng(args.sample_seed)
    archs = args.arch or [a.string for a in space.sample_distinct(args.archs, rng)]
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        parser.error("--seeds needs at least two seeds")
    jobs = [(args.space, a, args.dataset, dataset_options, recipe_options, s) for a in archs for s in seeds]
    runs = map_jobs(_curve, jobs, args.workers)

    curves = {(a, s): np.array(c) for a, s, c, _ in runs}
    epochs = len(next(iter(curves.values())))
    rows = []
    for a in archs:
        for s in seeds:
            rows.append((f"arch {archs.index(a)} seed {s}", *[f"{v:.3f}" for v in curves[(a, s)]]))
    print(f"{args.dataset} recipe {recipe.hash()} ({recipe.fidelity}); validation accuracy after each epoch")
    print_table(("run", *[str(e + 1) for e in range(epochs)]), rows)

    from scipy.stats import spearmanr

    def centred(epoch: int) -> np.ndarray:  # per architecture, so that only the seeds' order counts
        values = np.array([[curves[(a, s)][epoch] for s in seeds] for a in archs])
        return (values - values.mean(axis=1, keepdims=True)).ravel()

    final = centred(epochs - 1)
    predictive = [float(spearmanr(centred(e), final).statistic) for e in range(epochs)]
    final_std = {a: float(np.std([curves[(a, s)][-1] for s in seeds], ddof=1)) for a in archs}
    print_table(("epoch", *[str(e + 1) for e in range(epochs)]),
                [("Spearman(seed order now, final)", *[f"{r:.2f}" for r in predictive])])
    print("final accuracy std across seeds: "
          + ", ".join(f"arch {i} {final_std[a]:.4f}" for i, a in enumerate(archs)))
    path = write_result("learning_curves" + (f"-{args.tag}" if args.tag else ""), {
        "space": args.space, "dataset": args.dataset, "dataset_options": dataset_options,
        "recipe": recipe.to_dict(), "recipe_hash": recipe.hash(), "seeds": seeds,
        "final_std": final_std, "spearman_epoch_vs_final": predictive,
        "runs": [{"arch": a, "seed": s, "val_curve": c, "wall_time_s": t} for a, s, c, t in runs],
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
