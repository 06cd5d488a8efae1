"""Deploying to the run's device: the command that measures a copied model there, the budget verdict, and
the conditions recorded in a model file. Whether the device is this machine is
:func:`hwnas.profiling.device.locate_device`'s call.
"""

from __future__ import annotations

import shlex
from typing import Mapping

from hwnas.profiling.measure import Conditions
from hwnas.units import format_latency


def remote_command(model_name: str, conditions: Conditions) -> str:
    """The command that measures the copied file on the device under the run's conditions."""
    return (f"hwnas evaluate {shlex.quote(model_name)} --latency-only --provider {conditions.provider} "
            f"--threads {conditions.threads} --batch-size {conditions.batch_size}")


def budget_verdict(latency_ms: float, budget_ms: float | None) -> str:
    """``"within the 5ms budget (82% of it)"`` / ``"OVER the 400us budget by 12%"`` / ``"no budget"``."""
    if budget_ms is None:
        return "no latency budget"
    share = latency_ms / budget_ms if budget_ms > 0 else float("inf")
    if latency_ms <= budget_ms:
        return f"within the {format_latency(budget_ms)} budget ({100 * share:.0f}% of it)"
    return f"OVER the {format_latency(budget_ms)} budget by {100 * (share - 1):.0f}%"


def conditions_from_metadata(metadata: Mapping[str, str], *, provider: str | None = None,
                             threads: int | None = None, batch_size: int | None = None) -> Conditions:
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
                      batch_size=counts["batch_size"], precision=metadata.get("precision", "fp32"))
