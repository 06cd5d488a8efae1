"""Data sets, in a registry: ``create_dataset("digits")``. Each gives fixed train/val/test splits for a seed."""

from __future__ import annotations

from hwnas.data.base import Dataset, Splits
from hwnas.registry import Registry

DATASETS: Registry[Dataset] = Registry("data set")
register_dataset = DATASETS.register


def create_dataset(name: str, **kwargs) -> Dataset:
    """The registered data set ``name`` built with keyword arguments."""
    return DATASETS.create(name, **kwargs)


# Import every data-set module so that each registers itself.
from hwnas.data import digits  # noqa: E402,F401

__all__ = ["DATASETS", "Dataset", "Splits", "create_dataset", "register_dataset"]
