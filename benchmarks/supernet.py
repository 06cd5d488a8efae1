"""Does weight sharing rank architectures like full training, and does it make a search cheaper?

Phase 1 (rank): each ``--supernet`` folder estimates the reference architectures, whose full trainings (two
seeds) come from a discrimination benchmark result (``--reference``, e.g.
``benchmarks/results/discrimination-cluttered.json``). Reported per supernet: Kendall tau between its
estimates and the mean of the two full trainings (and each seed; and with the estimates ranked by their
validation loss instead of their accuracy), beside the two seeds' own tau; the supernet's training time in
units of one full training (``--time-trainings`` reference architectures trained now, at the reference recipe
and the supernet's thread count); sub-networks estimated per minute.

Phase 2 (search, ``--search-seeds N``): for each seed, ``hwnas search`` with full trainings only and with
``--estimator supernet --supernet <first supernet>``, same latency budget and ``--search-time`` wall-clock limit,
one after the other (never side by side: the searches measure latency). Reported: each search's best trained
accuracy over time, the full-training search's final accuracy, and when the supernet search first reached it
(without and with the supernet's own training time).

    python benchmarks/supernet.py --reference benchmarks/results/discrimination-cluttered.json \
        --supernet supernets/sandwich --supernet supernets/uniform --search-seeds 3 --search-time 5m

Prints tables and writes ``benchmarks/results/supernet[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_options, print_table, write_result  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hwnas.api import load_result  # noqa: E402
from hwnas.supernet.estimate import CALIBRATION_IMAGES, SCORE_IMAGES  # noqa: E402


def reference_runs(path: Path) -> tuple[dict[str, dict[int, float]], dict]:
    """``arch -> {seed: val_accuracy}`` of a discrimination result, and the result itself."""
    data = json.loads(path.read_text())
    runs: dict[str, dict[int, float]] = {}
    for run in data["runs"]:
        runs.setdefault(run["arch"], {})[int(run["seed"])] = float(run["val_accuracy"])
    return {a: s for a, s in runs.items() if len(s) >= 2}, data


def rank_phase(args, archs: list[str], truth: dict[str, dict[int, float]]) -> list[dict]:
    from scipy.stats import kendalltau, spearmanr

    from hwnas.data.resolve import DatasetSpec
    from hwnas.supernet.estimate import SupernetEstimator

    rows = []
    seeds = sorted(next(iter(truth.values())))[:2]
    mean = np.array([np.mean([truth[a][s] for s in seeds]) for a in archs])
    per_seed = [np.array([truth[a][s] for a in archs]) for s in seeds]
    seed_tau = float(kendalltau(per_seed[0], per_seed[1])[0])
    for folder, scored, calibration in [(f, n, c) for f in args.supernet for n in args.score_images
                                        for c in args.calibration_images]:
        estimator = SupernetEstimator(folder, threads=args.threads, score_images=scored,
                                      calibration_images=calibration)
        dataset = DatasetSpec.from_config(estimator.meta).resolve()
        estimator.estimate(estimator.space.parse(archs[0]), dataset)  # warm-up: data, sessions
        start = time.perf_counter()
        results = [estimator.estimate(estimator.space.parse(a), dataset) for a in archs]
        estimates = np.array([r.val_accuracy for r in results])
        losses = np.array([r.val_loss for r in results])
        extra = estimator.space.sample_distinct(args.extra_archs, np.random.default_rng(1), exclude=set(archs))
        for arch in extra:
            estimator.estimate(arch, dataset)
        per_minute = 60 * (len(archs) + len(extra)) / (time.perf_counter() - start)
        meta = estimator.meta
        rows.append({"supernet": str(folder), "sampling": meta["settings"]["sampling"],
                     "distill": meta["settings"]["distill"], "epochs": meta["epochs_done"],
                     "train_time_s": meta["train_time_s"], "train_threads": meta.get("threads"),
                     "kendall_vs_mean": float(kendalltau(estimates, mean)[0]),
                     "kendall_vs_seeds": [float(kendalltau(estimates, s)[0]) for s in per_seed],
                     "kendall_loss_vs_mean": float(kendalltau(-losses, mean)[0]),  # ranked by the estimate's loss
                     "spearman_vs_mean": float(spearmanr(estimates, mean)[0]),
                     "seed_vs_seed_kendall": seed_tau, "estimates": dict(zip(archs, estimates.tolist())),
                     "estimate_mean": float(estimates.mean()), "estimate_std": float(estimates.std()),
                     "per_minute": per_minute, "eval_threads": args.threads, "score_images": scored,
                     "calibration_images": calibration})
    return rows


def time_full_trainings(args, archs: list[str], reference: dict, threads: int) -> float:
    """Mean seconds of one full training at the reference recipe, measured now (not stored)."""
    from hwnas.data import resolve_dataset
    from hwnas.spaces import create_space
    from hwnas.training import Recipe, train

    space = create_space(reference["space"], **reference.get("space_options", {}))
    dataset = resolve_dataset(reference["dataset"], **reference.get("dataset_options", {}))
    recipe = Recipe.from_dict(reference["recipe"])
    times = [train(space, space.parse(a), dataset, recipe=recipe, threads=threads).wall_time_s
             for a in archs[:args.time_trainings]]
    return float(np.mean(times))


def search_phase(args, reference: dict, budget_ms: float) -> list[dict]:
    out = Path(args.work) / "searches"
    out.mkdir(parents=True, exist_ok=True)
    recipe = reference["recipe"]
    space = ["--space", reference.get("space", "mobilenet")]
    for key, value in reference.get("space_options", {}).items():
        space += ["-O", f"{key}={value}"]
    common = [*space, "--latency-budget", f"{budget_ms:.6g}ms", "--dataset", reference["dataset"],
              "--epochs", str(recipe["epochs"]), "--data-fraction", str(recipe["data_fraction"]),
              "--time-budget", args.search_time, "--max-trainings", "1000", "--profiles-dir", args.profiles_dir,
              "--train-threads", str(args.threads)]
    runs = []
    for seed in range(args.search_seeds):
        for estimator in ("train", "supernet"):
            run_dir = out / f"{estimator}-s{seed}"
            extra = (["--supernet", str(args.supernet[0]), "--initial-estimates", str(args.initial_estimates),
                      "--estimates-per-round", str(args.estimates_per_round)] if estimator == "supernet" else [])
            if (run_dir / "config.json").exists():  # an interrupted benchmark continues its searches
                command = [sys.executable, "-m", "hwnas", "search", "--resume", str(run_dir)]
            else:
                # a store of its own: no search may look up a training another one paid for
                command = [sys.executable, "-m", "hwnas", "search", *common, "--seed", str(seed), *extra,
                           "--store", str(out / f"{estimator}-s{seed}.sqlite"), "--run-dir", str(run_dir)]
            print(f"search {estimator} seed {seed} ...", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            state = json.loads((run_dir / "state.json").read_text())
            result = load_result(run_dir)
            curve, best = [], -1.0
            for v in state["verified"]:
                if v["latency_ms"] <= budget_ms and v["accuracy"] > best:
                    best = v["accuracy"]
                    curve.append([v.get("elapsed_s"), best])
            runs.append({"seed": seed, "estimator": estimator, "curve": curve,
                         "final": result.best.accuracy if result.best else None,
                         "test_accuracy": result.test_accuracy, "trainings": result.trainings_used,
                         "estimates": result.estimates_used, "elapsed_s": result.elapsed_s})
    return runs


def finetune_phase(args, archs: list[str], truth: dict[str, dict[int, float]], reference: dict) -> list[dict]:
    """Final trainings (train+validation, tested once, as ``hwnas export``) of the ``--finetune-archs`` best
    reference architectures, from scratch and from the first supernet's weights, at each of
    ``--finetune-epochs``; each result cached in the work folder (an interrupted benchmark continues)."""
    from hwnas.data import resolve_dataset
    from hwnas.deploy.final import train_final
    from hwnas.supernet.weights import load_supernet
    from hwnas.training import Recipe

    supernet = load_supernet(args.supernet[0])
    dataset = resolve_dataset(reference["dataset"], **reference.get("dataset_options", {}))
    base = Recipe.from_dict({**reference["recipe"], "data_fraction": 1.0})
    tuned_recipe = Recipe.from_dict({**base.to_dict(), **args.finetune_recipe})  # from the supernet only
    variant = "".join(f"-{k}{v}" for k, v in sorted(args.finetune_recipe.items()))
    best = sorted(archs, key=lambda a: -np.mean(list(truth[a].values())))[:args.finetune_archs]
    cache = Path(args.work) / f"finetune-{supernet.checksum[:12]}"
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for arch in best:
        parsed = supernet.space.parse(arch)
        for epochs in args.finetune_epochs:
            for start in ("scratch", "supernet"):
                for seed in range(args.finetune_seeds):
                    tag = variant if start == "supernet" else ""
                    path = cache / f"{arch.replace('/', '_')}-{start}{tag}-e{epochs}-s{seed}.json"
                    if not path.exists():
                        print(f"final training {arch} from {start}, {epochs} epochs, seed {seed} ...", flush=True)
                        recipe = tuned_recipe if start == "supernet" else base
                        initial = supernet.subnetwork_state(parsed) if start == "supernet" else None
                        final = train_final(supernet.space, parsed, dataset, seed=seed, threads=args.threads,
                                            recipe=recipe.with_fidelity(epochs=epochs), initial_state=initial)
                        path.write_text(json.dumps({"arch": arch, "start": start, "epochs": epochs, "seed": seed,
                                                    "recipe": recipe.to_dict(),
                                                    "test_accuracy": final.test_accuracy,
                                                    "wall_s": final.wall_time_s}))
                    rows.append(json.loads(path.read_text()))
    return rows


def _counts(text: str, allow_all: bool = False) -> list[int | None]:
    """``"64,256"`` -> ``[64, 256]``; with ``allow_all``, ``all`` is None (every image)."""
    return [None if allow_all and n == "all" else int(n) for n in text.split(",")]


def time_to_reach(curve: list, target: float) -> float | None:
    for elapsed, best in curve:
        if best >= target - 1e-12:
            return elapsed
    return None


def rank_and_search(args, archs: list[str], truth: dict[str, dict[int, float]], reference: dict) -> dict:
    """The rank phase and, with ``--search-seeds``, the search phase; their part of the result."""
    ranks = rank_phase(args, archs, truth)
    train_threads = ranks[0]["train_threads"] or 1
    full_s = (time_full_trainings(args, archs, reference, train_threads) if args.time_trainings > 0
              else float(reference["mean_train_s"]))
    print(f"\nrank: {len(archs)} architectures of {args.reference.name}; two seeds of full training agree with "
          f"Kendall tau {ranks[0]['seed_vs_seed_kendall']:.3f}; one full training {full_s:.0f} s "
          f"({train_threads} thread)")
    print_table(["supernet", "sampling", "epochs", "calibration", "scored", "tau vs mean", "tau vs seeds",
                 "by loss", "train (full trainings)", "estimates/min"],
                [[Path(r["supernet"]).name, r["sampling"] + ("+KD" if r["distill"] and r["sampling"] == "sandwich"
                                                              else ""),
                  r["epochs"], r["calibration_images"], r["score_images"] or "all", r["kendall_vs_mean"],
                  " / ".join(f"{t:.3f}" for t in r["kendall_vs_seeds"]), r["kendall_loss_vs_mean"],
                  r["train_time_s"] / full_s,
                  r["per_minute"]] for r in ranks])
    payload = {"full_training_s": full_s, "full_training_threads": train_threads, "rank": ranks}
    if args.search_seeds > 0:
        latencies = reference.get("latency", {}).get("latency_ms", {})
        budget = float(np.quantile([latencies[a] for a in archs if a in latencies], args.budget_quantile))
        runs = search_phase(args, reference, budget)
        rows, summary = [], []
        for seed in range(args.search_seeds):
            full = next(r for r in runs if r["seed"] == seed and r["estimator"] == "train")
            shared = next(r for r in runs if r["seed"] == seed and r["estimator"] == "supernet")
            reach = time_to_reach(shared["curve"], full["final"]) if full["final"] is not None else None
            with_training = None if reach is None else reach + ranks[0]["train_time_s"]
            summary.append({"seed": seed, "full_final": full["final"], "supernet_final": shared["final"],
                            "full_elapsed_s": full["elapsed_s"], "supernet_reached_s": reach,
                            "supernet_reached_with_training_s": with_training})
            rows.append([seed, full["final"], full["trainings"], shared["final"], shared["trainings"],
                         shared["estimates"], "-" if reach is None else f"{reach / full['elapsed_s']:.2f}",
                         "-" if with_training is None else f"{with_training / full['elapsed_s']:.2f}"])
        print(f"\nsearch: budget {budget * 1000:.0f} us ({args.budget_quantile:g} quantile), {args.search_time} "
              f"each, {args.threads} threads per training; supernet searches: {args.initial_estimates} initial "
              f"estimates, {args.estimates_per_round} a round, supernet {Path(args.supernet[0]).name} trained "
              f"beforehand")
        print_table(["seed", "full: best", "trainings", "supernet: best", "trainings", "estimates",
                     "reach / full time", "incl. supernet training"], rows)
        payload.update(budget_ms=budget, search_time=args.search_time, searches=runs, search_summary=summary,
                       initial_estimates=args.initial_estimates, estimates_per_round=args.estimates_per_round)
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="A discrimination benchmark result.")
    parser.add_argument("--supernet", type=Path, action="append", required=True, help="A finished supernet.")
    parser.add_argument("--threads", type=int, default=2, help="Threads of estimates and search trainings.")
    parser.add_argument("--extra-archs", type=int, default=30, help="More random archs for the rate.")
    parser.add_argument("--time-trainings", type=int, default=2,
                        help="Reference archs trained now to time one full training (0: use the reference's).")
    parser.add_argument("--search-seeds", type=int, default=0)
    parser.add_argument("--search-time", default="5m", help="Wall-clock limit of each search.")
    parser.add_argument("--initial-estimates", type=int, default=60, help="Of the supernet searches.")
    parser.add_argument("--estimates-per-round", type=int, default=10, help="Of the supernet searches.")
    parser.add_argument("--budget-quantile", type=float, default=0.5,
                        help="Latency budget: this quantile of the reference archs' measured latencies.")
    parser.add_argument("--profiles-dir", default="profiles")
    parser.add_argument("--work", default="benchmarks/results/supernet-work")
    parser.add_argument("--score-images", default=[SCORE_IMAGES], type=lambda v: _counts(v, allow_all=True),
                        help="Validation images each estimate scores, comma-separated to compare (e.g. 1000,all) "
                             f"[default: {SCORE_IMAGES}, the estimator's].")
    parser.add_argument("--calibration-images", default=[CALIBRATION_IMAGES], type=_counts,
                        help="Training images of each BN recalibration, comma-separated to compare (e.g. 64,256) "
                             f"[default: {CALIBRATION_IMAGES}, the estimator's].")
    parser.add_argument("--no-rank", action="store_true", help="Skip the rank phase (e.g. to fine-tune only).")
    parser.add_argument("--finetune-archs", type=int, default=0,
                        help="Final trainings of this many best reference archs, from scratch and from the supernet.")
    parser.add_argument("--finetune-epochs", default="2,6", type=_counts)
    parser.add_argument("--finetune-seeds", type=int, default=1)
    parser.add_argument("--finetune-recipe", action="append", default=[], metavar="KEY=VALUE",
                        help="Recipe change of the trainings from the supernet (e.g. lr=0.003, warmup_epochs=0).")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    args.finetune_recipe = parse_options(args.finetune_recipe)

    truth, reference = reference_runs(args.reference)
    archs = sorted(truth)
    started = time.perf_counter()
    payload: dict = {"reference": str(args.reference), "archs": len(archs)}
    if args.finetune_archs > 0:
        tuned = finetune_phase(args, archs, truth, reference)
        table = {}
        for r in tuned:
            table.setdefault((r["arch"], r["epochs"]), {}).setdefault(r["start"], []).append(r["test_accuracy"])
        print(f"\nfinal trainings (train+validation, test accuracy) from scratch and from the supernet "
              f"{Path(args.supernet[0]).name}, {args.finetune_seeds} seed(s)")
        print_table(["arch", "epochs", "from scratch", "from supernet"],
                    [[a, e, np.mean(v["scratch"]), np.mean(v["supernet"])] for (a, e), v in table.items()])
        payload["finetune"] = tuned
    if not args.no_rank:
        payload.update(rank_and_search(args, archs, truth, reference))
    payload["elapsed_s"] = time.perf_counter() - started
    path = write_result("supernet" + (f"-{args.tag}" if args.tag else ""), payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
