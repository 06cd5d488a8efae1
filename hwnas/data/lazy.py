"""Inputs that are read when a batch needs them, not held in memory: :class:`LazyArray`.

A data set too large for memory (an image folder of many files, memory-mapped ``.npy`` arrays, CIFAR's binary
files) gives :class:`~hwnas.data.base.Splits` whose inputs are :class:`LazyArray` s instead of numpy arrays. A
lazy array answers like a numpy array where hwnas reads inputs -- ``len(x)``, ``x.shape``, and ``x[i]``,
``x[a:b]``, ``x[index_array]``, which read (decode) just those samples into a ``float32`` numpy array -- and
:func:`take` / :func:`concatenate` make *views* (index arrays) instead of copies. Its reader is a small picklable
object (file names, a path), so a DataLoader worker process reads batches itself.

The trainer (:mod:`hwnas.training.loader`) keeps numpy inputs in memory (on the training device) and streams
lazy ones through a :class:`torch.utils.data.DataLoader`.
"""

from __future__ import annotations

from typing import Protocol, Sequence, Union

import numpy as np


class SampleReader(Protocol):
    """Reads samples by index: ``reader(indices)`` is an array ``(len(indices), C, H, W)``, ``float32`` unless the
    reader has a ``dtype`` attribute."""

    sample_shape: tuple[int, ...]
    size: int

    def __call__(self, indices: np.ndarray) -> np.ndarray: ...


class LazyArray:
    """Samples ``index`` of ``reader``, read on demand (see the module docstring).

    Args:
        reader: What reads the samples.
        index: Which of the reader's samples, in order (all of them by default).
    """

    ndim = 4

    def __init__(self, reader: SampleReader, index: np.ndarray | None = None) -> None:
        self.reader = reader
        self.dtype = np.dtype(getattr(reader, "dtype", np.float32))  # float32 inputs, or a model's uint8 pixels
        self.index = np.arange(reader.size, dtype=np.int64) if index is None else np.asarray(index, np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.reader.sample_shape)

    @property
    def nbytes(self) -> int:
        """Bytes the samples would take in memory."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.reader(self.index[[int(key)]])[0]
        return self.reader(self.index[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every sample read into one array (what ``numpy.asarray(x)`` gives)."""
        x = self[:]
        return x if dtype is None else x.astype(dtype, copy=False)

    def subset(self, index) -> "LazyArray":
        """A view of samples ``index`` of this array (nothing is read)."""
        return LazyArray(self.reader, self.index[index])

    def __repr__(self) -> str:
        return f"LazyArray({type(self.reader).__name__}, shape={self.shape})"


Inputs = Union[np.ndarray, LazyArray]


def is_lazy(x: object) -> bool:
    return isinstance(x, LazyArray)


def take(x: Inputs, index) -> Inputs:
    """``x[index]``: a copy of a numpy array, a view of a lazy one."""
    return x.subset(index) if isinstance(x, LazyArray) else x[index]


def concatenate(parts: Sequence[Inputs]) -> Inputs:
    """The parts one after another: a numpy array when all are, else a lazy array over all of them."""
    if not any(isinstance(p, LazyArray) for p in parts):
        return np.concatenate(list(parts))
    lazy = [p if isinstance(p, LazyArray) else LazyArray(_InMemory(p)) for p in parts]
    if all(p.reader is lazy[0].reader for p in lazy):
        return LazyArray(lazy[0].reader, np.concatenate([p.index for p in lazy]))
    return LazyArray(_Stacked(lazy))


def materialize(x: Inputs) -> np.ndarray:
    """``x`` as one numpy array (reads every sample of a lazy array)."""
    return x[:] if isinstance(x, LazyArray) else x


class _InMemory:
    """A numpy array as a reader (a part of :func:`concatenate` that is in memory)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.sample_shape = tuple(x.shape[1:])
        self.size = len(x)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.x[indices], dtype=np.float32)


class _Stacked:
    """Several lazy arrays one after another, as one reader."""

    def __init__(self, parts: Sequence[LazyArray]) -> None:
        self.parts = list(parts)
        self.sample_shape = tuple(parts[0].shape[1:])
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.size = int(self.offsets[-1])

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), *self.sample_shape), dtype=np.float32)
        part = np.searchsorted(self.offsets, indices, side="right") - 1
        for p in np.unique(part):
            where = np.flatnonzero(part == p)
            out[where] = self.parts[p][indices[where] - self.offsets[p]]
        return out

