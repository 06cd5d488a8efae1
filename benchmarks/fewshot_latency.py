"""A new device in few measurements: latency-predictor transfer from the devices already profiled (issue 32).

    .venv/bin/python benchmarks/fewshot_latency.py                     # all three parts (~25 min, 2 cores)
    .venv/bin/python benchmarks/fewshot_latency.py --parts shared      # leave-one-device-out on HELP's table
    .venv/bin/python benchmarks/fewshot_latency.py --parts machine     # two conditions of this CPU (measures!)
    .venv/bin/python benchmarks/fewshot_latency.py --parts search --seeds 5
    .venv/bin/python benchmarks/fewshot_latency.py --quick             # smoke: 3 devices, 2 draws, 1 seed

1. **shared**: ``../shared/benchdata/help-nb201/latency.csv`` (NAS-Bench-201, 15,625 architectures x 20 device
   configurations of the HELP release). Each device in turn is the new one; the other 19 are the sources (full
   tables, as ``hwnas profile --columns all`` imports them). For N = 5, 10, 20, 50 of its own latencies (10
   random draws each; draws nested across N and shared by every method), each predictor is scored on all
   15,625 architectures: Spearman and the share within +-10%. Methods: ``transfer`` (hwnas's
   :class:`~hwnas.predictors.transfer.TransferLatencyPredictor`), ``single`` (a log-linear fit on the one source
   that correlates best with the N points: the simple regression the issue mentions), ``own`` (hwnas's XGBoost
   latency predictor on the N points only, no transfer) and ``own@1000`` (the same at 1,000 points, 3 draws: a
   fully profiled device). The averages are over all 20 devices and over the devices whose ``own@1000`` reaches
   95% within +-10% (the others' tables are themselves noisy or quantised; listed). **hardware**: the same for
   transfer, leaving one *hardware* out (15 of the 20 columns are 5 GPUs at 3 batch sizes: a new GPU has none of
   its other batch sizes profiled either).
2. **machine**: two measurement conditions of this CPU as two devices, measured here (keep the machine idle):
   ``--machine-source`` (default onnxruntime at 1 thread) profiles 300 mobilenet architectures at the default
   task's shape 1x32x32, each ``--machine-targets`` condition (openvino at 1 thread, onnxruntime at 2 threads)
   the same 300 plus 100 others. For N own latencies of a target (10 draws), the transfer predictor with the
   300 as its source is scored on the target's other latencies: those the source measured (``held-in``) and the
   100 it did not (``outside``: the source's own predictor stands in), beside ``own`` (XGBoost), ``additive``
   and ``selected`` (what a search fits: the candidate that cross-validates best) at N. Then the full-data
   predictor: 5-fold cross-validation over 200 of the source condition's architectures (3 subsets), XGBoost
   (the predictor before) against the additive model and the selection. Profiles are kept in
   ``benchmarks/results/fewshot_latency/profiles`` (a rerun measures only what is missing).
3. **search**: the real search loop on NAS-Bench-201 (CIFAR-100 accuracies of ``../shared/benchdata/nb201``,
   a look-up per training) with a HELP device's latencies (a look-up per measurement) under the budget at that
   device's 0.25 quantile, ``--seeds`` seeds: a device with 20 profiled rows and the selected predictor with
   transfer from the other 19 against the same device fully profiled (120 rows, as ``nb201_real.py``) with the
   XGBoost predictor, and 20 rows with XGBoost. Reported: the
   answer's regret (points below the table's best under the budget), over-budget answers, measurements the
   loop made, and the profiling rows each needed first.

Prints tables and writes ``benchmarks/results/fewshot_latency[-quick].json``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, map_jobs, print_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HELP = ROOT.parent / "shared" / "benchdata" / "help-nb201" / "latency.csv"
NB201 = ROOT.parent / "shared" / "benchdata" / "nb201"
NS = (5, 10, 20, 50)
FULL = 1000
TASK = dict(space="nb201", input_shape=[3, 32, 32], num_classes=10)
MACHINE_TASK = dict(space="mobilenet", input_shape=[1, 32, 32], num_classes=10)
SEARCH_DEVICES = ("pixel3", "raspi4", "fpga", "eyeriss", "gold_6226", "titanx_1")


@lru_cache(maxsize=None)
def help_table() -> tuple[list[str], dict[str, np.ndarray]]:
    """``(architectures, {device: latencies})`` of the HELP table."""
    from hwnas.profiling.tables import device_column

    with HELP.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    archs = [r[0] for r in body]
    return archs, {device_column(name): np.array([float(r[j]) for r in body]) for j, name in enumerate(header) if j}


def scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from hwnas.predictors.metrics import spearman, within

    return {"spearman": spearman(truth, predicted), "within_10pct": within(truth, predicted, 0.10)}


def single_source(sources: dict[str, np.ndarray], own: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A log-linear fit on the source whose log-latencies correlate best with the own points'."""
    t = np.log(y)
    best = max(sources, key=lambda name: np.corrcoef(np.log(sources[name][own]), t)[0, 1]
               if np.ptp(sources[name][own]) > 0 else -1.0)
    slope, intercept = np.polyfit(np.log(sources[best][own]), t, 1)
    return np.exp(slope * np.log(sources[best]) + intercept)


