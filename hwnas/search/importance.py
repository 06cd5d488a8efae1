"""Which decisions move accuracy and latency: importance read from a run's fitted predictors.

For each decision of the space, architectures are sampled at random and the decision alone is set to each of its
choices (the others kept; a decision it switches on is sampled, one it switches off dropped, as
:meth:`~hwnas.search.spaces.base.SearchSpace.complete` does); the predictors price every variant. A decision's
importance is the mean, over the sampled architectures, of the spread (max - min) of the predictions across its
choices: in accuracy points for accuracy, as a fraction of the variant's median latency for latency. It says
what the *predictors* learned from the run's trainings and measurements, not a truth about the task: a
predictor fit on few trainings is noisy, and the report says how many it was fit on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.predictors.base import Predictor
from hwnas.spaces.base import SearchSpace

#: Architectures sampled per decision.
SAMPLES = 24


@dataclass(frozen=True)
class DecisionImportance:
    """How much one decision moves the predictions (None: that predictor was not available)."""

    decision: str
    choices: int
    accuracy: float | None
    latency: float | None


def decision_importance(space: SearchSpace, *, accuracy: Predictor | None, latency: Predictor | None,
                        rng: np.random.Generator, samples: int = SAMPLES) -> list[DecisionImportance]:
    """Every decision with more than one choice, most important first (by accuracy, then latency)."""
    bases = [space.sample(rng) for _ in range(samples)]
    out = []
    for decision in space.decisions:
        if len(decision.choices) < 2:
            continue
        groups: list[list] = []
        for base in bases:
            if not space.is_active(decision, dict(base)):
                continue
            groups.append([space.complete({**dict(base), decision.label: value}, rng) for value in decision.choices])
        if not groups:
            continue
        flat = [arch for group in groups for arch in group]
        shape = (len(groups), len(decision.choices))
        acc_score = lat_score = None
        if accuracy is not None:
            values = np.asarray(accuracy.predict(flat), dtype=float).reshape(shape)
            acc_score = float(np.mean(values.max(axis=1) - values.min(axis=1)))
        if latency is not None:
            values = np.asarray(latency.predict(flat), dtype=float).reshape(shape)
            median = np.maximum(np.median(values, axis=1), 1e-12)
            lat_score = float(np.mean((values.max(axis=1) - values.min(axis=1)) / median))
        out.append(DecisionImportance(decision=decision.label, choices=len(decision.choices), accuracy=acc_score,
                                      latency=lat_score))
    out.sort(key=lambda d: (-(d.accuracy or 0.0), -(d.latency or 0.0), d.decision))
    return out


def latest_predictors(folder: Path, *, space: str) -> tuple[Predictor | None, Predictor | None, int | None]:
    """The accuracy and latency predictors of a run's last round that saved both (``predictors/round_NNN``),
    and that round (None where the run saved none or they do not load)."""
    from hwnas.predictors.model import PredictorError, XGBPredictor

    rounds = sorted(p for p in (folder / "predictors").glob("round_*") if p.is_dir()) \
        if (folder / "predictors").is_dir() else []
    for snapshot in reversed(rounds):
        loaded: list[Predictor | None] = []
        for kind in ("accuracy", "latency"):
            try:
                loaded.append(XGBPredictor.load(snapshot / kind, space=space) if (snapshot / kind).is_dir() else None)
            except (PredictorError, OSError, ValueError):
                loaded.append(None)
        if any(m is not None for m in loaded):
            try:
                number = int(snapshot.name.split("_", 1)[1])
            except ValueError:
                number = None
            return loaded[0], loaded[1], number
    return None, None, None


def top(importances: Sequence[DecisionImportance], n: int = 12) -> list[DecisionImportance]:
    """The ``n`` decisions that move either prediction most (by the larger of their ranks)."""
    if len(importances) <= n:
        return list(importances)
    by_acc = sorted(importances, key=lambda d: -(d.accuracy or 0.0))
    by_lat = sorted(importances, key=lambda d: -(d.latency or 0.0))
    rank = {d.decision: min(by_acc.index(d), by_lat.index(d)) for d in importances}
    return sorted(importances, key=lambda d: (rank[d.decision], d.decision))[:n]
