"""Deploying to the run's device: the budget verdict, re-measurement windows, and the conditions recorded in a
model file. Where the device is, and the command that measures a copied file on it, is :mod:`hwnas.devices`'.
"""

from __future__ import annotations

from typing import Callable, Mapping

from hwnas.profiling.measure import Conditions, LatencyStats
from hwnas.units import format_latency

#: Measurement windows at most when the first disagrees (see :func:`confirm_latency`).
CONFIRM_WINDOWS = 3
#: A window more than this share above the expected latency is re-measured.
CONFIRM_TOLERANCE = 0.10


def budget_verdict(latency_ms: float, budget_ms: float | None) -> str:
    """``"within the 5ms budget (82% of it)"`` / ``"OVER the 400us budget by 12%"`` / ``"no budget"``."""
    if budget_ms is None:
        return "no latency budget"
    share = latency_ms / budget_ms if budget_ms > 0 else float("inf")
    if latency_ms <= budget_ms:
        return f"within the {format_latency(budget_ms)} budget ({100 * share:.0f}% of it)"
    return f"OVER the {format_latency(budget_ms)} budget by {100 * (share - 1):.0f}%"


def confirm_latency(measure: Callable[[], LatencyStats], *, expected_ms: float | None,
                    budget_ms: float | None, echo: Callable[[str], None], windows: int = CONFIRM_WINDOWS,
                    tolerance: float = CONFIRM_TOLERANCE) -> tuple[LatencyStats, list[float]]:
    """Measures once and, while the window's median is over the budget or more than ``tolerance`` above the
    latency measured before (``expected_ms``, e.g. the search's), measures again, ``windows`` times at most;
    returns the fastest window and every window's median.

    A short window on a shared machine is sometimes slowed by something else (a model the search measured at
    332 us read 417 us in its export's window and 320 us in three windows right after); such a disturbance
    only ever adds time, so the fastest of a few windows is the model's latency, and one slow window no longer
    turns an in-budget model into an over-budget one.
    """
    stats = measure()
    medians = [stats.median_ms]
    while len(medians) < windows:
        over_budget = budget_ms is not None and stats.median_ms > budget_ms
        above = expected_ms is not None and stats.median_ms > expected_ms * (1 + tolerance)
        if not (over_budget or above):
            break
        reason = (f"{100 * (medians[-1] / expected_ms - 1):.0f}% above the {format_latency(expected_ms)} "
                  f"measured before" if above else budget_verdict(medians[-1], budget_ms))
        echo(f"  window {len(medians)}: {format_latency(medians[-1])} median, {reason}: measuring again (a "
             f"disturbance of the machine only adds time)")
        again = measure()
        medians.append(again.median_ms)
        if again.median_ms < stats.median_ms:
            stats = again
    return stats, medians


def windows_note(medians: list[float]) -> str:
    """``""``, or ``", fastest of 3 windows: 417us, 320us, 321us"`` after re-measurements."""
    if len(medians) < 2:
        return ""
    return f", fastest of {len(medians)} windows: " + ", ".join(format_latency(m) for m in medians)


def conditions_from_metadata(metadata: Mapping[str, str], *, provider: str | None = None,
                             threads: int | None = None, batch_size: int | None = None,
                             runtime: str | None = None) -> Conditions:
    """The measurement conditions recorded in a model's metadata, with overrides.

    Raises:
        DeployError: a recorded count is not a positive whole number (a tampered file).
    """
    from hwnas.deploy.target import DeployError

    counts = {}
    for key, override in (("threads", threads), ("batch_size", batch_size)):
        raw = override or metadata.get(key, 1)
        try:
            counts[key] = int(raw)
        except (TypeError, ValueError):
            counts[key] = 0
        if not 1 <= counts[key] <= 1024:
            raise DeployError(f"the model's metadata has {key}={raw!r}, not a whole number in 1..1024; give "
                              f"--{key.replace('_', '-')}")
    return Conditions(provider=provider or metadata.get("provider", "cpu"), threads=counts["threads"],
                      batch_size=counts["batch_size"], precision=metadata.get("precision", "fp32"),
                      runtime=runtime or metadata.get("runtime", "onnxruntime"))