def shared_job(job: dict) -> dict:
    """Every method and N for one target device."""
    logging.disable(logging.WARNING)
    from hwnas.predictors import LatencyPredictor
    from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor

    archs, table = help_table()
    target = job["device"]
    truth = table[target]
    others = {name: values for name, values in table.items() if name != target}
    sources = [LatencySource(name, dict(zip(archs, values)), complete=True) for name, values in others.items()]
    rows = []
    for draw in range(job["draws"]):
        order = np.random.default_rng(draw).permutation(len(archs))
        for n in NS:
            own = order[:n]
            picked = [archs[i] for i in own]
            t0 = time.perf_counter()
            model = TransferLatencyPredictor(sources, **TASK).fit(picked, truth[own])
            predicted = model.predict(archs)
            rows.append({"method": "transfer", "n": n, "draw": draw, **scores(truth, predicted),
                         "seconds": time.perf_counter() - t0, "alpha": model.alpha_})
            rows.append({"method": "single", "n": n, "draw": draw,
                         **scores(truth, single_source(others, own, truth[own]))})
            t0 = time.perf_counter()
            xgb = LatencyPredictor(**TASK, random_state=draw)
            alone = xgb.fit(picked, truth[own], featurizer=xgb.shared_featurizer()).predict(archs)
            rows.append({"method": "own", "n": n, "draw": draw, **scores(truth, alone),
                         "seconds": time.perf_counter() - t0})
    for draw in range(job["full_draws"]):
        own = np.random.default_rng(100 + draw).permutation(len(archs))[:FULL]
        xgb = LatencyPredictor(**TASK, random_state=draw)
        alone = xgb.fit([archs[i] for i in own], truth[own], featurizer=xgb.shared_featurizer()).predict(archs)
        rows.append({"method": "own", "n": FULL, "draw": draw, **scores(truth, alone)})
    return {"device": target, "rows": rows}


def mean_of(rows: list[dict], method: str, n: int, key: str) -> float:
    values = [r[key] for r in rows if r["method"] == method and r["n"] == n]
    return float(np.mean(values)) if values else float("nan")


