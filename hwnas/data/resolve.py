"""One door to every data set: a registered name (``digits``), an image folder, or a ``.npz`` file.

``--dataset SPEC`` on the command line goes through :func:`resolve_dataset`:

- a registered name (see ``hwnas datasets``) wins; write ``./digits`` for a folder of that name;
- ``cifar10:PATH`` / ``cifar100:PATH`` is CIFAR's official binary release in ``PATH`` (:mod:`hwnas.data.cifar`);
- an existing folder holding ``x_train.npy`` is a folder of memory-mapped arrays (:mod:`hwnas.data.arrays`);
- another existing folder is an image folder (one sub-folder per class, or ``train/``/``val/`` trees);
- a path ending in ``.npz`` is an array file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

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
    from hwnas.data.arrays import NpyFolderDataset, is_array_folder
    from hwnas.data.folder import ImageFolderDataset
    from hwnas.data.npz import NpzDataset

    spec = str(spec)
    release, path_text = path_dataset(spec)
    if release is not None:
        from hwnas.data.cifar import CifarDataset

        if input_shape is not None:
            raise DataError(f"{spec}: an input shape applies only to image folders ({release} is 3x32x32)")
        if not path_text:
            raise DataError(f"{spec}: give the folder of the binary files, e.g. {release}:data/{release}")
        return _construct(CifarDataset, Path(path_text).expanduser(), {**options, "release": release})
    if spec in DATASETS:
        if input_shape is not None:
            raise DataError(f"{spec}: an input shape applies only to image folders (this data set is "
                            f"{'x'.join(map(str, create_dataset(spec).input_shape))})")
        try:
            return create_dataset(spec, **options)
        except DataError:
            raise
        except (TypeError, ValueError) as exc:
            raise DataError(f"data set {spec!r} does not take these options: {exc}") from None
    path = Path(spec)
    if is_array_folder(path):
        if input_shape is not None:
            raise DataError(f"{spec}: an input shape applies only to image folders (.npy arrays keep theirs)")
        return _construct(NpyFolderDataset, path, options)
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
    raise DataError(f"unknown data set {spec!r}: not a registered name ({known}), cifar10:PATH, cifar100:PATH, "
                    f"an existing folder, or a .npz file")


#: Data sets named ``RELEASE:PATH`` (the files are the user's; nothing is downloaded).
PATH_DATASETS = ("cifar10", "cifar100")


def path_dataset(spec: str) -> tuple[str | None, str]:
    """``("cifar10", "PATH")`` for ``cifar10:PATH`` (any of :data:`PATH_DATASETS`), else ``(None, spec)``."""
    name, sep, rest = str(spec).partition(":")
    if sep and name.lower() in PATH_DATASETS:
        return name.lower(), rest
    return None, str(spec)


def _construct(cls, path: Path, options: dict[str, Any]) -> Dataset:
    try:
        return cls(path, **options)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:  # an unknown option, or a value of the wrong kind (val_fraction=abc)
        raise DataError(f"{path}: option not understood: {exc}") from None


@dataclass(frozen=True)
class DatasetSpec:
    """A data set as a run names it: the spec (name, folder or ``.npz``), its options and, for an image
    folder, the input shape its images are converted to. Stored in a run's ``config.json`` (keys ``dataset``,
    ``dataset_options``, ``dataset_input_shape``) so that resume, export and benchmarks rebuild the same data.

    A folder or file spec is made absolute (:meth:`absolute`) before it is stored, so a run can be resumed
    from another working directory.
    """

    spec: str
    options: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None

    def resolve(self) -> Dataset:
        """The :class:`Dataset` (see :func:`resolve_dataset`)."""
        return resolve_dataset(self.spec, input_shape=self.input_shape, **dict(self.options))

    def absolute(self) -> "DatasetSpec":
        """The same spec with an existing folder or file made absolute (a registered name is kept)."""
        from hwnas.data import DATASETS

        release, text = path_dataset(self.spec)
        path = Path(text).expanduser()
        if self.spec in DATASETS or not text or not path.exists():  # a name, or nothing: errors name what was typed
            return self
        return replace(self, spec=f"{release}:{path.resolve()}" if release else str(path.resolve()))

    def to_config(self) -> dict[str, Any]:
        return {"dataset": self.spec, "dataset_options": dict(self.options),
                "dataset_input_shape": list(self.input_shape) if self.input_shape else None}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DatasetSpec":
        """The spec of a run's configuration (runs made before these keys existed read as plain names)."""
        shape = config.get("dataset_input_shape")
        return cls(spec=str(config["dataset"]), options=dict(config.get("dataset_options") or {}),
                   input_shape=tuple(int(d) for d in shape) if shape else None)


def safe_name(text: str, *, limit: int = 40) -> str:
    """``text`` as one file or folder name: anything but letters, digits, ``.``, ``_`` and ``-`` becomes
    ``_``, no leading dot, at most ``limit`` characters (never a path, never empty)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).lstrip(".")[:limit]
    return name if name.strip("._-") else "data"


def short_name(dataset: Dataset) -> str:
    """A data set's name for file and folder names (a folder's or file's own name, never its path)."""
    return safe_name(dataset.name)
