"""The data-set contract: shape, classes and seeded train/validation/test splits as numpy arrays."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Splits:
    """Arrays of one data set: inputs ``float32`` of shape ``(N, C, H, W)``, labels ``int64`` of shape ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Dataset(abc.ABC):
    """Base class of data sets. Validation drives search; test is only reported at the end."""

    name: str = ""

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input."""

    @property
    @abc.abstractmethod
    def class_names(self) -> list[str]:
        """Names of the classes, in label order."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abc.abstractmethod
    def splits(self, seed: int = 0) -> Splits:
        """The train/validation/test splits, identical for the same seed."""