def run_shared(args) -> dict:
    archs, table = help_table()
    devices = sorted(table)[: 3 if args.quick else None]
    draws, full_draws = (2, 1) if args.quick else (10, 3)
    results = map_jobs(shared_job, [{"device": d, "draws": draws, "full_draws": full_draws} for d in devices],
                       args.workers)
    per_device = {r["device"]: r["rows"] for r in results}
    full = {d: mean_of(rows, "own", FULL, "within_10pct") for d, rows in per_device.items()}
    subset = [d for d in devices if full[d] >= 0.95]
    excluded = {d: round(full[d], 3) for d in devices if d not in subset}
    summary = []
    for method, ns in (("transfer", NS), ("single", NS), ("own", NS + (FULL,))):
        for n in ns:
            row = {"method": method, "n": n}
            for label, group in (("all", devices), ("subset", subset)):
                for key in ("spearman", "within_10pct"):
                    values = [mean_of(per_device[d], method, n, key) for d in group]
                    row[f"{key}_{label}"] = float(np.mean(values)) if values else float("nan")
                    if label == "all" and key == "spearman":
                        row["spearman_p10_device"] = float(np.percentile(values, 10))
                    if label == "subset" and key == "within_10pct" and values:
                        row["within_10pct_subset_worst"] = float(np.min(values))
            summary.append(row)
    print(f"\nshared table: {len(devices)} devices, leave one out, {draws} draws per N; subset (own@{FULL} >= 95% "
          f"within +-10%): {len(subset)} devices; excluded: {excluded}")
    print_table(["method", "N", "Spearman (all)", "p10 device", "+-10% (all)", "Spearman (subset)",
                 "+-10% (subset)", "worst subset device"],
                [[r["method"], r["n"], f"{r['spearman_all']:.3f}", f"{r['spearman_p10_device']:.3f}",
                  f"{r['within_10pct_all']:.3f}", f"{r['spearman_subset']:.3f}", f"{r['within_10pct_subset']:.3f}",
                  f"{r.get('within_10pct_subset_worst', float('nan')):.3f}"] for r in summary])
    devices_table = []
    for d in devices:
        rows = per_device[d]
        devices_table.append([d, "yes" if d in subset else "no"]
                             + [f"{mean_of(rows, 'transfer', n, 'spearman'):.3f}/"
                                f"{mean_of(rows, 'transfer', n, 'within_10pct'):.2f}" for n in NS]
                             + [f"{mean_of(rows, 'own', 20, 'spearman'):.3f}/"
                                f"{mean_of(rows, 'own', 20, 'within_10pct'):.2f}",
                                f"{mean_of(rows, 'own', FULL, 'spearman'):.3f}/{full[d]:.2f}"])
    print("\nper device: transfer Spearman/+-10% at N = " + ", ".join(map(str, NS)) + f"; own at 20 and {FULL}")
    print_table(["device", "subset"] + [f"N={n}" for n in NS] + ["own N=20", f"own N={FULL}"], devices_table)
    fit_s = [r["seconds"] for rows in per_device.values() for r in rows if r["method"] == "transfer"]
    print(f"transfer fit + prediction of {len(archs)} architectures: median {np.median(fit_s) * 1000:.0f} ms")
    return {"devices": devices, "subset": subset, "excluded": excluded, "summary": summary,
            "per_device": per_device, "transfer_fit_predict_s_median": float(np.median(fit_s))}


def hardware(name: str) -> str:
    """The hardware of a HELP column: ``titanx_32`` is a Titan X at batch 32; the others are their own."""
    head, _, batch = name.rpartition("_")
    return head if batch in ("1", "32", "256") and head else name


def run_hardware(args) -> dict:
    """Leave one *hardware* out: as the shared part's transfer, but a GPU's other batch sizes are not among the
    sources either (a really new GPU has none of its own configurations profiled)."""
    from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor

    logging.disable(logging.WARNING)
    archs, table = help_table()
    devices = sorted(table)[: 3 if args.quick else None]
    draws = 2 if args.quick else 10
    per_device = {}
    for target in devices:
        sources = [LatencySource(name, dict(zip(archs, values)), complete=True) for name, values in table.items()
                   if hardware(name) != hardware(target)]
        rows = []
        for draw in range(draws):
            order = np.random.default_rng(draw).permutation(len(archs))
            for n in NS:
                own = order[:n]
                model = TransferLatencyPredictor(sources, **TASK).fit([archs[i] for i in own], table[target][own])
                rows.append({"method": "transfer", "n": n, "draw": draw, **scores(table[target], model.predict(archs))})
        per_device[target] = rows
    subset = [d for d in devices if d not in ("2080ti_1", "essential_ph_1", "pixel3", "raspi4", "samsung_a50",
                                               "silver_4114")]
    summary = []
    for n in NS:
        sp = [mean_of(per_device[d], "transfer", n, "spearman") for d in devices]
        w_sub = [mean_of(per_device[d], "transfer", n, "within_10pct") for d in subset]
        summary.append({"n": n, "spearman_all": float(np.mean(sp)),
                        "spearman_p10_device": float(np.percentile(sp, 10)),
                        "within_10pct_subset": float(np.mean(w_sub)),
                        "within_10pct_subset_worst": float(np.min(w_sub))})
    print(f"\nleave one hardware out (a GPU's other batch sizes not among the sources either), {draws} draws")
    print_table(["N", "Spearman (all)", "p10 device", "+-10% (subset)", "worst subset device"],
                [[r["n"], f"{r['spearman_all']:.3f}", f"{r['spearman_p10_device']:.3f}",
                  f"{r['within_10pct_subset']:.3f}", f"{r['within_10pct_subset_worst']:.3f}"] for r in summary])
    return {"summary": summary, "per_device": per_device, "subset": subset}


