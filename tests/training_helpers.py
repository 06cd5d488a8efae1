"""Fast pieces for training and store tests: a tiny architecture, a cheap recipe, a counting evaluator."""

from __future__ import annotations

import time

from hwnas.training import Evaluator, Recipe, TrainResult

TINY = "16:k3e1/24:k3e1/32:k3e1/48:k3e1"
FAST = Recipe(epochs=1, data_fraction=0.25, warmup_epochs=0.0)


class CountingEvaluator(Evaluator):
    """Pretends to train: returns an accuracy derived from the arch string, counts calls, can sleep."""

    source = "train"

    def __init__(self, *, sleep: float = 0.0) -> None:
        super().__init__()
        self.sleep = sleep

    def evaluate(self, space, arch, dataset, *, recipe, seed):
        if self.sleep:
            time.sleep(self.sleep)
        accuracy = (sum(map(ord, arch.string)) + seed) % 1000 / 1000
        return TrainResult(val_accuracy=accuracy, val_loss=1.0 - accuracy, params=len(arch.string),
                           wall_time_s=self.sleep, epochs=recipe.epochs, data_fraction=recipe.data_fraction,
                           threads=1)
