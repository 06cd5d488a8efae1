"""Search benchmarks (issue 6): quality at equal training budgets, controller throughput, budget fidelity.

    .venv/bin/python benchmarks/search.py --quick              # smoke (~1-2 min): synthetic, 2 seeds, 10/20
    .venv/bin/python benchmarks/search.py                      # full synthetic + throughput
    .venv/bin/python benchmarks/search.py --no-synthetic --digits --digits-budgets 20 --epochs 4  # ~15 min

1. Search quality: the search loop (``SearchLoop``) with each controller (ppo, random, evolution: all of
   them on predicted reward, verifying their best candidates) at training budgets ``--budgets`` over
   ``--seeds`` seeds, plus plain random search without predictors (uniform samples, all trained).
   One run per (controller, seed) at the largest budget is scored at every budget: the loop's choices do
   not depend on ``max_trainings`` before it is reached, so the first B verifications of that run are
   exactly what a run with ``max_trainings=B`` verifies.
   (a) synthetic: nb201 with accuracy and latency as known functions of the ops plus noise
       (``_synthetic.py``); latency budget = the ``--budget-quantile`` of the space's latencies; the
       "profile" is a fixed random set of 200 architectures. Reported: median regret (true best accuracy
       under the budget minus the best verified one).
   (b) digits (``--digits``): real trainings through the evaluation store (``--store``, reused across
       reruns; ``--epochs`` for low fidelity) and latency from the host profile, copied once into
       ``--bench-profiles-dir`` so that the search's new measurements do not leak into ``profiles/``.
       Every run sees only its own trainings and the profile as it was at the start (equal budgets).
       Reported: median best verified accuracy under the budget.
2. Controller throughput: predicted architectures per second (objective calls, and distinct architectures)
   for each controller on a real fitted predictor pair (mobilenet@1x8x8: latency from the host profile,
   accuracy from stored digits trainings when there are enough, else a stand-in target). Target >= 1000/s.
3. Latency-budget fidelity (digits runs): each run's final architecture re-measured (``profile_arch``);
   share within the budget (target 100%) and median measured / budget.

Prints tables and writes ``benchmarks/results/search[-quick].json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_result  # noqa: E402
from _synthetic import make_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwnas.predictors import AccuracyPredictor, LatencyPredictor  # noqa: E402
from hwnas.search.controllers import create_controller  # noqa: E402
from hwnas.search.loop import SearchLoop, SearchSettings  # noqa: E402
from hwnas.search.objective import PredictedObjective  # noqa: E402
from hwnas.search.reward import create_reward  # noqa: E402
from hwnas.search.config import RunConfig  # noqa: E402
from hwnas.search.rundir import RunDir  # noqa: E402
from hwnas.spaces import create_space  # noqa: E402

SHAPE, CLASSES = (1, 8, 8), 10
PURE_RANDOM = "random (no predictors)"


# -- sources -------------------------------------------------------------------------------------------------
class TableAccuracy:
    """Accuracy from the synthetic table; ``known`` is what this run has evaluated."""

    def __init__(self, table) -> None:
        self.table, self.seen = table, {}

    def evaluate(self, arch):
        self.seen[arch.string] = self.table.acc(arch.string)
        return {"accuracy": self.seen[arch.string]}

    def known(self):
        return list(self.seen.items())


class TableLatency:
    """Latency from the synthetic table; ``known`` is a fixed "device profile" of random architectures."""

    def __init__(self, table, profile: list[str]) -> None:
        self.table, self.profile = table, profile

    def measure(self, arch):
        return {"latency_ms": self.table.lat(arch.string), "measured": True}

    def known(self):
        return [(s, self.table.lat(s)) for s in self.profile]


class RunScopedAccuracy:
    """A store-backed source whose ``known`` is only this run's evaluations (equal budgets for every run)."""

    def __init__(self, source) -> None:
        self.source, self.seen = source, {}

    def evaluate(self, arch):
        result = self.source.evaluate(arch)
        self.seen[arch.string] = result["accuracy"]
        return result

    def known(self):
        return list(self.seen.items())


class FrozenProfileLatency:
    """A profile-backed source whose ``known`` is the profile as it was at the benchmark's start."""

    def __init__(self, source, base: list[tuple[str, float]]) -> None:
        self.source, self.base = source, base

    def measure(self, arch):
        return self.source.measure(arch)

    def known(self):
        return list(self.base)


