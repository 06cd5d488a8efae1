"""What ``hwnas profile show`` reports: the fingerprint plus, per space and input shape, count, latency range
and noise figures."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hwnas.profiling.store import ProfileStore


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def summarize_profile(store: ProfileStore) -> dict[str, Any]:
    """A JSON-ready summary of a profile.

    Returns:
        ``{"device", "path", "fingerprint", "records", "groups": [...]}`` where each group (one space, its
        options and one input shape) holds ``count``, ``min_ms``/``median_ms``/``max_ms`` over the
        architectures' medians, and the noise figures ``median_rel_ci`` (median of the relative 95%
        confidence half-widths), ``median_spread`` (median of ``(p90 - p10) / median``), ``converged`` and
        ``measured`` (records with run statistics; imported table rows have none).
    """
    records = store.records()
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        key = (record["space"], json.dumps(record.get("space_options") or {}, sort_keys=True),
               tuple(int(d) for d in record["input_shape"]))
        groups.setdefault(key, []).append(record)
    out = []
    for (space, options, shape), members in sorted(groups.items()):
        medians = [float(r["median_ms"]) for r in members]
        measured = [r for r in members if r.get("runs")]
        spreads = [(r["p90_ms"] - r["p10_ms"]) / r["median_ms"] for r in measured
                   if r.get("p90_ms") is not None and r.get("p10_ms") is not None and r["median_ms"] > 0]
        out.append({
            "space": space, "space_options": json.loads(options), "input_shape": list(shape),
            "count": len(members), "min_ms": min(medians), "median_ms": _median(medians),
            "max_ms": max(medians),
            "measured": len(measured),
            "converged": sum(1 for r in measured if r.get("converged")),
            "median_rel_ci": _median([float(r["rel_ci"]) for r in measured if r.get("rel_ci") is not None]),
            "median_spread": _median(spreads),
            "median_runs": _median([float(r["runs"]) for r in measured]),
        })
    return {"device": store.device, "path": str(store.path), "fingerprint": store.fingerprint,
            "records": len(records), "groups": out}
