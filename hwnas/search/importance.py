"""Which decisions move accuracy and latency: importance read from a run's fitted predictors.

For each decision of the space, architectures are sampled at random and the decision alone is set to each of its
choices (the others kept; a decision it switches on is sampled, one it switches off dropped, as
:meth:`~hwnas.search.spaces.base.SearchSpace.complete` does); the predictors price every variant. A decision's
importance is the mean, over the sampled architectures, of the spread (max - min) of the predictions across its
choices: in accuracy (a fraction, as the predictor gives it) for accuracy, as a fraction of the variant's median
latency for latency. It says
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


@dataclass(frozen=True)
class Snapshot:
    """A predictor a run saved (``predictors/round_NNN/<kind>``): the model, its round and its training records."""

    model: Predictor
    round: int
    records: int | None


def latest_predictor(folder: Path, kind: str, *, space: str) -> Snapshot | None:
    """The last ``kind`` (``accuracy``, ``latency``) predictor a run saved that loads (the latency predictor is
    refit, and saved, only when its records grew: its last round is often older than the accuracy predictor's)."""
    from hwnas.predictors.model import PredictorError, XGBPredictor, read_meta

    root = folder / "predictors"
    rounds = sorted(p for p in root.glob("round_*") if (p / kind).is_dir()) if root.is_dir() else []
    for snapshot in reversed(rounds):
        try:
            model = XGBPredictor.load(snapshot / kind, space=space)
            records = read_meta(snapshot / kind).get("n_train")
            number = int(snapshot.name.split("_", 1)[1])
        except (PredictorError, OSError, ValueError):
            continue
        return Snapshot(model=model, round=number, records=records if isinstance(records, int) else None)
    return None


def top(importances: Sequence[DecisionImportance], n: int = 12) -> list[DecisionImportance]:
    """The ``n`` decisions that move either prediction most (by the larger of their ranks)."""
    if len(importances) <= n:
        return list(importances)
    by_acc = sorted(importances, key=lambda d: -(d.accuracy or 0.0))
    by_lat = sorted(importances, key=lambda d: -(d.latency or 0.0))
    rank = {d.decision: min(by_acc.index(d), by_lat.index(d)) for d in importances}
    return sorted(importances, key=lambda d: (rank[d.decision], d.decision))[:n]
