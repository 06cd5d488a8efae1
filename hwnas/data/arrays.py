"""A folder of ``.npy`` arrays, memory-mapped: ``x_train.npy, y_train.npy`` [, ``x_val.npy, y_val.npy``,
``x_test.npy, y_test.npy``, ``class_names.npy``] -- the ``.npz`` layout (:mod:`hwnas.data.npz`), one file an
array, for pre-decoded sets larger than memory.

The arrays follow the ``.npz`` rules (shapes, ``uint8`` pixels scaled to [-1, 1] or floats used as given, integer
labels, missing splits cut from the training arrays). Inputs are opened with ``numpy.load(mmap_mode="r")``:
a large set (decoded above :data:`~hwnas.data.base.STREAM_BYTES`, or ``-D stream=true``) is streamed -- each
batch reads only its own samples from the file (a float file's NaN is reported when its batch is read) -- and a
small one is read into memory. Labels are always read whole. Pickled (object) arrays are refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.data.base import DataError, stream_choice, to_unit_range
from hwnas.data.lazy import LazyArray
from hwnas.data.npz import NpzDataset

ARRAY_NAMES = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "class_names")
_CHUNK = 1 << 22


def is_array_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of ``.npy`` arrays (it holds ``x_train.npy``)."""
    return path.is_dir() and (path / "x_train.npy").is_file()


class MemmapInputs:
    """The picklable reader of one memory-mapped input array: ``(N, C, H, W)`` (a view of the file's layout),
    scaled from ``uint8`` pixels or taken as float, opened again in each process that reads."""

    def __init__(self, path: Path, *, nchw: tuple[int, int, int, int]) -> None:
        self.path = str(path)
        self.axes = nchw  # how the file's axes map to (N, C, H, W); see _view
        array = self._view()
        self.sample_shape = tuple(int(d) for d in array.shape[1:])
        self.size = int(array.shape[0])
        self.pixels = array.dtype == np.uint8

    def _view(self) -> np.ndarray:
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if array.ndim == 3:
            return array[:, None, :, :]
        return array.transpose(self.axes)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_array"}

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        if getattr(self, "_array", None) is None:
            self._array = self._view()
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")  # read the file front to back
        batch = np.empty((len(indices), *self.sample_shape), dtype=np.float32)
        raw = self._array[indices[order]]
        batch[order] = to_unit_range(raw, max_value=255.0) if self.pixels else raw
        if not self.pixels and not np.isfinite(batch).all():
            raise DataError(f"{self.path}: holds NaN or infinite values")
        return batch


class NpyFolderDataset(NpzDataset):
    """The user's arrays as ``.npy`` files in a folder, memory-mapped (streamed when large).

    Args:
        path: The folder.
        val_fraction: Share of the training arrays cut off for validation when there is no ``x_val.npy``.
        test_fraction: Share of the training arrays cut off for testing when there is no ``x_test.npy``.
        stream: ``"auto"`` (stream above :data:`~hwnas.data.base.STREAM_BYTES` decoded), or true/false.

    Raises:
        DataError: (naming the file) as for a ``.npz`` file, or a file is not a readable ``.npy`` array.
    """

    name = "npy"
    kind = "npy"

    def __init__(self, path: str | Path, *, val_fraction: float = 0.2, test_fraction: float = 0.2,
                 stream: object = "auto") -> None:
        self._stream_option = stream
        self.stream = False
        super().__init__(path, val_fraction=val_fraction, test_fraction=test_fraction)
        self.name = self.path.name

    def _raw(self) -> tuple[dict[str, np.ndarray], str]:
        if not self.path.exists():
            raise self._fail("no such folder")
        if not is_array_folder(self.path):
            raise self._fail("not a folder of .npy arrays (it needs x_train.npy and y_train.npy)")
        data: dict[str, np.ndarray] = {}
        sha = hashlib.sha1()
        for name in ARRAY_NAMES:
            file = self.path / f"{name}.npy"
            if not file.is_file():
                continue
            try:
                mapped = name.startswith("x_")
                data[name] = np.load(file, mmap_mode="r" if mapped else None, allow_pickle=False)
                with open(file, "rb") as handle:
                    sha.update(f"{name}\0".encode())
                    for chunk in iter(lambda: handle.read(_CHUNK), b""):
                        sha.update(chunk)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(f"{file}: not a readable .npy array ({exc})") from None
        decoded = sum(int(np.prod(a.shape)) * 4 for k, a in data.items() if k.startswith("x_"))
        self.stream = stream_choice(self._stream_option, decoded_bytes=decoded, what=str(self.path))
        return data, sha.hexdigest()[:12]

    def _inputs(self, key: str, x: np.ndarray):
        if not self.stream:  # read into memory: a copy, not a read-only view of the file
            return super()._inputs(key, np.array(x))
        view = self._as_nchw(key, x)  # checks the shape
        if not (view.dtype == np.uint8 or np.issubdtype(view.dtype, np.floating)):
            raise self._fail(f"{key} has dtype {view.dtype}; expected uint8 (0..255) or float")
        axes = (0, 3, 1, 2) if x.ndim == 4 and view.shape[1:] != x.shape[1:] else (0, 1, 2, 3)
        return LazyArray(MemmapInputs(self.path / f"{key}.npy", nchw=axes))  # type: ignore[arg-type]

    def describe(self) -> str:
        return super().describe().replace("arrays from", ".npy arrays from") + (" (streamed)" if self.stream else "")
