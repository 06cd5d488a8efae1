"""Batches of one split on the training device, from memory or streamed from disk.

:class:`BatchSource` is the trainer's one way to its data. Given the batches of an epoch as index tensors
(drawn by the trainer from its seeded generator), it yields ``(inputs, labels)`` on the device:

- *in memory* (numpy inputs, e.g. the embedded data sets): the split is moved to the device once and each
  batch is an index into it -- no worker processes, no copies per step;
- *streamed* (:class:`~hwnas.data.lazy.LazyArray` inputs: image folders, memory-mapped arrays, CIFAR's binary
  files): a :class:`torch.utils.data.DataLoader` whose worker processes read (decode) whole batches, with
  pinned memory and non-blocking copies on a GPU. Only the batches in flight are in memory.

Both paths give the same batches for the same index tensors (the tests check it), so the same seed trains the
same weights either way. Workers draw no random numbers: augmentation happens on the device afterwards
(:mod:`hwnas.training.augment`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from hwnas.data.lazy import Inputs, LazyArray, is_lazy
from hwnas.errors import HwnasError

#: Data-loader worker processes of a streamed split unless told otherwise (at most the available cores).
DEFAULT_WORKERS = 4
#: Batches each worker reads ahead.
PREFETCH = 2


def default_workers() -> int:
    from hwnas.training.device import available_cores

    return min(DEFAULT_WORKERS, available_cores())


class _Samples(torch.utils.data.Dataset):
    """A lazy split as a map-style data set that reads a whole batch at once (``__getitems__``)."""

    def __init__(self, x: LazyArray, y: np.ndarray) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]):
        index = np.asarray(indices, dtype=np.int64)
        try:
            return torch.from_numpy(self.x[index]), torch.from_numpy(self.y[index])
        except HwnasError as exc:  # e.g. an unreadable image: handed back, raised as itself by the reader
            return _Failure(type(exc), str(exc))


class _Failure:
    """An error a worker met reading a batch; :meth:`BatchSource.batches` raises it in the training's process
    (a worker's own exception would come back wrapped in its traceback, not as one line)."""

    def __init__(self, kind: type, message: str) -> None:
        self.kind = kind
        self.message = message


def _as_is(batch):
    """The batch ``__getitems__`` already made (the DataLoader's collate step)."""
    return batch


class _Batches(torch.utils.data.Sampler):
    """The batches of the current epoch, set by :meth:`BatchSource.batches` before each pass."""

    def __init__(self) -> None:
        self.current: list[list[int]] = []

    def __iter__(self):
        return iter(self.current)

    def __len__(self) -> int:
        return len(self.current)


class BatchSource:
    """One split's inputs and labels, batch by batch, on ``device`` (see the module docstring).

    Args:
        x: Inputs: a numpy array (kept in memory, on the device) or a lazy array (streamed).
        y: Integer labels.
        device: The training device.
        workers: DataLoader worker processes of a streamed split (0: read in this process; None:
            :func:`default_workers`).
    """

    def __init__(self, x: Inputs, y: np.ndarray, *, device: torch.device | str = "cpu",
                 workers: int | None = None) -> None:
        self.device = torch.device(device)
        self.streamed = is_lazy(x)
        self.size = len(y)
        if not self.streamed:
            self._x = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            self._y = torch.from_numpy(np.ascontiguousarray(y)).to(self.device)
            self._loader = None
            return
        self.workers = default_workers() if workers is None else int(workers)
        self._sampler = _Batches()
        self._loader = torch.utils.data.DataLoader(
            _Samples(x, np.ascontiguousarray(y)), batch_sampler=self._sampler, collate_fn=_as_is,
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=self.workers > 0, prefetch_factor=PREFETCH if self.workers > 0 else None)

    def __len__(self) -> int:
        return self.size

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, labels)`` on the device for each index tensor, in order."""
        if not self.streamed:
            for index in index_batches:
                index = index.to(self.device)
                yield self._x[index], self._y[index]
            return
        if self._loader is None:
            raise RuntimeError("this BatchSource is closed")
        self._sampler.current = [index.tolist() for index in index_batches]
        blocking = self.device.type != "cuda"
        for batch in self._loader:
            if isinstance(batch, _Failure):
                raise batch.kind(batch.message)
            x, y = batch
            yield x.to(self.device, non_blocking=not blocking), y.to(self.device, non_blocking=not blocking)

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every sample once, in order, ``batch_size`` at a time (evaluation)."""
        return self.batches(list(torch.arange(self.size).split(batch_size)))

    def close(self) -> None:
        """Stops the worker processes (if any; they end with the loader's last reference)."""
        self._loader = None

    def __enter__(self) -> "BatchSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
