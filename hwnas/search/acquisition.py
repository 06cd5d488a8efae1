"""Which candidates a round measures and trains: an acquisition on the accuracy ensemble, gated by feasibility.

A round's pool (the controller's proposals, the local search's finds and the neighbours of the best verified
architectures) is ranked here. Two questions are kept apart, because they cost very different amounts:

- *Is it feasible?* A latency measurement costs about a second (a table look-up: nothing), so the loop
  measures before it trains and never trains an architecture over the budget. What it may measure is gated by
  the probability that the latency is within the budget, from the latency predictor and its observed error
  (log-normal, :func:`feasibility`); an architecture measured already has probability 0 or 1.
- *Is it worth a training?* An acquisition on the accuracy predictor's ensemble (mean ``mu``, spread
  ``sigma``) orders the pool; the loop measures in that order and trains the first feasible ones.

Acquisitions (``--acquisition``), as compared by BANANAS (White et al. 2021) for predictor-guided NAS:

- ``ucb``: ``mu + kappa * sigma`` (upper confidence bound; ``kappa`` is ``--explore``).
- ``ei``: expected improvement over the best verified feasible accuracy (Gaussian ``mu, sigma``).
- ``ts``: independent Thompson sampling: one draw from ``N(mu, sigma)`` per architecture.
- ``greedy``: ``mu``.

Explorations (``--explore-by``, :data:`EXPLORATIONS`) pick the round's exploration candidates, chosen for
information rather than exploitation, among random samples likely to fit the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hwnas.errors import HwnasError
from hwnas.registry import Registry

#: Log-latency error assumed until the run has measured enough predicted candidates to estimate its own.
DEFAULT_LOG_SIGMA = 0.15
#: Fewest predicted-then-measured latencies from which the run's own error is used.
MIN_ERRORS = 5


@dataclass(frozen=True)
class Candidate:
    """One architecture of a round's pool with what the predictors say of it."""

    arch: str
    accuracy: float
    accuracy_std: float
    latency_ms: float


#: ``fn(mu, sigma, best, kappa, rng) -> value``: larger is more worth a training.
ACQUISITIONS: Registry[Callable[..., np.ndarray]] = Registry("acquisition")


@ACQUISITIONS.register("ucb")
def ucb(mu: np.ndarray, sigma: np.ndarray, best: float | None, kappa: float,
        rng: np.random.Generator) -> np.ndarray:
    return mu + kappa * sigma


@ACQUISITIONS.register("ei")
def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float | None, kappa: float,
                         rng: np.random.Generator) -> np.ndarray:
    if best is None:
        return mu + kappa * sigma
    sigma = np.maximum(sigma, 1e-9)
    z = (mu - best) / sigma
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    # ties at zero EI (far below the best) are broken by the mean, so the order stays meaningful
    return (mu - best) * cdf + sigma * pdf + 1e-9 * mu


@ACQUISITIONS.register("ts")
def thompson(mu: np.ndarray, sigma: np.ndarray, best: float | None, kappa: float,
             rng: np.random.Generator) -> np.ndarray:
    return mu + sigma * rng.standard_normal(len(mu))


@ACQUISITIONS.register("greedy")
def greedy(mu: np.ndarray, sigma: np.ndarray, best: float | None, kappa: float,
           rng: np.random.Generator) -> np.ndarray:
    return np.asarray(mu, dtype=float)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[float])(x)


def log_sigma(pairs: Sequence[tuple[float, float]]) -> float:
    """The latency predictor's log-scale error, from ``(predicted, measured)`` pairs of this run (root mean
    square of ``log(measured / predicted)``); :data:`DEFAULT_LOG_SIGMA` until there are :data:`MIN_ERRORS`."""
    ratios = [math.log(m / p) for p, m in pairs if p and m and p > 0 and m > 0]
    if len(ratios) < MIN_ERRORS:
        return DEFAULT_LOG_SIGMA
    return max(0.02, float(np.sqrt(np.mean(np.square(ratios)))))


