"""The data-set contract: shape, classes and seeded train/validation/test splits as numpy arrays."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from hwnas.errors import HwnasError


class DataError(HwnasError, ValueError):
    """A data set cannot be loaded or is unusable; the message names the file or folder."""


#: Decoded (float32) size above which a data set is streamed instead of held in memory (``stream="auto"``).
STREAM_BYTES = 1 << 30


@dataclass(frozen=True)
class Splits:
    """Arrays of one data set: inputs ``float32`` of shape ``(N, C, H, W)``, labels ``int64`` of shape ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        """``(train, val, test)`` sample counts."""
        return len(self.y_train), len(self.y_val), len(self.y_test)


class Dataset(abc.ABC):
    """Base class of data sets. Validation drives search; test is only reported at the end.

    Subclasses set :attr:`name` and implement :attr:`input_shape`, :attr:`class_names` and :meth:`splits`.
    :attr:`key` identifies the *content* in the evaluation store: two data sets with the same key must give
    the same splits for the same seed.
    """

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

    @property
    def key(self) -> str:
        """Identity of the data in the evaluation store (the name, plus options or a content hash)."""
        return self.name

    @abc.abstractmethod
    def splits(self, seed: int = 0) -> Splits:
        """The train/validation/test splits, identical for the same seed."""

    def split_sizes(self, seed: int = 0) -> tuple[int, int, int]:
        """``(train, val, test)`` sample counts (a generated data set knows them without generating)."""
        return self.splits(seed).sizes()

    def preprocess(self):
        """How source inputs become model inputs (:class:`~hwnas.data.preprocess.Preprocess`); the default:
        arrays used as given. Data sets of pixel values override it."""
        from hwnas.data.preprocess import Preprocess

        c, h, w = (int(d) for d in self.input_shape)
        return Preprocess(c, h, w, pixel_max=None, source="arrays used as given")

    def describe(self) -> str:
        """One line describing the data set (for ``hwnas datasets``)."""
        return (type(self).__doc__ or "").strip().splitlines()[0]


def options_key(name: str, dataset: object, defaults: dict) -> str:
    """A data set's store key: ``name`` alone at its defaults, else ``name[key=value,...]`` with the options
    that differ from ``defaults`` (read as attributes of ``dataset``), sorted."""
    options = {k: getattr(dataset, k) for k in defaults if getattr(dataset, k) != defaults[k]}
    if not options:
        return name
    return f"{name}[{','.join(f'{k}={v:g}' for k, v in sorted(options.items()))}]"


def stratified_split(y: np.ndarray, *, val_fraction: float, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a per-class (stratified) train/validation/test split, deterministic for ``seed``.

    Each class ``c`` of ``n_c`` samples gives ``round(val_fraction * n_c)`` samples to validation and
    ``round(test_fraction * n_c)`` to test, always keeping at least one for training.

    Returns:
        Sorted index arrays ``(train, val, test)``.
    """
    check_fractions(val_fraction, test_fraction)
    rng = np.random.default_rng([int(seed), 0xDA7A])
    parts: tuple[list, list, list] = ([], [], [])
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        members = members[rng.permutation(len(members))]
        n_val = int(round(val_fraction * len(members)))
        n_test = int(round(test_fraction * len(members)))
        while n_val + n_test >= len(members) and n_val + n_test > 0:
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        parts[1].append(members[:n_val])
        parts[2].append(members[n_val:n_val + n_test])
        parts[0].append(members[n_val + n_test:])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raises :class:`DataError` unless both fractions are in [0, 1) and leave data for training."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise DataError(f"{name} must be in [0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise DataError(f"val_fraction + test_fraction must be below 1 "
                        f"(got {val_fraction} + {test_fraction})")


def to_unit_range(x: np.ndarray, *, max_value: float) -> np.ndarray:
    """Scales pixel values ``0..max_value`` to ``float32`` in [-1, 1]."""
    return (x.astype(np.float32) / np.float32(max_value) - np.float32(0.5)) / np.float32(0.5)


def stream_choice(stream: object, *, decoded_bytes: int, what: str) -> bool:
    """Whether a data set is streamed (its splits then :class:`~hwnas.data.lazy.LazyArray` s): ``stream`` is
    ``"auto"`` (streamed above :data:`STREAM_BYTES` decoded) or a yes/no (true/false, yes/no, 1/0).

    Raises:
        DataError: ``stream`` is none of these.
    """
    text = str(stream).strip().lower()
    if text == "auto":
        return decoded_bytes > STREAM_BYTES
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise DataError(f"{what}: stream={stream!r} is not auto, true or false")

