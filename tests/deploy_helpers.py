"""Shared helpers of the deploy tests: a fake finished search run and small assertions."""

from __future__ import annotations

import re

from hwnas.io import atomic_write_json
from hwnas.search.config import RunConfig
from hwnas.search.rundir import RunDir
from hwnas.training.recipe import Recipe

TINY = "16:k3e1/24:k3e1/32:k3e1/48:k3e1"
OTHER = "24:k3e3/24:k3e1/32:k5e1/48:k3e1"
FIELDS = ("arch", "space", "dataset", "input_shape", "class_names", "test_accuracy", "latency_ms", "device",
          "latency_budget_ms", "hwnas_version", "recipe", "epochs", "split_seed", "num_classes")


def make_run(tmp_path, *, feasible=True, device="host", budget_ms=1000.0, split_seed=1, best_latency=0.5,
             with_result=True, measured=True):
    """A finished (fake) search run: config.json and result.json as the search writes them."""
    config = {"space": "mobilenet", "space_options": {}, "dataset": "digits", "input_shape": [1, 8, 8],
              "num_classes": 10, "device": device, "provider": "cpu", "threads": 1, "batch_size": 1,
              "precision": "fp32", "profiles_dir": str(tmp_path / "profiles"),
              "store": str(tmp_path / "store"),
              "budget_ms": budget_ms, "seed": 0, "recipe": Recipe(epochs=1, split_seed=split_seed).to_dict()}
    run = RunDir.create(tmp_path / "run", RunConfig.from_json(config))
    best = ({"arch": TINY, "accuracy": 0.5, "latency_ms": best_latency, "latency_measured": measured,
             "round": 2} if feasible else None)
    closest = [] if feasible else [{"arch": OTHER, "accuracy": 0.4, "latency_ms": 7.5, "round": 1}]
    result = {"feasible": feasible, "best": best, "budget_ms": budget_ms, "closest": closest,
              "pareto_front": [best] if best else closest, "trainings_used": 3, "stop_reason": "budget"}
    if with_result:
        atomic_write_json(run.result_file, result)
    return run


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def percent(text, pattern):
    return float(re.search(pattern, text).group(1))


def latency_windows(*medians_ms):
    """A fake measurement (any arguments) whose windows have the given medians, one after another; ``.calls``
    counts the windows taken."""
    from hwnas.profiling.measure import LatencyStats

    medians = list(medians_ms)

    def measure(*args, **kwargs):
        median = medians[measure.calls]
        measure.calls += 1
        return LatencyStats(median_ms=median, p10_ms=median, p90_ms=median, mean_ms=median, std_ms=0.0,
                            min_ms=median, runs=200, converged=True, rel_ci=0.01)
    measure.calls = 0
    return measure


def one_error_line(result, *needles):
    """Asserts ``result`` failed with one ``Error:`` line on stderr holding every needle; returns the line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code not in (0, None), result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
