"""A noise-aware answer: the search's finalists trained again with other seeds, the answer chosen by the mean.

With training noise of a few points at the search's fidelity, the highest single validation accuracy is biased
toward seed luck (the winner's curse): of architectures one decision apart, trained once each, the luckiest
wins. Before a search ends, its ``finalists`` best trained architectures within the budget are trained
``final_seeds`` more times each (other training seeds, from the search's own training budget), and the answer is
the finalist with the best mean; each finalist's mean and spread are reported.

Repeats only help where a training is noisy: a table look-up gives the same number again, so a source that
cannot repeat (its ``replica`` is missing or returns None) has no finals unless asked, and none then either.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwnas.search.state import SearchSettings, SearchState

#: Extra seeds per finalist when the run's source trains (``--final-seeds``; 0 where it looks accuracies up).
DEFAULT_FINAL_SEEDS = 2
#: Most of the training budget the finals may take: a small budget re-trains fewer finalists or fewer seeds.
RESERVE_SHARE = 0.25
#: Smallest training budget with finals by default (a smaller one is all search; ``final_seeds`` set still
#: asks for them).
MIN_TRAININGS = 12


def plan(settings: SearchSettings, *, repeatable: bool) -> tuple[int, int]:
    """``(finalists, extra seeds each)`` for a run (``(0, 0)``: no finals): ``final_seeds`` (None: the default
    where the accuracy source can repeat a training and the budget is at least :data:`MIN_TRAININGS`, none
    otherwise) for ``finalists`` architectures, shrunk (seeds first) to fit :data:`RESERVE_SHARE` of
    ``max_trainings``."""
    seeds = settings.final_seeds
    if seeds is None:
        seeds = DEFAULT_FINAL_SEEDS if repeatable and settings.max_trainings >= MIN_TRAININGS else 0
    if seeds <= 0 or settings.finalists <= 0 or not repeatable:
        return 0, 0
    cap = max(1, int(settings.max_trainings * RESERVE_SHARE))
    count = settings.finalists
    seeds = min(seeds, max(1, cap // count))
    count = min(count, max(1, cap // seeds))
    return count, seeds


def choose(state: SearchState, settings: SearchSettings, key: Callable[[str], str], count: int) -> list[str]:
    """The ``count`` best trained architectures within the budget (by their one accuracy), one per
    equivalence key."""
    feasible = [v for v in state.verified if v.latency_ms <= settings.budget_ms]
    feasible.sort(key=lambda v: (-v.accuracy, v.latency_ms, v.arch))
    chosen: dict[str, str] = {}
    for record in feasible:
        chosen.setdefault(key(record.arch), record.arch)
        if len(chosen) == count:
            break
    return list(chosen.values())


def missing(state: SearchState) -> list[tuple[str, int]]:
    """The ``(finalist, replica)`` trainings the finals still need, in order (replica 1 is the first extra
    seed)."""
    done = {(f["arch"], int(f["replica"])) for f in state.finals}
    return [(arch, replica) for arch in state.finalists for replica in range(1, state.final_seeds + 1)
            if (arch, replica) not in done]


def finalist_stats(state: SearchState) -> list[dict]:
    """Each finalist's accuracies (the search's training first, then each extra seed), mean and spread (sample
    standard deviation), best mean first; empty until every finalist has all its seeds."""
    if not state.finalists or state.final_seeds <= 0 or missing(state):
        return []
    records = {v.arch: v for v in state.verified}
    out = []
    for arch in state.finalists:
        extra = sorted((f for f in state.finals if f["arch"] == arch), key=lambda f: int(f["replica"]))
        accuracies = [records[arch].accuracy] + [float(f["accuracy"]) for f in extra]
        out.append({"arch": arch, "latency_ms": records[arch].latency_ms, "accuracies": accuracies,
                    "mean": float(np.mean(accuracies)),
                    "std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
                    "seeds": len(accuracies)})
    out.sort(key=lambda s: (-s["mean"], s["latency_ms"], s["arch"]))
    return out
