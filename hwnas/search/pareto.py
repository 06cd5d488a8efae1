"""Pareto front of verified architectures (accuracy up, measured latency down) and its plot."""

from __future__ import annotations

import os
from typing import Sequence


def pareto_front(points: Sequence[dict], *, acc_key: str = "accuracy", lat_key: str = "latency_ms") -> list[dict]:
    """The points not dominated by another (higher-or-equal accuracy at lower-or-equal latency, one strictly).

    Returned sorted by latency.
    """
    ordered = sorted(points, key=lambda p: (p[lat_key], -p[acc_key]))
    front: list[dict] = []
    best_acc = float("-inf")
    for point in ordered:
        if point[acc_key] > best_acc:
            front.append(point)
            best_acc = point[acc_key]
    return front


def plot_pareto(points: Sequence[dict], path: str | os.PathLike, *, budget_ms: float, title: str = "") -> None:
    """Scatter of verified architectures, their front, and the latency budget as a vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    if points:
        ax.scatter([p["latency_ms"] for p in points], [p["accuracy"] for p in points], s=14, alpha=0.5,
                   label="verified")
        front = pareto_front(points)
        ax.plot([p["latency_ms"] for p in front], [p["accuracy"] for p in front], "o-", color="C1", ms=4,
                label="Pareto front")
    ax.axvline(budget_ms, color="C3", ls="--", label=f"budget {budget_ms:.3g} ms")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