def feasibility(predicted_ms: np.ndarray, budget_ms: float, sigma: float) -> np.ndarray:
    """Probability that the latency is within the budget, for a log-normal error of scale ``sigma``."""
    predicted_ms = np.maximum(np.asarray(predicted_ms, dtype=float), 1e-12)
    z = (math.log(budget_ms) - np.log(predicted_ms)) / max(sigma, 1e-9)
    return 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))


def rank(candidates: Sequence[Candidate], *, acquisition: str, budget_ms: float, known_ms: dict[str, float],
         sigma: float, best: float | None, kappa: float, min_feasibility: float,
         rng: np.random.Generator) -> list[Candidate]:
    """``candidates`` worth measuring, best first.

    Args:
        candidates: The pool (distinct architectures, none trained yet).
        acquisition: A name of :data:`ACQUISITIONS`.
        budget_ms: The latency budget.
        known_ms: Latencies measured already (those over the budget are dropped, the others are certain).
        sigma: The latency predictor's log-scale error (:func:`log_sigma`).
        best: The best verified feasible accuracy (None: none yet).
        kappa: Exploration weight of ``ucb`` (and of ``ei`` before anything is feasible).
        min_feasibility: Architectures less likely than this to fit the budget are not measured.
        rng: Draws of ``ts``.
    """
    if acquisition not in ACQUISITIONS:
        raise HwnasError(f"unknown acquisition {acquisition!r} (known: {', '.join(ACQUISITIONS.names())})")
    if not candidates:
        return []
    ordered = sorted(candidates, key=lambda c: c.arch)  # a fixed order for the draws of ts
    latency = np.array([known_ms.get(c.arch, c.latency_ms) for c in ordered])
    p_feasible = feasibility(latency, budget_ms, sigma)
    for i, c in enumerate(ordered):
        if c.arch in known_ms:
            p_feasible[i] = float(known_ms[c.arch] <= budget_ms)
    mu = np.array([c.accuracy for c in ordered])
    sd = np.array([c.accuracy_std for c in ordered])
    value = ACQUISITIONS.get(acquisition)(mu, sd, best, kappa, rng)
    keep = [i for i in range(len(ordered)) if p_feasible[i] >= min_feasibility and p_feasible[i] > 0]
    keep.sort(key=lambda i: (-value[i], ordered[i].arch))
    return [ordered[i] for i in keep]


#: ``fn(candidates, *, value, distance, rng) -> indices, most informative first``: how the exploration slots
#: pick among the round's random samples likely to fit the budget. ``value`` is the acquisition's value of each,
#: ``distance`` its number of differing decisions to the nearest trained architecture.
EXPLORATIONS: Registry[Callable[..., list[int]]] = Registry("exploration")


@EXPLORATIONS.register("acquisition")
def by_acquisition(candidates: Sequence[Candidate], *, value: np.ndarray, distance: np.ndarray,
                   rng: np.random.Generator) -> list[int]:
    """The acquisition's best among the random samples (the exploitation rule on another pool)."""
    return sorted(range(len(candidates)), key=lambda i: (-value[i], candidates[i].arch))


@EXPLORATIONS.register("distance")
def by_distance(candidates: Sequence[Candidate], *, value: np.ndarray, distance: np.ndarray,
                rng: np.random.Generator) -> list[int]:
    """Farthest from everything trained (in decisions), the acquisition breaking ties: a region no training
    has looked at, and the best-looking candidate of it."""
    return sorted(range(len(candidates)), key=lambda i: (-distance[i], -value[i], candidates[i].arch))


@EXPLORATIONS.register("uncertainty")
def by_uncertainty(candidates: Sequence[Candidate], *, value: np.ndarray, distance: np.ndarray,
                   rng: np.random.Generator) -> list[int]:
    """The accuracy predictor's largest ensemble spread: where its members disagree most."""
    return sorted(range(len(candidates)), key=lambda i: (-candidates[i].accuracy_std, candidates[i].arch))
