"""Latency as hwnas prints it, everywhere: ``42.1us`` under a millisecond, ``1.23ms`` above (the same units
``--latency-budget`` reads), and the unit plots use."""

from __future__ import annotations


def format_latency(ms: float) -> str:
    """``0.0421 -> '42.1us'``, ``0.4 -> '400us'``, ``1.234 -> '1.23ms'``, ``2500 -> '2.5s'`` (three significant
    digits, the unit that keeps the number between 1 and 1000)."""
    if ms < 1:
        return f"{ms * 1000:.3g}us"
    return f"{ms:.3g}ms" if ms < 1000 else f"{ms / 1000:.3g}s"


def latency_unit(budget_ms: float) -> tuple[str, float]:
    """The unit a plot of latencies around ``budget_ms`` uses (the one :func:`format_latency` prints the budget
    in) and the factor from milliseconds to it: ``("µs", 1000)`` under 1 ms, else ``("ms", 1)``."""
    return ("µs", 1000.0) if budget_ms < 1 else ("ms", 1.0)
