"""Diagnostics of a finished search: whether its real evaluations could tell architectures apart."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def uninformative(verified: Sequence[dict], *, num_classes: int | None,
                  validation_size: int | None) -> str | None:
    """A warning when the run's accuracies cannot tell architectures apart (None when they can).

    Two cases, judged on the initial diverse trainings (all verified ones if fewer than 3): every accuracy is at
    chance level (within three binomial standard errors of ``1/num_classes``), or their spread is within the
    noise of a single evaluation (the binomial standard error of an accuracy measured on ``validation_size``
    examples, a lower bound on the seed-to-seed spread).
    """
    initial = [v for v in verified if v.get("round") == 0]
    accuracies = np.array([v["accuracy"] for v in (initial if len(initial) >= 3 else verified)], dtype=float)
    if len(accuracies) < 3:
        return None
    advice = "train longer (--epochs), use a smaller batch (-R batch_size=16) or a larger --data-fraction"
    if num_classes and num_classes > 1:
        chance = 1.0 / num_classes
        n = validation_size or 100
        margin = 3.0 * np.sqrt(chance * (1.0 - chance) / n)
        if np.all(accuracies <= chance + margin):
            return (f"every verified accuracy is at chance level ({accuracies.max():.3f} <= {chance:.3f} + noise): "
                    f"the search could not tell architectures apart; {advice}")
    if validation_size:
        mean = float(np.clip(accuracies.mean(), 0.0, 1.0))
        noise = float(np.sqrt(mean * (1.0 - mean) / validation_size))
        spread = float(np.std(accuracies))
        if spread <= noise:
            return (f"the verified accuracies spread by {spread:.4f} (std), within the noise of one evaluation "
                    f"on {validation_size} validation examples ({noise:.4f}): the ranking is not reliable; "
                    f"{advice}")
    return None
