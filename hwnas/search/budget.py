"""Parsing of latency budgets (``2ms``, ``1.5 ms``, ``800us``) and time budgets (``10m``, ``1h30m``, ``45s``)."""

from __future__ import annotations

import math
import re

from hwnas.errors import HwnasError


class BudgetError(HwnasError, ValueError):
    """A budget is unit-less, zero, negative or unparseable."""


_LATENCY_UNITS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "ns": 1e-6}
_LATENCY_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]+)\s*$")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*([smh])")


#: The largest latency budget accepted (one hour): anything above is a typo, never a deployment target.
MAX_BUDGET_MS = 3_600_000.0
#: The smallest latency budget accepted (one nanosecond, the finest unit read): below it no model can fit.
MIN_BUDGET_MS = 1e-6
#: The largest time budget accepted (one year), in seconds.
MAX_DURATION_S = 365 * 24 * 3600.0


def parse_latency(text: str) -> float:
    """A latency budget in milliseconds.

    Raises:
        BudgetError: no unit, unknown unit, zero or negative, or not a number.
    """
    raw = str(text).strip()
    if raw.startswith("-"):
        raise BudgetError(f"latency budget {text!r} must be positive")
    match = _LATENCY_RE.match(raw.lower())
    if not match:
        if re.fullmatch(r"[0-9]*\.?[0-9]+", raw):
            raise BudgetError(f"latency budget {text!r} needs a unit: e.g. {raw}ms or {raw}us")
        raise BudgetError(f"latency budget {text!r} is not a number with a unit such as 2ms, 1.5 ms or 800us")
    value, unit = float(match.group(1)), match.group(2)
    if unit not in _LATENCY_UNITS:
        raise BudgetError(f"latency budget {text!r}: unknown unit {unit!r} (use s, ms, us or ns)")
    if value <= 0:
        raise BudgetError(f"latency budget {text!r} must be positive")
    ms = value * _LATENCY_UNITS[unit]
    if not math.isfinite(ms) or ms > MAX_BUDGET_MS:
        raise BudgetError(f"latency budget {text!r} is beyond the largest budget, {MAX_BUDGET_MS / 1000:g} s")
    if ms < MIN_BUDGET_MS:
        raise BudgetError(f"latency budget {text!r} is below the smallest budget, 1 ns")
    return ms


def parse_duration(text: str) -> float:
    """A time budget in seconds: ``90s``, ``10m``, ``1h30m`` (a unit is needed, as for a latency budget).

    Raises:
        BudgetError: no unit, not a duration, zero, or beyond a year (:data:`MAX_DURATION_S`).
    """
    raw = str(text).strip().lower()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", raw):
        raise BudgetError(f"time budget {text!r} needs a unit: e.g. {raw}s, {raw}m or {raw}h")
    parts = _DURATION_PART.findall(raw)
    if not parts or _DURATION_PART.sub("", raw).strip():
        raise BudgetError(f"time budget {text!r} is not a duration such as 90s, 10m or 1h30m")
    seconds = sum(float(v) * _DURATION_UNITS[u] for v, u in parts)
    if seconds <= 0:
        raise BudgetError(f"time budget {text!r} must be positive")
    check_duration(seconds, f"time budget {text!r}")
    return seconds


def check_duration(seconds: float, what: str = "time budget") -> float:
    """``seconds`` if finite, positive and at most a year; :class:`BudgetError` naming ``what`` otherwise."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 < seconds <= MAX_DURATION_S):
        raise BudgetError(f"{what} must be a positive duration of at most a year ({MAX_DURATION_S:.0f} s), "
                          f"got {seconds!r} s")
    return float(seconds)