# -- this machine --------------------------------------------------------------------------------------------
CONDITIONS = {"ort1": dict(runtime="onnxruntime", threads=1), "ort2": dict(runtime="onnxruntime", threads=2),
              "openvino1": dict(runtime="openvino", threads=1)}


def measure_condition(profiles: Path, name: str, archs: list[str]) -> dict[str, float]:
    """The latencies of ``archs`` in condition ``name``, measured into ``profiles/<name>`` (kept across runs)."""
    from hwnas.profiling.fingerprint import host_fingerprint
    from hwnas.profiling.measure import Conditions, profile_arch
    from hwnas.profiling.store import ProfileStore
    from hwnas.spaces import create_space

    space = create_space("mobilenet")
    conditions = Conditions(**CONDITIONS[name])
    store = ProfileStore(profiles, name)
    store.ensure(host_fingerprint(name, conditions))
    shape = MACHINE_TASK["input_shape"]
    held = {r["arch"]: r["median_ms"] for r in store.records("mobilenet", shape)}
    todo = [a for a in archs if a not in held]
    t0 = time.perf_counter()
    for i, arch in enumerate(todo, 1):
        record = profile_arch(space, arch, shape, MACHINE_TASK["num_classes"], conditions=conditions)
        store.add(record)
        held[arch] = record["median_ms"]
        if i % 50 == 0:
            print(f"  {name}: {i}/{len(todo)} measured ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {a: held[a] for a in archs}


def run_machine(args) -> dict:
    from hwnas.predictors import AdditiveLatencyPredictor, LatencyPredictor
    from hwnas.predictors.select import SelectedLatencyPredictor
    from hwnas.predictors.transfer import LatencySource, TransferLatencyPredictor
    from hwnas.spaces import create_space

    logging.disable(logging.WARNING)
    profiles = RESULTS / "fewshot_latency" / "profiles"
    space = create_space("mobilenet")
    n_source, n_outside = (60, 20) if args.quick else (300, 100)
    pool = [a.string for a in space.sample_distinct(n_source + n_outside, np.random.default_rng(2026))]
    inside, outside = pool[:n_source], pool[n_source:]
    source = measure_condition(profiles, args.machine_source, inside)
    out: dict = {"source": args.machine_source, "source_records": n_source, "outside": n_outside, "targets": {}}
    draws = 2 if args.quick else 10
    for target_name in args.machine_targets:
        target = measure_condition(profiles, target_name, pool)
        rows = []
        for n in NS:
            for draw in range(draws):
                order = np.random.default_rng(draw).permutation(n_source)
                own = [inside[i] for i in order[:n]]
                held_in = [inside[i] for i in order[n:]]
                y = [target[a] for a in own]
                sources = [LatencySource(args.machine_source, source)]
                models = {"transfer": TransferLatencyPredictor(sources, **MACHINE_TASK),
                          "own": LatencyPredictor(**MACHINE_TASK, random_state=draw),  # fit below, shared rows
                          "additive": AdditiveLatencyPredictor(**MACHINE_TASK, random_state=draw),
                          "selected": SelectedLatencyPredictor(sources, **MACHINE_TASK, random_state=draw)}
                for method, model in models.items():
                    model.fit(own, y, featurizer=model.shared_featurizer())
                    for group, archs in (("held-in", held_in), ("outside", outside)):
                        truth = np.array([target[a] for a in archs])
                        rows.append({"method": method, "n": n, "group": group, "draw": draw,
                                     **scores(truth, model.predict(archs)),
                                     **({"chosen": model.chosen_} if method == "selected" else {})})
        ratio = np.array([target[a] / source[a] for a in inside])
        agreement = scores(np.array([target[a] for a in inside]), np.array([source[a] for a in inside]))
        out["targets"][target_name] = {"rows": rows, "spearman_source_target": agreement["spearman"],
                                       "ratio_p10_median_p90": np.percentile(ratio, [10, 50, 90]).tolist()}
        table = []
        methods = ("transfer", "selected", "additive", "own")
        for n in NS:
            cells = [n]
            for method in methods:
                for group in ("held-in", "outside"):
                    sel = [r for r in rows if r["method"] == method and r["n"] == n and r["group"] == group]
                    cells.append(f"{np.mean([r['spearman'] for r in sel]):.3f}/"
                                 f"{np.mean([r['within_10pct'] for r in sel]):.2f}")
            chosen = [r["chosen"] for r in rows
                      if r["method"] == "selected" and r["n"] == n and r["group"] == "held-in"]
            cells.append(", ".join(f"{c} {chosen.count(c)}" for c in sorted(set(chosen))))
            table.append(cells)
        lo, mid, hi = out["targets"][target_name]["ratio_p10_median_p90"]
        print(f"\nthis machine: {args.machine_source} ({n_source} profiled) -> {target_name}; latency ratio target/"
              f"source p10 {lo:.2f}, median {mid:.2f}, p90 {hi:.2f}; Spearman between them "
              f"{out['targets'][target_name]['spearman_source_target']:.3f}")
        print_table(["N own"] + [f"{m} {g}" for m in methods for g in ("held-in", "outside")] + ["selected chose"],
                    table)
    out["full_data"] = full_data(source, args.quick)
    return out


def full_data(latency: dict[str, float], quick: bool) -> dict:
    """5-fold cross-validation at 200 profiled architectures of one condition (3 random subsets of its records):
    the XGBoost ensemble (the predictor before this issue), the additive model and the selection."""
    from hwnas.predictors import AdditiveLatencyPredictor, LatencyPredictor
    from hwnas.predictors.metrics import within
    from hwnas.predictors.select import SelectedLatencyPredictor, cross_validate

    archs = sorted(latency)
    y_all = np.array([latency[a] for a in archs])
    makers = {"xgboost (before)": lambda: LatencyPredictor(**MACHINE_TASK),
              "additive": lambda: AdditiveLatencyPredictor(**MACHINE_TASK),
              "selected": lambda: SelectedLatencyPredictor([], **MACHINE_TASK)}
    result: dict = {}
    size = min(200, len(archs))
    for name, make in makers.items():
        per = []
        for seed in range(1 if quick else 3):
            subset = np.random.default_rng(seed).permutation(len(archs))[:size]
            y = y_all[subset]
            predicted = cross_validate(make, [archs[i] for i in subset], y, folds=5,
                                       featurizer=make().shared_featurizer())
            per.append({**scores(y, predicted), "within_5pct": within(y, predicted, 0.05)})
        result[name] = {key: float(np.mean([p[key] for p in per])) for key in per[0]}
    print(f"\nfull data, this CPU (onnxruntime, 1 thread, mobilenet 1x32x32): 5-fold CV over {size} profiled "
          f"architectures, mean of {1 if quick else 3} subsets")
    print_table(["predictor", "+-10%", "+-5%", "Spearman"],
                [[name, f"{r['within_10pct']:.3f}", f"{r['within_5pct']:.3f}", f"{r['spearman']:.4f}"]
                 for name, r in result.items()])
    return {"n": size, "results": result}


# -- search --------------------------------------------------------------------------------------------------
def search_job(job: dict) -> dict:
    logging.disable(logging.WARNING)
    from hwnas.predictors import AccuracyPredictor, LatencyPredictor
    from hwnas.predictors.select import SelectedLatencyPredictor
    from hwnas.predictors.transfer import LatencySource
    from hwnas.search.config import RunConfig
    from hwnas.search.controllers import create_controller
    from hwnas.search.loop import SearchLoop, SearchSettings
    from hwnas.search.reward import create_reward
    from hwnas.search.rundir import RunDir
    from hwnas.search.sources.tables import spread_rows
    from hwnas.spaces import create_space

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from nb201_real import Accuracy, load_table

    archs, table = help_table()
    acc_table = load_table("cifar100")
    acc = dict(zip(acc_table["arch"], acc_table["acc"]))
    lat = dict(zip(archs, table[job["device"]]))
    budget = float(np.quantile(table[job["device"]], 0.25))
    best = max(acc[a] for a, ms in lat.items() if ms <= budget and a in acc)
    prior = spread_rows(lat, job["prior"])

    class Latency:
        calls = 0

        def measure(self, arch):
            Latency.calls += 1
            return {"latency_ms": lat[arch.string], "measured": True}

        def known(self):
            return list(prior)

    common = dict(space="nb201", input_shape=TASK["input_shape"], num_classes=100, random_state=job["seed"])
    sources = [LatencySource(name, dict(zip(archs, values)), complete=True)
               for name, values in table.items() if name != job["device"]] if job["transfer"] else []
    space = create_space("nb201")
    settings = SearchSettings(budget_ms=budget, max_trainings=job["max_trainings"], seed=job["seed"],
                              initial_trainings=8, num_classes=100)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwnas-fewshot-") as tmp:
        loop = SearchLoop(space=space, controller=create_controller("ppo", space, seed=job["seed"]),
                          reward=create_reward("hard"), accuracy_source=Accuracy(acc, seed=job["seed"]),
                          latency_source=Latency(), settings=settings,
                          run_dir=RunDir.create(Path(tmp) / "run", RunConfig(budget_ms=budget, space="nb201",
                                                                             input_shape=(3, 32, 32),
                                                                             num_classes=100)),
                          make_accuracy_predictor=lambda: AccuracyPredictor(**common),
                          make_latency_predictor=(lambda: SelectedLatencyPredictor(sources, **common)) if sources
                          else (lambda: LatencyPredictor(**common)))
        result = loop.run()
        verified = [vars(v) for v in loop.state.verified]
        measured = len(loop.state.measured)
    answer = result.best
    return {**job, "budget_ms": budget, "regret": best - acc[answer.arch] if answer else best,
            "answer": answer.arch if answer else None, "over_budget": int(answer is None or
                                                                         answer.latency_ms > budget),
            "measurements": measured, "trainings": result.trainings_used,
            "trained_over_budget": sum(v["latency_ms"] > budget for v in verified), "wall_s": time.perf_counter() - t0}


def run_search(args) -> dict:
    devices = SEARCH_DEVICES[:2] if args.quick else SEARCH_DEVICES
    arms = {"20 rows + transfer": dict(prior=20, transfer=True),
            "120 rows, no transfer": dict(prior=120, transfer=False),
            "20 rows, no transfer": dict(prior=20, transfer=False)}
    jobs = [{"device": d, "seed": s, "arm": arm, "max_trainings": args.max_trainings, **spec}
            for d in devices for s in range(args.seeds) for arm, spec in arms.items()]
    results = map_jobs(search_job, jobs, args.workers)
    rows = []
    for arm in arms:
        sel = [r for r in results if r["arm"] == arm]
        rows.append([arm, sel[0]["prior"], f"{np.median([r['regret'] for r in sel]):.2f}",
                     f"{np.percentile([r['regret'] for r in sel], 90):.2f}", f"{max(r['regret'] for r in sel):.2f}",
                     sum(r["over_budget"] for r in sel), f"{np.median([r['measurements'] for r in sel]):.0f}",
                     f"{np.mean([r['measurements'] for r in sel]):.1f}",
                     f"{np.mean([r['trained_over_budget'] for r in sel]):.2f}"])
    same = [a["answer"] == b["answer"] for a in results if a["arm"] == "20 rows + transfer"
            for b in results if b["arm"] == "120 rows, no transfer" and b["device"] == a["device"]
            and b["seed"] == a["seed"]]
    print(f"\nsearch: NAS-Bench-201 CIFAR-100 accuracies x HELP latencies of {', '.join(devices)}, budget at the "
          f"0.25 quantile, {args.seeds} seed(s), {args.max_trainings} trainings (ppo); the same answer in "
          f"{sum(same)}/{len(same)} pairs")
    print_table(["arm", "profile rows", "median regret", "p90", "worst", "over budget", "median measurements",
                 "mean measurements", "trained over budget (mean)"], rows)
    return {"devices": list(devices), "runs": results, "same_answer": [sum(same), len(same)]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="shared,hardware,machine,search",
                        help="Comma list of shared, hardware, machine, search.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-trainings", type=int, default=50)
    parser.add_argument("--machine-source", default="ort1", choices=sorted(CONDITIONS))
    parser.add_argument("--machine-targets", default="openvino1,ort2",
                        type=lambda text: [t for t in text.split(",") if t])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = min(args.seeds, 1)
        args.max_trainings = min(args.max_trainings, 20)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    payload: dict = {"date": time.strftime("%Y-%m-%d"), "args": {k: v for k, v in vars(args).items()}}
    t0 = time.perf_counter()
    if "shared" in parts:
        payload["shared"] = run_shared(args)
    if "hardware" in parts:
        payload["hardware"] = run_hardware(args)
    if "machine" in parts:
        payload["machine"] = run_machine(args)
    if "search" in parts:
        payload["search"] = run_search(args)
    payload["seconds"] = time.perf_counter() - t0
    name = "fewshot_latency" + ("-quick" if args.quick else "") + ("" if parts == ["shared", "hardware", "machine",
                                                                                   "search"]
                                                                   else "-" + "-".join(parts))
    print(f"\nwrote {write_result(name, payload)} ({payload['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