# -- one search ----------------------------------------------------------------------------------------------
def run_loop(*, space_name: str, controller: str, seed: int, accuracy, latency, budget_ms: float,
             max_trainings: int, args) -> list[dict]:
    """Runs one search in a temporary run directory; returns its verified architectures, in order."""
    space = create_space(space_name)
    settings = SearchSettings(budget_ms=budget_ms, max_trainings=max_trainings,
                              initial_trainings=args.initial_trainings,
                              candidates_per_round=args.candidates_per_round, explore_per_round=1,
                              archs_per_round=args.archs_per_round, explore=0.5, seed=seed)
    common = dict(space=space_name, input_shape=SHAPE, num_classes=CLASSES, random_state=seed)
    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        run_dir = RunDir.create(Path(tmp) / "run", RunConfig(budget_ms=budget_ms, space=space_name,
                                                             controller=controller, input_shape=SHAPE,
                                                             num_classes=CLASSES))
        loop = SearchLoop(space=space, controller=create_controller(controller, space, seed=seed),
                          reward=create_reward(args.reward), accuracy_source=accuracy, latency_source=latency,
                          settings=settings, run_dir=run_dir,
                          make_accuracy_predictor=lambda: AccuracyPredictor(**common),
                          make_latency_predictor=lambda: LatencyPredictor(**common))
        loop.run()
        return [vars(v) for v in loop.state.verified]


def best_within(verified: list[dict], trainings: int, budget_ms: float) -> dict | None:
    feasible = [v for v in verified[:trainings] if v["latency_ms"] <= budget_ms]
    return max(feasible, key=lambda v: (v["accuracy"], -v["latency_ms"]), default=None)


def pure_random(space, seed: int, n: int) -> list:
    rng = np.random.default_rng([seed, 99])
    seen: dict[str, object] = {}
    while len(seen) < n:
        arch = space.sample(rng)
        seen.setdefault(arch.string, arch)
    return list(seen.values())


# -- 1a. synthetic -------------------------------------------------------------------------------------------
def synthetic(args) -> dict:
    table = make_table(noise=args.synthetic_noise, seed=0)
    budget_ms = float(np.quantile(table.latency_ms, args.budget_quantile))
    best_arch, best_acc = table.best_under(budget_ms)
    rng = np.random.default_rng(12345)
    profile = [table.strings[i] for i in rng.choice(len(table.strings), size=200, replace=False)]
    space = create_space("nb201")
    runs = []
    for seed in range(args.seeds):
        for controller in args.controllers:
            t0 = time.perf_counter()
            verified = run_loop(space_name="nb201", controller=controller, seed=seed,
                                accuracy=TableAccuracy(table), latency=TableLatency(table, profile),
                                budget_ms=budget_ms, max_trainings=max(args.budgets), args=args)
            wall = time.perf_counter() - t0
            for b in args.budgets:
                best = best_within(verified, b, budget_ms)
                runs.append({"controller": controller, "seed": seed, "trainings": b, "wall_s": wall,
                             "best_accuracy": None if best is None else best["accuracy"],
                             "regret": best_acc - (0.0 if best is None else best["accuracy"])})
            print(f"  synthetic {controller:10} seed {seed}: {wall:.1f} s", flush=True)
        archs = pure_random(space, seed, max(args.budgets))
        verified = [{"arch": a.string, "accuracy": table.acc(a.string), "latency_ms": table.lat(a.string)}
                    for a in archs]
        for b in args.budgets:
            best = best_within(verified, b, budget_ms)
            runs.append({"controller": PURE_RANDOM, "seed": seed, "trainings": b, "wall_s": 0.0,
                         "best_accuracy": None if best is None else best["accuracy"],
                         "regret": best_acc - (0.0 if best is None else best["accuracy"])})
    return {"budget_ms": budget_ms, "budget_quantile": args.budget_quantile, "true_best": best_arch,
            "true_best_accuracy": best_acc, "noise": args.synthetic_noise,
            "feasible_share_of_space": float(np.mean(table.latency_ms <= budget_ms)), "runs": runs,
            "summary": summarize(runs, args.budgets, "regret")}


def summarize(runs: list[dict], budgets, key: str) -> list[dict]:
    rows = []
    for controller in dict.fromkeys(r["controller"] for r in runs):
        for b in budgets:
            sel = [r for r in runs if r["controller"] == controller and r["trainings"] == b]
            values = [r[key] for r in sel if r[key] is not None]
            rows.append({"controller": controller, "trainings": b, "seeds": len(sel),
                         f"median_{key}": float(np.median(values)) if values else None,
                         f"mean_{key}": float(np.mean(values)) if values else None,
                         "feasible_runs": sum(r["best_accuracy"] is not None for r in sel),
                         "median_wall_s": float(np.median([r["wall_s"] for r in sel]))})
    return rows


