"""``digits``: scikit-learn's embedded 8x8 handwritten digits (1,797 images, 10 classes; no download)."""

from __future__ import annotations

import numpy as np

from hwnas.data import register_dataset
from hwnas.data.base import Dataset, Splits


@register_dataset("digits")
class DigitsDataset(Dataset):
    """scikit-learn's 8x8 handwritten digits: the embedded default task.

    Args:
        val_fraction: Share of the images held out for validation.
        test_fraction: Share of the images held out for testing.
    """

    name = "digits"

    def __init__(self, *, val_fraction: float = 0.2, test_fraction: float = 0.2) -> None:
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, 8, 8)

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(10)]

    def splits(self, seed: int = 0) -> Splits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        data = load_digits()
        x = (data.images.astype(np.float32) / 16.0 - 0.5) / 0.5  # pixel values 0..16 -> [-1, 1]
        x = x[:, None, :, :]
        y = data.target.astype(np.int64)
        x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=self.test_fraction,
                                                          random_state=seed, stratify=y)
        val_share = self.val_fraction / (1.0 - self.test_fraction)
        x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=val_share,
                                                          random_state=seed, stratify=y_rest)
        return Splits(x_train, y_train, x_val, y_val, x_test, y_test)
