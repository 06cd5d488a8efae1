"""Data sets: a registry of named ones (``create_dataset("digits")``) plus the user's own image folders (flat or
``train/``/``val/`` trees), ``.npz`` files, folders of ``.npy`` arrays and CIFAR's binary files, all reached through
:func:`resolve_dataset`; a large one is streamed (:mod:`hwnas.data.lazy`). Each gives fixed train/val/test splits for
a seed."""

from __future__ import annotations

from hwnas.data.base import Dataset, DataError, Splits
from hwnas.registry import Registry

DATASETS: Registry[Dataset] = Registry("data set")
register_dataset = DATASETS.register


def create_dataset(name: str, **kwargs) -> Dataset:
    """The registered data set ``name`` built with keyword arguments."""
    return DATASETS.create(name, **kwargs)


# Import every data-set module so that each registers itself.
from hwnas.data import cluttered, digits  # noqa: E402,F401
from hwnas.data.arrays import NpyFolderDataset  # noqa: E402
from hwnas.data.cifar import CifarDataset  # noqa: E402
from hwnas.data.folder import ImageFolderDataset  # noqa: E402
from hwnas.data.lazy import LazyArray  # noqa: E402
from hwnas.data.npz import NpzDataset  # noqa: E402
from hwnas.data.resolve import DatasetSpec, resolve_dataset, short_name  # noqa: E402

__all__ = ["DATASETS", "CifarDataset", "DataError", "Dataset", "DatasetSpec", "ImageFolderDataset", "LazyArray",
           "NpyFolderDataset", "NpzDataset", "Splits",
           "create_dataset", "register_dataset", "resolve_dataset", "short_name"]