# -- 1b + 3. digits ------------------------------------------------------------------------------------------
def bench_profile(args):
    """The benchmark's copy of the host profile (made once), and the original profile's records."""
    from hwnas.profiling import ProfileStore

    target = args.bench_profiles_dir / args.device
    if not (target / "device.json").exists():
        source = args.profiles_dir / args.device
        if not (source / "device.json").exists():
            raise SystemExit(f"no profile {source}: run 'hwnas profile --device {args.device} "
                             f"--space mobilenet --input-shape 1x8x8' first")
        args.bench_profiles_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
    # The search's own measurements go to the copy; what every run starts from is the original profile.
    records = ProfileStore(args.profiles_dir, args.device).records("mobilenet", SHAPE)
    return ProfileStore(args.bench_profiles_dir, args.device), [(r["arch"], float(r["median_ms"]))
                                                                 for r in records]


def digits(args) -> dict:
    from hwnas.data import create_dataset
    from hwnas.profiling import Conditions, profile_arch
    from hwnas.search.sources.accuracy import StoreAccuracy
    from hwnas.search.budget import parse_latency
    from hwnas.search.sources.latency import ProfileLatency
    from hwnas.training import DEFAULT_RECIPE, EvalStore, Trainer

    space = create_space("mobilenet")
    store, base = bench_profile(args)
    fp = store.fingerprint or {}
    conditions = Conditions(provider=fp.get("provider", "cpu"), threads=int(fp.get("threads", 1)),
                            batch_size=int(fp.get("batch_size", 1)), precision=fp.get("precision", "fp32"))
    if args.latency_budget == "auto":
        budget_ms = float(np.quantile([lat for _, lat in base], args.budget_quantile))
    else:
        budget_ms = parse_latency(args.latency_budget)
    recipe = DEFAULT_RECIPE.with_fidelity(epochs=args.epochs)
    dataset = create_dataset("digits")
    args.store.parent.mkdir(parents=True, exist_ok=True)
    evals = EvalStore(args.store)
    runs, fidelity = [], []
    for seed in range(args.digits_seeds):
        for controller in args.controllers:
            accuracy = RunScopedAccuracy(StoreAccuracy(evals, space, dataset, recipe=recipe, seed=0,
                                                       evaluator=Trainer(threads=1)))
            profile = ProfileLatency(store, space, input_shape=SHAPE, num_classes=CLASSES,
                                     conditions=conditions, seed=0)
            latency = FrozenProfileLatency(profile, base)
            t0 = time.perf_counter()
            verified = run_loop(space_name="mobilenet", controller=controller, seed=seed, accuracy=accuracy,
                                latency=latency, budget_ms=budget_ms, max_trainings=max(args.digits_budgets),
                                args=args)
            wall = time.perf_counter() - t0
            for b in args.digits_budgets:
                best = best_within(verified, b, budget_ms)
                runs.append({"controller": controller, "seed": seed, "trainings": b, "wall_s": wall,
                             "best_accuracy": None if best is None else best["accuracy"],
                             "best_arch": None if best is None else best["arch"],
                             "best_latency_ms": None if best is None else best["latency_ms"]})
            final = best_within(verified, max(args.digits_budgets), budget_ms)
            if final is not None:
                again = profile_arch(space, final["arch"], SHAPE, CLASSES, conditions=conditions, seed=1)
                fidelity.append({"controller": controller, "seed": seed, "arch": final["arch"],
                                 "search_ms": final["latency_ms"], "remeasured_ms": float(again["median_ms"]),
                                 "within_budget": bool(again["median_ms"] <= budget_ms),
                                 "remeasured_over_budget": float(again["median_ms"]) / budget_ms})
            print(f"  digits {controller:10} seed {seed}: {wall:.0f} s, best "
                  f"{'none' if final is None else round(final['accuracy'], 4)}", flush=True)
    evals.close()
    result = {"budget_ms": budget_ms, "epochs": args.epochs, "runs": runs,
              "summary": summarize(runs, args.digits_budgets, "best_accuracy"), "fidelity": fidelity}
    if fidelity:
        result["fidelity_summary"] = {
            "runs": len(fidelity),
            "share_within_budget": float(np.mean([f["within_budget"] for f in fidelity])),
            "median_remeasured_over_budget": float(np.median([f["remeasured_over_budget"]
                                                              for f in fidelity])),
            "median_remeasured_over_search": float(np.median([f["remeasured_ms"] / f["search_ms"]
                                                              for f in fidelity]))}
    return result


