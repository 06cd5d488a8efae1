"""One door to every data set: a registered name (``digits``), an image folder, or a ``.npz`` file.

``--dataset SPEC`` on the command line goes through :func:`resolve_dataset`:

- a registered name (see ``hwnas datasets``) wins; write ``./digits`` for a folder of that name;
- an existing folder is an image folder (one sub-folder per class);
- a path ending in ``.npz`` is an array file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hwnas.data.base import Dataset, DataError


def resolve_dataset(spec: str, *, input_shape: Sequence[int] | None = None, **options: Any) -> Dataset:
    """The data set that ``spec`` names.

    Args:
        spec: A registered name, a folder of class sub-folders, or a ``.npz`` file.
        input_shape: ``(C, H, W)`` images are resized to; only for image folders (default 3x32x32).
        **options: Keyword arguments of the data set (e.g. ``val_fraction``, ``test_fraction``).

    Raises:
        DataError: ``spec`` names nothing usable, or an option does not apply to that data set.
    """
    from hwnas.data import DATASETS, create_dataset
    from hwnas.data.folder import ImageFolderDataset
    from hwnas.data.npz import NpzDataset

    spec = str(spec)
    if spec in DATASETS:
        if input_shape is not None:
            raise DataError(f"{spec}: an input shape applies only to image folders (this data set is "
                            f"{'x'.join(map(str, create_dataset(spec).input_shape))})")
        try:
            return create_dataset(spec, **options)
        except TypeError as exc:
            raise DataError(f"data set {spec!r} does not take these options: {exc}") from None
    path = Path(spec)
    if path.is_dir():
        kwargs = dict(options)
        if input_shape is not None:
            kwargs["input_shape"] = tuple(input_shape)
        return _construct(ImageFolderDataset, path, kwargs)
    if path.suffix.lower() == ".npz":
        if input_shape is not None:
            raise DataError(f"{spec}: an input shape applies only to image folders (.npz arrays keep theirs)")
        return _construct(NpzDataset, path, options)
    if path.exists():
        raise DataError(f"{spec}: not a data set: expected a folder with one sub-folder per class, or a "
                        f".npz file")
    known = ", ".join(DATASETS.names())
    raise DataError(f"unknown data set {spec!r}: not a registered name ({known}), an existing folder, "
                    f"or a .npz file")


def _construct(cls, path: Path, options: dict[str, Any]) -> Dataset:
    try:
        return cls(path, **options)
    except TypeError as exc:
        raise DataError(f"{path}: option not understood: {exc}") from None
