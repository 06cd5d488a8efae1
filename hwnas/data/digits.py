"""``digits``: scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes; no download).

The full task is too easy to tell architectures apart (every reasonable CNN reaches ~98%), so the default
task is made harder in two documented ways, measured with ``benchmarks/discrimination.py``:

- a small training split: 30% of the images train, 50% validate (a large validation split measures
  accuracy finely enough to rank architectures), 20% test;
- fixed Gaussian pixel noise (standard deviation ``noise`` in the [-1, 1] pixel range), drawn once per split
  seed and clipped, so the images are the same in every epoch and for every architecture.

``create_dataset("digits", val_fraction=0.2, test_fraction=0.2, noise=0.0)`` gives the plain task.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hwnas.data import register_dataset
from hwnas.data.base import (Dataset, DataError, Splits, check_fractions, options_key, stratified_split,
                             to_unit_range)

DEFAULTS = {"val_fraction": 0.5, "test_fraction": 0.2, "noise": 0.25}


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = to_unit_range(data.images, max_value=16.0)[:, None, :, :]  # pixel values 0..16 -> [-1, 1]
    return x, data.target.astype(np.int64)


@register_dataset("digits")
class DigitsDataset(Dataset):
    """scikit-learn's 8x8 handwritten digits with pixel noise and a small training split (embedded default).

    Args:
        val_fraction: Share of the images held out for validation.
        test_fraction: Share of the images held out for testing.
        noise: Standard deviation of the fixed Gaussian pixel noise (0 for clean images).
    """

    name = "digits"

    def __init__(self, *, val_fraction: float = DEFAULTS["val_fraction"],
                 test_fraction: float = DEFAULTS["test_fraction"], noise: float = DEFAULTS["noise"]) -> None:
        check_fractions(float(val_fraction), float(test_fraction))
        if not noise >= 0:
            raise DataError(f"digits: noise must be >= 0, got {noise!r}")
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.noise = float(noise)
        self._cache: dict[int, Splits] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    def preprocess(self):
        from hwnas.data.preprocess import Preprocess

        noise = f", with fixed noise of std {self.noise:g} added after scaling" if self.noise else ""
        return Preprocess(1, 8, 8, pixel_max=16.0,
                          source=f"scikit-learn digits: 8x8 grayscale arrays of values 0..16{noise}")

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(10)]

    @property
    def key(self) -> str:
        return options_key(self.name, self, DEFAULTS)

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            x, y = _load()
            if self.noise > 0:
                rng = np.random.default_rng([seed, 0x0015E])
                x = np.clip(x + rng.normal(0.0, self.noise, size=x.shape).astype(np.float32), -1.0, 1.0)
            train, val, test = stratified_split(y, val_fraction=self.val_fraction,
                                                test_fraction=self.test_fraction, seed=seed)
            self._cache[seed] = Splits(x[train], y[train], x[val], y[val], x[test], y[test])
        return self._cache[seed]