# -- 2. throughput -------------------------------------------------------------------------------------------
def controller_throughput(args) -> dict:
    from hwnas.profiling import ProfileStore
    from hwnas.training import DEFAULT_RECIPE, EvalStore

    records = ProfileStore(args.profiles_dir, args.device).records("mobilenet", SHAPE)
    if len(records) < 20:
        raise SystemExit(f"profile {args.profiles_dir / args.device} holds {len(records)} "
                         f"mobilenet@1x8x8 records")
    archs, lats = [r["arch"] for r in records], np.array([float(r["median_ms"]) for r in records])
    lat_model = LatencyPredictor(space="mobilenet", input_shape=SHAPE).fit(archs, lats)
    acc_archs, acc_y, acc_source = archs, -np.log(lats) * 0.01 + 0.9, "stand-in (no stored trainings)"
    if args.store.exists():
        from hwnas.data import create_dataset
        from hwnas.search.sources.accuracy import StoreAccuracy
        from hwnas.training import Trainer

        with EvalStore(args.store) as evals:
            stored = StoreAccuracy(evals, create_space("mobilenet"), create_dataset("digits"),
                                   recipe=DEFAULT_RECIPE.with_fidelity(epochs=args.epochs), seed=0,
                                   evaluator=Trainer(threads=1)).known()
        if len(stored) >= 20:
            acc_archs, acc_y = [a for a, _ in stored], np.array([v for _, v in stored])
            acc_source = f"{len(stored)} digits trainings at {args.epochs} epochs"
    acc_model = AccuracyPredictor(space="mobilenet", input_shape=SHAPE).fit(acc_archs, acc_y)
    budget_ms = float(np.quantile(lats, args.budget_quantile))
    space = create_space("mobilenet")
    rows = []
    for controller in args.controllers:
        ctrl = create_controller(controller, space, seed=0)
        spent = [0.0]

        def timed(fn):
            def wrapper(strings):
                t = time.perf_counter()
                try:
                    return fn(strings)
                finally:
                    spent[0] += time.perf_counter() - t
            return wrapper

        objective = PredictedObjective(accuracy=timed(acc_model.predict_dist),
                                       latency=timed(lat_model.predict_dist),
                                       reward=create_reward(args.reward), budget_ms=budget_ms, explore=0.5)
        ctrl.learn(objective, 256)  # builds the policy / population; featuriser caches warm up
        calls, distinct = objective.calls, len(objective.cache)
        spent[0] = 0.0
        t0 = time.perf_counter()
        ctrl.learn(objective, args.throughput_archs)
        seconds = time.perf_counter() - t0
        rows.append({"controller": controller, "archs": objective.calls - calls, "seconds": seconds,
                     "archs_per_s": (objective.calls - calls) / seconds,
                     "distinct_per_s": (len(objective.cache) - distinct) / seconds,
                     "predictor_share": spent[0] / seconds})
    return {"accuracy_predictor_data": acc_source, "latency_records": len(records), "cores": os.cpu_count(),
            "rows": rows, "target_per_s": 1000}


# -- main ----------------------------------------------------------------------------------------------------
def report(result: dict) -> None:
    syn = result.get("synthetic")
    if syn:
        print(f"\n1a. synthetic nb201: budget {syn['budget_ms']:.3f} ms "
              f"({100 * syn['feasible_share_of_space']:.0f}% of the space fits), true best "
              f"{syn['true_best_accuracy']:.4f}; median regret (lower is better)")
        print_table(["controller", "trainings", "seeds", "median regret", "mean regret", "feasible", "s/run"],
                    [[r["controller"], r["trainings"], r["seeds"], r["median_regret"], r["mean_regret"],
                      r["feasible_runs"], r["median_wall_s"]] for r in syn["summary"]])
        for b, r in syn["ppo_vs_random"].items():
            if r["ppo"] is None:
                continue
            parts = [f"{name} {r[key]:.4f} (PPO {100 * (r['ppo'] / r[key] - 1):+.0f}%)"
                     for key, name in (("random", "random-in-loop"), ("pure_random", "plain random"))
                     if r.get(key)]
            print(f"    {b} trainings: PPO median regret {r['ppo']:.4f} vs {', '.join(parts)}")
    dig = result.get("digits")
    if dig:
        print(f"\n1b. digits: budget {dig['budget_ms']:.4f} ms, {dig['epochs']} epochs; median best verified "
              f"accuracy under the budget")
        print_table(["controller", "trainings", "seeds", "median acc", "mean acc", "feasible", "s/run"],
                    [[r["controller"], r["trainings"], r["seeds"], r["median_best_accuracy"],
                      r["mean_best_accuracy"], r["feasible_runs"], r["median_wall_s"]]
                     for r in dig["summary"]])
        for b, r in dig["ppo_vs_random"].items():
            if r["ppo"] is not None and r["random"] is not None:
                print(f"    {b} trainings: PPO {r['ppo']:.4f} vs random-in-loop {r['random']:.4f} "
                      f"({100 * (r['ppo'] - r['random']):+.2f} points)")
        fs = dig.get("fidelity_summary")
        if fs:
            print(f"\n3.  budget fidelity ({fs['runs']} final archs re-measured): "
                  f"{100 * fs['share_within_budget']:.0f}% within budget (target 100%), "
                  f"median re-measured/budget "
                  f"{fs['median_remeasured_over_budget']:.3f}, re-measured/search-time "
                  f"{fs['median_remeasured_over_search']:.3f}")
    thr = result["throughput"]
    print(f"\n2.  controller throughput, mobilenet@1x8x8 (accuracy predictor on "
          f"{thr['accuracy_predictor_data']}; target >= 1000/s)")
    print_table(["controller", "archs", "seconds", "archs/s", "distinct/s", "in predictors"],
                [[r["controller"], r["archs"], r["seconds"], r["archs_per_s"], r["distinct_per_s"],
                  f"{100 * r['predictor_share']:.0f}%"]
                 for r in thr["rows"]])


