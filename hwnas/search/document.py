"""What a run writes about itself: a round's ``history.csv`` row and the result document (``result.json``).

The answer is never a prediction: it is the trained architecture with the best *real* validation accuracy
(the best mean over seeds once the finalists are re-trained, :mod:`hwnas.search.finals`) whose *measured*
latency is within the budget.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np

from hwnas.predictors.metrics import kendall, mape
from hwnas.search.context import RunContext
from hwnas.search.diagnostics import uninformative
from hwnas.search.finals import finalist_stats
from hwnas.search.state import Measured, Verified


def history_row(ctx: RunContext, round_index: int, new: Sequence[Verified], measured: Sequence[Measured]) -> dict:
    """Round ``round_index``'s row: budgets used, the best so far, the predictors' quality on its new truth."""
    best = ctx.best()
    acc_true = [v.accuracy for v in new if v.predicted_accuracy is not None]
    acc_pred = [v.predicted_accuracy for v in new if v.predicted_accuracy is not None]
    lat_true = [m.latency_ms for m in measured if m.predicted_latency_ms is not None]
    lat_pred = [m.predicted_latency_ms for m in measured if m.predicted_latency_ms is not None]
    return {
        "round": round_index, "trainings_used": ctx.state.trainings, "elapsed_s": round(ctx.elapsed(), 1),
        "best_accuracy": None if best is None else best.accuracy,
        "best_latency_ms": None if best is None else best.latency_ms,
        "best_arch": None if best is None else best.arch,
        "new_verified": len(new), "measurements_used": ctx.state.measurements,
        "estimates_used": len(ctx.state.estimated),
        "new_measured": len(measured),
        "new_over_budget": sum(m.latency_ms > ctx.settings.budget_ms for m in measured),
        "accuracy_mae_new": float(np.mean(np.abs(np.subtract(acc_true, acc_pred)))) if acc_true else None,
        "accuracy_kendall_new": kendall(acc_true, acc_pred) if len(acc_true) > 2 else None,
        "latency_mape_new": mape(lat_true, lat_pred) if lat_true else None,
    }


def fastest(ctx: RunContext, n: int) -> list[dict]:
    """The ``n`` fastest architectures the run measured or trained (accuracy None where untrained)."""
    seen = {v.arch: asdict(v) for v in ctx.state.verified}
    for m in ctx.state.measured:
        seen.setdefault(m.arch, {"arch": m.arch, "accuracy": None, "latency_ms": m.latency_ms,
                                 "latency_measured": m.measured})
    return sorted(seen.values(), key=lambda v: (v["latency_ms"], v["arch"]))[:n]


def result_document(ctx: RunContext, *, validation_size: int | None,
                    extras: Callable[[dict], dict] | None = None) -> dict:
    """The run's result, written (with ``verified.csv`` and ``pareto.png``) by :meth:`RunDir.write_result`."""
    from hwnas.search.pareto import pareto_front

    settings, state = ctx.settings, ctx.state
    best = ctx.best()
    verified = [asdict(v) for v in state.verified]
    finalists = finalist_stats(state)
    chosen = None
    if best is not None:
        chosen = asdict(best)
        stats = next((f for f in finalists if f["arch"] == best.arch), None)
        if stats is not None:
            chosen.update(mean_accuracy=stats["mean"], accuracy_std=stats["std"], seeds=stats["seeds"])
    result = {
        "budget_ms": settings.budget_ms, "trainings_used": state.trainings,
        "rounds": state.round - 1, "stop_reason": state.stop_reason,
        "elapsed_s": round(state.elapsed_s, 1), "feasible": best is not None,
        "best": chosen, "finalists": finalists,
        "closest": fastest(ctx, 3) if best is None else [], "pareto_front": pareto_front(verified),
        "verified_within_budget": sum(v["latency_ms"] <= settings.budget_ms for v in verified),
        "latency_measured": all(v["latency_measured"] for v in verified),
        "measurements_used": state.measurements,
        "trainings_over_budget": sum(v["latency_ms"] > settings.budget_ms for v in verified),
        "acquisition": settings.acquisition, "estimates_used": len(state.estimated),
    }
    warning = uninformative(verified, num_classes=settings.num_classes, validation_size=validation_size)
    if warning:
        result["warning"] = warning  # logged by the loop when it hands the result over (once)
    if extras is not None:
        result.update(extras(result))
    ctx.run_dir.write_result(result, verified, budget_ms=settings.budget_ms)
    return result
