"""Cheap estimates (a supernet's) on the scale of full trainings: a linear calibration fit on the architectures
that have both.

A supernet ranks architectures but its accuracies are on another scale (shared weights, BN recalibrated,
trained for another schedule). The search puts the two fidelities on one scale before the accuracy predictor
learns from both: ``full ≈ a + b · estimate``, least squares on the trained architectures (each is also
estimated). With fewer than three pairs, or no positive slope, only the offset is corrected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Uncertainty of a calibrated estimate before residuals can be measured.
DEFAULT_STD = 0.02


@dataclass(frozen=True)
class Calibration:
    """``full = intercept + slope * estimate`` with the residual standard deviation ``std``."""

    intercept: float = 0.0
    slope: float = 1.0
    std: float = DEFAULT_STD
    pairs: int = 0

    def __call__(self, estimate: float) -> float:
        return float(np.clip(self.intercept + self.slope * float(estimate), 0.0, 1.0))

    @classmethod
    def fit(cls, pairs: Sequence[tuple[float, float]]) -> "Calibration":
        """From ``(estimate, full accuracy)`` pairs."""
        if not pairs:
            return cls()
        est, full = (np.asarray(v, dtype=float) for v in zip(*pairs))
        slope = 1.0
        if len(pairs) >= 3 and np.ptp(est) > 1e-9:
            fitted = float(np.polyfit(est, full, 1)[0])
            if fitted > 0:
                slope = fitted
        intercept = float(np.mean(full - slope * est))
        residual = full - (intercept + slope * est)
        std = float(np.std(residual, ddof=1)) if len(pairs) >= 3 else DEFAULT_STD
        return cls(intercept=intercept, slope=slope, std=max(std, 1e-3), pairs=len(pairs))