def compare(summary: list[dict], key: str) -> dict:
    out = {}
    for b in sorted({r["trainings"] for r in summary}):
        by = {r["controller"]: r[f"median_{key}"] for r in summary if r["trainings"] == b}
        out[str(b)] = {"ppo": by.get("ppo"), "random": by.get("random"), "pure_random": by.get(PURE_RANDOM),
                       "evolution": by.get("evolution")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 seeds, budgets 10/20, synthetic only unless --digits")
    parser.add_argument("--controllers", nargs="+", default=["ppo", "random", "evolution"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 40, 80],
                        help="synthetic training budgets")
    parser.add_argument("--seeds", type=int, default=5, help="synthetic seeds")
    parser.add_argument("--synthetic-noise", type=float, default=0.004)
    parser.add_argument("--budget-quantile", type=float, default=0.3,
                        help="latency budget as this quantile of the space's (synthetic) or the profile's "
                             "latencies")
    parser.add_argument("--reward", default="hard")
    parser.add_argument("--initial-trainings", type=int, default=8)
    parser.add_argument("--candidates-per-round", type=int, default=4)
    parser.add_argument("--archs-per-round", type=int, default=2000)
    parser.add_argument("--digits", action="store_true", help="also run the digits task (real trainings)")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic task")
    parser.add_argument("--digits-budgets", type=int, nargs="+", default=[20, 40, 80])
    parser.add_argument("--digits-seeds", type=int, default=5)
    parser.add_argument("--latency-budget", default="auto",
                        help="digits latency budget, e.g. 0.06ms; auto: --budget-quantile of the profile")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--store", type=Path, default=ROOT / "benchmarks" / "results" / "evals-bench.sqlite")
    parser.add_argument("--profiles-dir", type=Path, default=ROOT / "profiles")
    parser.add_argument("--bench-profiles-dir", type=Path,
                        default=ROOT / "benchmarks" / "results" / "profiles-bench")
    parser.add_argument("--device", default="host")
    parser.add_argument("--throughput-archs", type=int, default=4000)
    if parser.parse_known_args()[0].quick:  # smaller defaults; options given explicitly still win
        parser.set_defaults(seeds=2, budgets=[10, 20], archs_per_round=500, throughput_archs=1000,
                            initial_trainings=6, digits_seeds=1, digits_budgets=[10], epochs=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    result: dict = {"quick": args.quick, "reward": args.reward, "settings": {
        "initial_trainings": args.initial_trainings, "candidates_per_round": args.candidates_per_round,
        "archs_per_round": args.archs_per_round, "explore_per_round": 1}}
    if not args.no_synthetic:
        result["synthetic"] = synthetic(args)
        result["synthetic"]["ppo_vs_random"] = compare(result["synthetic"]["summary"], "regret")
    if args.digits:
        result["digits"] = digits(args)
        result["digits"]["ppo_vs_random"] = compare(result["digits"]["summary"], "best_accuracy")
    result["throughput"] = controller_throughput(args)
    result["wall_s"] = time.perf_counter() - t0
    report(result)
    path = write_result("search-quick" if args.quick else "search", result)
    print(f"\n{result['wall_s']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
