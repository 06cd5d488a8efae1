"""Search quality on real published data (issue 12): NAS-Bench-201 accuracies, HW-NAS-Bench latencies.

    .venv/bin/python benchmarks/nb201_real.py --controllers ppo,random,evolution,mcts,dynaq --seeds 2  # ~80 min
    .venv/bin/python benchmarks/nb201_real.py --quick                # smoke: cifar100, 2 devices, 2 budgets, 2 seeds
    .venv/bin/python benchmarks/nb201_real.py --controllers random -S acquisition=ei --tag ei   # an ablation
    .venv/bin/python benchmarks/nb201_real.py --controllers ppo --noise 1.0   # 1 point of training noise

Every configuration — table (``cifar100``, ``imagenet16-120`` in ``../shared/benchdata/nb201``) x device
(``edgegpu``, ``raspi4``, ``pixel3``, ``fpga``) x latency budget (the 0.1 / 0.25 / 0.5 quantile of that
device's latencies) x seed — runs the real search loop (:class:`~hwnas.search.loop.SearchLoop`, default settings
unless ``-S`` overrides them) with each controller for ``--max-trainings`` trainings. A "training" is a look-up
of the table's test accuracy, a "measurement" a look-up of the device's latency; the latency predictor starts
from 120 table rows spread over the latency range (as ``hwnas search --latency-table`` does) and the accuracy
predictor from nothing.

Reported per controller at 25 / 50 / 100 trainings, over all configurations and seeds: median and p90 regret
(true best accuracy under the budget minus the best trained architecture under it, in accuracy points), share
of trainings spent on architectures over the budget, budget violations of the answer, latency measurements
used. Beside them two exact baselines computed from the tables (no simulation): plain random search (uniform
architectures, all trained) and random search among the *feasible* architectures (latency looked up first, the
same number of trainings); their regret distributions are exact, pooled over the same configurations.

``--noise SIGMA`` adds per-training Gaussian noise (in points, a new draw per seed and per extra seed) to the
table's accuracies, as real trainings have; every answer is scored by its *true* (table) accuracy: the curve's
by the single highest noisy value so far, the final ``answer`` by the loop's own choice (the finalists' best
mean: ``--final-seeds`` is on with noise, as for real trainings). Also reported: runs that stopped before their
training budget while untrained equivalence classes within the budget remained ("early stops"; the loop trains
one architecture per class), and the configurations where a controller's median answer is worse than feasible
random search's median there.

Each run's curve is cached in ``benchmarks/results/nb201_real/<tag>/`` so an interrupted benchmark resumes;
the summary goes to ``benchmarks/results/nb201_real[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, map_jobs, parse_options, print_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "benchdata" / "nb201"

TABLES = {"cifar100": ((3, 32, 32), 100), "imagenet16-120": ((3, 16, 16), 120)}
DEVICES = ("edgegpu", "raspi4", "pixel3", "fpga")
QUANTILES = (0.1, 0.25, 0.5)
MARKS = (25, 50, 100)
PRIOR_ROWS = 120


@lru_cache(maxsize=None)
def load_table(name: str) -> dict:
    """``{"arch": [...], "acc": array, "<device>": array}`` of one shared table (accuracies in points)."""
    with open(DATA / f"{name}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = {"arch": [r["arch"] for r in rows], "acc": np.array([float(r["test_accuracy"]) for r in rows]) * 100}
    for device in DEVICES:
        table[device] = np.array([float(r[f"{device}_latency_ms"]) for r in rows])
    return table


class Accuracy:
    """Table accuracy (a fraction, as trainings report it); ``known`` is only what this run trained.

    With ``noise`` (points), each training adds a Gaussian draw of that spread, a new one per run seed and per
    replica (the finalists' extra seeds), as training noise would: ``replica(k)`` is the same table with the
    k-th extra seed's draws (None without noise: a repeat gives the same number).
    """

    def __init__(self, acc: dict[str, float], *, noise: float = 0.0, seed: int = 0, replica: int = 0) -> None:
        self.acc, self.seen = acc, {}
        self.noise, self.seed, self.index = noise, seed, replica
        self.ids = {a: i for i, a in enumerate(sorted(acc))}

    def value(self, string: str) -> float:
        """The accuracy a training of ``string`` reports (a fraction)."""
        draw = 0.0
        if self.noise > 0:
            draw = self.noise * float(np.random.default_rng([self.seed, self.index, self.ids[string]]).standard_normal())
        return (self.acc[string] + draw) / 100

    def evaluate(self, arch):
        self.seen[arch.string] = self.value(arch.string)
        return {"accuracy": self.seen[arch.string]}

    def known(self):
        return list(self.seen.items())

    def replica(self, index: int):
        return None if self.noise <= 0 else Accuracy(self.acc, noise=self.noise, seed=self.seed, replica=index)


class Latency:
    """Table latency; ``known`` is the prior (rows spread evenly over the latency range), as with
    ``--latency-table``."""

    def __init__(self, lat: dict[str, float]) -> None:
        from hwnas.search.sources.tables import spread_rows

        self.lat = lat
        self.prior = spread_rows(lat, PRIOR_ROWS)
        self.calls = 0

    def measure(self, arch):
        self.calls += 1
        return {"latency_ms": self.lat[arch.string], "measured": True}

    def known(self):
        return list(self.prior)


@lru_cache(maxsize=None)
def feasible_keys(table_name: str, device: str, quantile: float) -> frozenset:
    """Equivalence keys of the architectures within the budget."""
    from hwnas.spaces import create_space

    space, table = create_space("nb201"), load_table(table_name)
    limit = budget_of(table, device, quantile)
    return frozenset(space.equivalence_key(space.parse(a)) for a, ms in zip(table["arch"], table[device])
                     if ms <= limit)


def budget_of(table: dict, device: str, quantile: float) -> float:
    return float(np.quantile(table[device], quantile))


def run_one(job: dict) -> dict:
    """One search; its curve is cached in ``job["cache"]``."""
    cache = Path(job["cache"])
    if cache.exists():
        return json.loads(cache.read_text())
    logging.disable(logging.WARNING)
    from hwnas.predictors import AccuracyPredictor, LatencyPredictor
    from hwnas.search.controllers import create_controller
    from hwnas.search.loop import SearchLoop, SearchSettings
    from hwnas.search.reward import create_reward
    from hwnas.search.config import RunConfig
    from hwnas.search.rundir import RunDir
    from hwnas.spaces import create_space

    table = load_table(job["table"])
    shape, classes = TABLES[job["table"]]
    acc = dict(zip(table["arch"], table["acc"]))
    lat = dict(zip(table["arch"], table[job["device"]]))
    budget = budget_of(table, job["device"], job["quantile"])
    feasible = table[job["device"]] <= budget
    best = float(table["acc"][feasible].max())
    space = create_space("nb201")
    settings = SearchSettings(budget_ms=budget, max_trainings=job["max_trainings"], seed=job["seed"],
                              initial_trainings=8, num_classes=classes, **job["settings"])
    noise = float(job.get("noise", 0.0))
    common = dict(space="nb201", input_shape=shape, num_classes=classes, random_state=job["seed"])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwnas-nb201-") as tmp:
        controller = create_controller(job["controller"], space, seed=job["seed"],
                                       **job.get("controller_options", {}))
        loop = SearchLoop(space=space, controller=controller,
                          reward=create_reward("hard"),
                          accuracy_source=Accuracy(acc, noise=noise, seed=job["seed"]), latency_source=Latency(lat),
                          settings=settings, run_dir=RunDir.create(Path(tmp) / "run", RunConfig(
                              budget_ms=budget, space="nb201", input_shape=shape, num_classes=classes)),
                          make_accuracy_predictor=lambda: AccuracyPredictor(**common),
                          make_latency_predictor=lambda: LatencyPredictor(**common))
        result = loop.run()
        verified = [vars(v) for v in loop.state.verified]
        measured = len(loop.state.measured)
        answer = result.best.arch if result.best else None
        finals = len(loop.state.finals)
    wall = time.perf_counter() - t0
    # How well the loop's accuracy predictor, fit on the loop's own trainings (concentrated near the top, unlike
    # the uniform draws of nb201_predictors.py), ranks the table's true top 10%.
    from hwnas.predictors.metrics import kendall

    fitted = AccuracyPredictor(**common).fit([v["arch"] for v in verified], [v["accuracy"] for v in verified])
    taus = []
    for pool in (np.arange(len(feasible)), np.flatnonzero(feasible)):  # all architectures; those under the budget
        top = pool[np.argsort(-table["acc"][pool], kind="stable")[:max(2, len(pool) // 10)]]
        taus.append(kendall(table["acc"][top], fitted.predict([table["arch"][i] for i in top])))
    # Scored by the *true* accuracy of the answer so far (the single best reported value: with noise, that of
    # the luckiest training), and of the loop's final answer (the finalists' best mean when it re-trained them).
    regret, running = [], None
    for v in verified:
        if v["latency_ms"] <= budget and (running is None or v["accuracy"] > running[0]):
            running = (v["accuracy"], acc[v["arch"]])
        regret.append(best - (running[1] if running is not None else 0.0))
    answer_regret = best - acc[answer] if answer is not None else best
    out = {**{k: job[k] for k in ("table", "device", "quantile", "seed", "controller")}, "budget_ms": budget,
           "true_best": best, "regret": regret, "over_budget": [int(v["latency_ms"] > budget) for v in verified],
           "measurements": [v.get("measurements_used") for v in verified], "measurements_total": measured,
           "max_trainings": job["max_trainings"], "noise": noise,
           "answer_over_budget": int(bool(verified) and running is None), "wall_s": wall,
           "trained_archs": [v["arch"] for v in verified], "top10_tau": taus[0],
           "top10_feasible_tau": taus[1], "answer_regret": answer_regret, "finals": finals,
           "stop_reason": result.stop_reason, "trainings_used": result.trainings_used,
           # untrained equivalence classes within the budget (the loop never trains a twin of a trained one)
           "feasible_left": len(feasible_keys(job["table"], job["device"], job["quantile"])
                                - {space.equivalence_key(space.parse(v["arch"])) for v in verified})}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = cache.with_suffix(".tmp")
    tmp_file.write_text(json.dumps(out))
    tmp_file.replace(cache)
    return out


# -- exact baselines -----------------------------------------------------------------------------------------
def _log_comb(n: np.ndarray | int, k: int) -> np.ndarray:
    from scipy.special import gammaln

    n = np.asarray(n, dtype=float)
    out = gammaln(n + 1) - gammaln(k + 1) - gammaln(np.maximum(n - k, 0) + 1)
    return np.where(n >= k, out, -np.inf)


def random_regret_distribution(acc: np.ndarray, feasible: np.ndarray, n: int, *, only_feasible: bool):
    """Exact distribution of the regret of ``n`` distinct uniform draws (from all architectures, or from the
    feasible ones): ``(regret values, probabilities)``."""
    best = acc[feasible].max()
    pool_size = int(feasible.sum()) if only_feasible else len(acc)
    values = np.sort(np.unique(acc[feasible]))
    # P(best found <= a) = C(#draws whose feasible accuracy is <= a, n) / C(pool, n)
    infeasible_others = 0 if only_feasible else int((~feasible).sum())
    below = np.searchsorted(np.sort(acc[feasible]), values, side="right") + infeasible_others
    cdf = np.exp(_log_comb(below, n) - _log_comb(pool_size, n))
    p_none = float(np.exp(_log_comb(infeasible_others, n) - _log_comb(pool_size, n))) if infeasible_others else 0.0
    probs = np.diff(np.concatenate([[p_none], cdf]))
    regrets = np.concatenate([[best], best - values])  # nothing feasible found: regret = the best's accuracy
    return regrets, np.concatenate([[p_none], probs])


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][np.searchsorted(cum, q - 1e-12)])


def baselines(configs: list[tuple[str, str, float]], marks) -> list[dict]:
    rows = []
    for only_feasible, name in ((False, "random search (exact)"), (True, "feasible random search (exact)")):
        for mark in marks:
            values, weights = [], []
            for table_name, device, quantile in configs:
                table = load_table(table_name)
                feasible = table[device] <= budget_of(table, device, quantile)
                v, w = random_regret_distribution(table["acc"], feasible, mark, only_feasible=only_feasible)
                values.append(v)
                weights.append(w / len(configs))
            v, w = np.concatenate(values), np.concatenate(weights)
            rows.append({"method": name, "trainings": mark, "median_regret": weighted_quantile(v, w, 0.5),
                         "p90_regret": weighted_quantile(v, w, 0.9), "mean_regret": float((v * w).sum() / w.sum()),
                         "share_trained_over_budget": None if only_feasible else
                         float(np.mean([1 - np.mean(load_table(t)[d] <= budget_of(load_table(t), d, q))
                                        for t, d, q in configs]))})
    return rows


def _median_of(runs: list[dict], key: str) -> float | None:
    """Median of ``key`` over the runs that recorded it (runs cached by earlier versions did not)."""
    values = [r[key] for r in runs if key in r]
    return float(np.nanmedian(values)) if values else None


def summarize(runs: list[dict], marks) -> list[dict]:
    rows = []
    for controller in dict.fromkeys(r["controller"] for r in runs):
        sel = [r for r in runs if r["controller"] == controller]
        for mark in marks:
            regrets = np.array([r["regret"][min(mark, len(r["regret"])) - 1] for r in sel])
            over = [o for r in sel for o in r["over_budget"][:mark]]
            counts = [r["measurements"][min(mark, len(r["measurements"])) - 1] for r in sel]
            rows.append({"method": f"loop: {controller}", "trainings": mark, "runs": len(sel),
                         "median_regret": float(np.median(regrets)), "p90_regret": float(np.quantile(regrets, 0.9)),
                         "mean_regret": float(regrets.mean()),
                         "share_trained_over_budget": float(np.mean(over)) if over else 0.0,
                         "answer_over_budget": int(sum(r["answer_over_budget"] for r in sel)),
                         "median_measurements": float(np.median([c for c in counts if c is not None] or [0])),
                         **{f"median_{key}": _median_of(sel, key) for key in ("top10_tau", "top10_feasible_tau")},
                         "median_wall_s": float(np.median([r["wall_s"] for r in sel]))})
            if mark == marks[-1] and all("answer_regret" in r for r in sel):
                answers = np.array([r["answer_regret"] for r in sel])
                rows[-1].update(answer_median_regret=float(np.median(answers)),
                                answer_p90_regret=float(np.quantile(answers, 0.9)),
                                early_stops=sum(r["trainings_used"] < r["max_trainings"] and r["feasible_left"] > 0
                                                for r in sel))
    return rows


def worse_than_random(runs: list[dict], max_trainings: int) -> list[dict]:
    """Configurations where a controller's median answer regret over seeds is worse than feasible random
    search's median for that configuration."""
    out = []
    for controller in dict.fromkeys(r["controller"] for r in runs):
        groups: dict = {}
        for r in runs:
            if r["controller"] == controller:
                groups.setdefault((r["table"], r["device"], r["quantile"]), []).append(r)
        for (t, d, q), sel in sorted(groups.items()):
            table = load_table(t)
            feasible = table[d] <= budget_of(table, d, q)
            v, w = random_regret_distribution(table["acc"], feasible, max_trainings, only_feasible=True)
            reference = weighted_quantile(v, w, 0.5)
            median = float(np.median([r.get("answer_regret", r["regret"][-1]) for r in sel]))
            if median > reference + 1e-9:
                out.append({"controller": controller, "table": t, "device": d, "quantile": q,
                            "median_regret": median, "feasible_random_median": reference})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--controllers", default="ppo,random,evolution")
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--devices", default=",".join(DEVICES))
    parser.add_argument("--quantiles", default=",".join(map(str, QUANTILES)))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seeds-per-controller", action="append", default=[], metavar="CONTROLLER=N",
                        help="Another number of seeds for one controller (e.g. ppo=5 with --seeds 2).")
    parser.add_argument("--max-trainings", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-S", "--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a SearchSettings field (e.g. acquisition=ei, explore_per_round=0).")
    parser.add_argument("-C", "--controller-option", action="append", default=[], metavar="KEY=VALUE",
                        help="A keyword of the controllers' constructors (e.g. n_envs=128), for an ablation.")
    parser.add_argument("--tag", default="", help="Name of this variant (results and cache folder).")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                        help="Per-training Gaussian noise (accuracy points) on the table's accuracies, a new draw per "
                             "seed; answers are scored by their true accuracy. The finalists' extra seeds are on, as "
                             "for real trainings, unless -S final_seeds=0.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--summarize-only", action="store_true",
                        help="Summarize the runs already cached under --tag; run nothing (e.g. while the benchmark "
                             "still runs, or after an interruption).")
    args = parser.parse_args()
    if args.quick:
        args.tables, args.devices, args.quantiles, args.seeds = "cifar100", "edgegpu,raspi4", "0.1,0.5", 2
    settings = parse_options(args.setting)
    controller_options = parse_options(args.controller_option)
    controllers = [c for c in args.controllers.split(",") if c]
    tables = [t for t in args.tables.split(",") if t]
    devices = [d for d in args.devices.split(",") if d]
    quantiles = [float(q) for q in args.quantiles.split(",") if q]
    tag = args.tag or ("quick" if args.quick else "default") + (f"-noise{args.noise:g}" if args.noise else "")
    cache_dir = RESULTS / "nb201_real" / tag
    configs = [(t, d, q) for t in tables for d in devices for q in quantiles]
    seeds_of = {c: int(n) for c, n in parse_options(args.seeds_per_controller).items()}
    jobs = [{"table": t, "device": d, "quantile": q, "seed": s, "controller": c, "settings": settings,
             "noise": args.noise, "controller_options": controller_options,
             "max_trainings": args.max_trainings, "cache": str(cache_dir / f"{t}-{d}-{q}-{c}-s{s}.json")}
            for s in range(max([args.seeds, *seeds_of.values()])) for (t, d, q) in configs for c in controllers
            if s < seeds_of.get(c, args.seeds)]
    if cache_dir.exists():
        stored = json.loads((cache_dir / "settings.json").read_text()) if (cache_dir / "settings.json").exists() \
            else None
        wanted = {"settings": settings, "max_trainings": args.max_trainings, "noise": args.noise,
                  "controller_options": controller_options}
        if stored is not None and {"noise": 0.0, "controller_options": {}, **stored} != wanted:
            raise SystemExit(f"{cache_dir} holds runs with other settings ({stored}); use another --tag")
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "settings.json").write_text(json.dumps({"settings": settings, "max_trainings": args.max_trainings,
                                                         "noise": args.noise,
                                                         "controller_options": controller_options}))
    print(f"{len(jobs)} runs ({len(configs)} configurations x {args.seeds} seeds x {len(controllers)} controllers"
          f"{', ' + str(seeds_of) if seeds_of else ''}), "
          f"settings {settings or 'default'}, {args.workers} workers", flush=True)
    t0 = time.perf_counter()
    if args.summarize_only:
        jobs = [job for job in jobs if Path(job["cache"]).exists()]
        print(f"summarizing the {len(jobs)} finished runs", flush=True)
    runs = map_jobs(run_one, jobs, args.workers if not args.summarize_only else 1)
    marks = [m for m in MARKS if m <= args.max_trainings]
    rows = baselines(configs, marks) + summarize(runs, marks)
    keys = {c: {(r["table"], r["device"], r["quantile"], r["seed"]) for r in runs if r["controller"] == c}
            for c in controllers}
    common = set.intersection(*keys.values()) if keys else set()
    if any(k != common for k in keys.values()):  # the same configurations and seeds for every controller, too
        rows += [{**row, "method": f"{row['method']} (common {len(common)})"}
                 for row in summarize([r for r in runs if (r["table"], r["device"], r["quantile"], r["seed"])
                                       in common], marks)]
    print(f"\nregret in accuracy points over {len(configs)} configurations x {args.seeds} seeds "
          f"({time.perf_counter() - t0:.0f} s)")
    print_table(["method", "trainings", "median", "p90", "mean", "answer median", "answer p90", "early stops",
                 "trained over budget", "answers over budget", "measurements", "wall s"],
                [[r["method"], r["trainings"], r["median_regret"], r["p90_regret"], r["mean_regret"],
                  r.get("answer_median_regret", ""), r.get("answer_p90_regret", ""), r.get("early_stops", ""),
                  "" if r.get("share_trained_over_budget") is None else f"{100 * r['share_trained_over_budget']:.1f}%",
                  r.get("answer_over_budget", ""), r.get("median_measurements", ""),
                  "" if r.get("median_wall_s") is None else f"{r['median_wall_s']:.1f}"] for r in rows])
    print("\n'median'/'p90': the single best value's answer so far (with --noise, the luckiest training's); 'answer': "
          "the loop's final answer (the finalists' best mean where they were re-trained); both by true accuracy")
    losing = worse_than_random(runs, args.max_trainings)
    print(f"\nconfigurations where a controller's median answer is worse than feasible random search's median: "
          f"{len(losing)}")
    for row in losing:
        print(f"  {row['controller']}: {row['table']} {row['device']} q={row['quantile']}: "
              f"{row['median_regret']:.2f} vs {row['feasible_random_median']:.2f}")
    per_table = []
    for t in tables:
        sub = [r for r in runs if r["table"] == t]
        per_table += [{**row, "table": t} for row in baselines([c for c in configs if c[0] == t], [marks[-1]])
                      + summarize(sub, [marks[-1]])]
    print(f"\nby table, at {marks[-1]} trainings")
    print_table(["table", "method", "median", "p90", "loop predictor: top-10% tau", "top-10% feasible tau"],
                [[r["table"], r["method"], r["median_regret"], r["p90_regret"],
                  *("" if r.get(f"median_{k}") is None else r[f"median_{k}"]
                    for k in ("top10_tau", "top10_feasible_tau"))] for r in per_table])
    name = "nb201_real" + ("" if tag == "default" else f"-{tag}")
    path = write_result(name, {"settings": settings, "noise": args.noise, "worse_than_feasible_random": losing,
                               "controllers": controllers, "configs": configs,
                               "seeds": args.seeds, "max_trainings": args.max_trainings, "summary": rows,
                               "by_table": per_table, "runs": runs})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
