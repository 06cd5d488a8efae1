"""Pareto front of verified architectures (accuracy up, measured latency down) and its plot."""

from __future__ import annotations

import os
from typing import Sequence

from hwnas.units import latency_unit


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


def plain(text: str) -> str:
    """``text`` as matplotlib shows it literally: a ``$`` (mathtext) escaped, so that a user's run, data set or
    device name (``a$\\frac{x$b``) is never parsed as a formula."""
    return text.replace("$", r"\$")


def draw_pareto(ax, points: Sequence[dict], *, budget_ms: float, chosen: dict | None = None, title: str = "",
                label: str = "", color: str = "C0", budget_line: bool = True) -> None:
    """Draws verified architectures, their front, the budget and the chosen model on ``ax`` (in the CLI's
    latency unit)."""
    unit, factor = latency_unit(budget_ms)
    prefix = f"{plain(label)}: " if label else ""
    title = plain(title)
    if points:
        ax.scatter([p["latency_ms"] * factor for p in points], [p["accuracy"] for p in points], s=14, alpha=0.45,
                   color=color, label=f"{prefix}verified")
        front = pareto_front(points)
        ax.plot([p["latency_ms"] * factor for p in front], [p["accuracy"] for p in front], "o-", color=color,
                ms=4, alpha=0.9, label=f"{prefix}Pareto front")
    if chosen is not None:
        ax.scatter([chosen["latency_ms"] * factor], [chosen["accuracy"]], marker="*", s=220, color="gold",
                   edgecolor="black", zorder=5, label=f"{prefix}chosen ({chosen['accuracy']:.4f}, "
                                                      f"{chosen['latency_ms'] * factor:.3g} {unit})")
    if budget_line:
        ax.axvline(budget_ms * factor, color="C3", ls="--", label=f"budget {budget_ms * factor:.3g} {unit}")
    ax.set_xlabel(f"measured latency ({unit})")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)


def plot_pareto(points: Sequence[dict], path: str | os.PathLike, *, budget_ms: float, title: str = "",
                chosen: dict | None = None) -> None:
    """Scatter of verified architectures, their front, the latency budget as a vertical line and the chosen
    model as a star, in the unit the command line prints the budget in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    draw_pareto(ax, points, budget_ms=budget_ms, chosen=chosen, title=title)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
