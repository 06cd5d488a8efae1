"""What a run writes about itself: a round's ``history.csv`` row and its result (``result.json``).

The answer is never a prediction: it is the trained architecture with the best *real* validation accuracy
(the best mean over seeds once the finalists are re-trained, :mod:`hwnas.search.finals`) whose *measured*
latency is within the budget.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas.predictors.metrics import kendall, mape
from hwnas.search.context import RunContext
from hwnas.search.diagnostics import uninformative
from hwnas.search.finals import finalist_stats
from hwnas.search.result import Candidate, Finalist, SearchResult, Trial, trials_from_records
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


def fastest(ctx: RunContext, n: int) -> list[Candidate]:
    """The ``n`` fastest architectures the run measured or trained (accuracy None where untrained)."""
    seen = {v.arch: Candidate(arch=v.arch, latency_ms=v.latency_ms, latency_measured=v.latency_measured,
                              accuracy=v.accuracy) for v in ctx.state.verified}
    for m in ctx.state.measured:
        seen.setdefault(m.arch, Candidate(arch=m.arch, latency_ms=m.latency_ms, latency_measured=m.measured))
    return sorted(seen.values(), key=lambda c: (c.latency_ms, c.arch))[:n]


def build_result(ctx: RunContext, *, validation_size: int | None,
                 extras: Callable[[Trial | None], Mapping[str, Any]] | None = None) -> SearchResult:
    """The run's result (:class:`~hwnas.search.result.SearchResult`), written as ``result.json`` (with
    ``verified.csv`` and ``pareto.png``) by :meth:`RunDir.write_result`. ``extras(best)`` adds the runner's
    fields (``test_accuracy``, ``estimator``, ``supernet``)."""
    from hwnas.search.pareto import pareto_front

    settings, state = ctx.settings, ctx.state
    finalists = [Finalist(arch=f["arch"], latency_ms=f["latency_ms"], accuracies=f["accuracies"], mean=f["mean"],
                          std=f["std"]) for f in finalist_stats(state)]
    trials = trials_from_records(state.verified, finalists)
    by_arch = {t.arch: t for t in trials}
    chosen = ctx.best()
    best = None if chosen is None else by_arch[chosen.arch]
    verified = [asdict(v) for v in state.verified]
    front = [by_arch[v["arch"]] for v in pareto_front(verified)]
    # logged by the loop when it hands the result over (once a session)
    warning = uninformative(verified, num_classes=settings.num_classes, validation_size=validation_size)
    result = SearchResult(
        run_dir=ctx.run_dir.path, best=best, pareto_front=front, budget_ms=settings.budget_ms,
        stop_reason=state.stop_reason or "", trainings_used=state.trainings, measurements_used=state.measurements,
        finalists=finalists, trials=trials, rounds=state.round - 1, elapsed_s=round(state.elapsed_s, 1),
        closest=fastest(ctx, 3) if best is None else [], warning=warning or None,
        acquisition=settings.acquisition, estimates_used=len(state.estimated))
    if extras is not None:
        result = replace(result, **dict(extras(best)))
    result = result.with_document()
    ctx.run_dir.write_result(result)
    return result
