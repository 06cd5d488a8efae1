"""Search-quality curves: best verified accuracy under the budget (and regret) against evaluations used.

A *curve* has one entry per real evaluation ``i = 1..N``: the best validation accuracy among the first ``i``
verified architectures whose measured latency is within the budget (None while none is). *Regret* is the
true best accuracy under the budget (known from tables) minus that, counting "nothing feasible yet" as
accuracy 0. A run that stopped before ``N`` evaluations (time budget) keeps its last value.
"""

from __future__ import annotations

import os
import warnings
from typing import Mapping, Sequence

import numpy as np


def best_curve(verified: Sequence[Mapping], *, budget_ms: float, length: int | None = None) -> list[float | None]:
    """Best feasible accuracy after each evaluation of ``verified`` (in verification order), padded to
    ``length`` with the last value."""
    curve: list[float | None] = []
    best: float | None = None
    for record in verified:
        if record["latency_ms"] <= budget_ms and (best is None or record["accuracy"] > best):
            best = float(record["accuracy"])
        curve.append(best)
    if length is not None:
        curve = curve[:length] + [best] * max(0, length - len(curve))
    return curve


def measurement_curve(verified: Sequence[Mapping], *, length: int | None = None) -> list[int | None]:
    """Latency measurements used by the time of each training (None for runs made before they were counted),
    padded to ``length`` with the last value."""
    curve = [record.get("measurements_used") for record in verified]
    if length is not None:
        last = curve[-1] if curve else None
        curve = curve[:length] + [last] * max(0, length - len(curve))
    return curve


def regret_curve(curve: Sequence[float | None], true_best: float) -> list[float]:
    """``true_best - best`` per evaluation (nothing feasible counts as accuracy 0)."""
    return [float(true_best - (0.0 if value is None else value)) for value in curve]


def checkpoints(max_evaluations: int, marks: Sequence[int] = (25, 50, 100)) -> list[int]:
    """The evaluation counts a summary reports: ``marks`` up to ``max_evaluations``, and ``max_evaluations``."""
    return sorted({m for m in marks if m <= max_evaluations} | {max_evaluations})


def summarize(curves: Mapping[str, Mapping[int, Mapping[str, list]]], marks: Sequence[int]) -> list[dict]:
    """Per controller and mark: median (and quartiles) over seeds of best accuracy and, if known, regret."""
    rows = []
    for controller, runs in curves.items():
        for mark in marks:
            row: dict = {"controller": controller, "evaluations": mark, "seeds": len(runs)}
            accs = [_at(run["best_accuracy"], mark) for run in runs.values()]
            accs = [0.0 if a is None else a for a in accs]
            row["median_best_accuracy"] = float(np.median(accs))
            row["feasible_share"] = float(np.mean([_at(r["best_accuracy"], mark) is not None for r in runs.values()]))
            counts = [_at(run.get("measurements") or [], mark) for run in runs.values()]
            if counts and all(c is not None for c in counts):
                row["median_measurements"] = float(np.median(counts))
            if all("over_budget" in run for run in runs.values()):
                row["share_trained_over_budget"] = float(np.mean([v for run in runs.values()
                                                                  for v in run["over_budget"][:mark]] or [0]))
            if all(run.get("regret") for run in runs.values()):
                regrets = [_at(run["regret"], mark) for run in runs.values()]
                row["median_regret"] = float(np.median(regrets))
                row["regret_q25"], row["regret_q75"] = (float(q) for q in np.percentile(regrets, [25, 75]))
            rows.append(row)
    return rows


def _at(curve: Sequence, mark: int):
    return curve[min(mark, len(curve)) - 1] if curve else None


def plot_curves(curves: Mapping[str, Mapping[int, Mapping[str, list]]], path: str | os.PathLike, *,
                key: str, title: str = "") -> None:
    """Median over seeds (line) and interquartile range (band) of ``key`` per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for controller, runs in curves.items():
        length = max(len(run[key]) for run in runs.values())
        values = np.array([[np.nan if v is None else v for v in _pad(run[key], length)] for run in runs.values()],
                          dtype=float)
        x = np.arange(1, length + 1)
        with warnings.catch_warnings():  # evaluations where no seed has a feasible answer yet are all-NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(values, axis=0) if np.isfinite(values).any() else np.full(length, np.nan)
            low, high = np.nanpercentile(values, 25, axis=0), np.nanpercentile(values, 75, axis=0)
        (line,) = ax.plot(x, median, label=controller)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("real evaluations (trainings) used")
    ax.set_ylabel("regret (true best under budget - best found)" if key == "regret"
                  else "best verified accuracy under budget")
    if key == "regret":
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from hwnas.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _pad(curve: Sequence, length: int) -> list:
    return list(curve) + [curve[-1] if curve else None] * (length - len(curve))
