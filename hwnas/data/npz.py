"""A ``.npz`` file of arrays: ``x_train, y_train`` and optionally ``x_val, y_val`` and ``x_test, y_test``.

Inputs are ``(N, H, W)`` (one channel), ``(N, C, H, W)`` or ``(N, H, W, C)``; a 4-D array is read as
channels-last only when its last axis has 1, 3 or 4 entries and its second axis does not. ``uint8`` inputs
are scaled from 0..255 to [-1, 1]; float inputs are used as they are (and must be finite). Labels are
integers; the classes are the distinct labels of ``y_train`` in sorted order, named by an optional
``class_names`` array (one name per label ``0..K-1``) or by the label values. A split the file lacks is cut
from the training arrays (stratified, fixed for a seed). The store key carries a hash of the file's bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.data.base import Dataset, DataError, Splits, check_fractions, stratified_split, to_unit_range
from hwnas.data.lazy import Inputs, take


class NpzDataset(Dataset):
    """The user's arrays in a ``.npz`` file (``x_train, y_train`` [, ``x_val, y_val``, ``x_test, y_test``]).

    Args:
        path: The ``.npz`` file.
        val_fraction: Share of the training arrays cut off for validation when the file has no ``x_val``.
        test_fraction: Share of the training arrays cut off for testing when the file has no ``x_test``.

    Raises:
        DataError: (naming the file) it is missing or unreadable, lacks ``x_train``/``y_train``, has only one
            of a pair, arrays of mismatched lengths or sample shapes, non-integer or unknown labels,
            non-finite values, an empty training split or a single class.
    """

    name = "npz"
    kind = "npz"  # the store key's prefix

    def __init__(self, path: str | Path, *, val_fraction: float = 0.2, test_fraction: float = 0.2) -> None:
        self.path = Path(path)
        check_fractions(float(val_fraction), float(test_fraction))
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.name = self.path.stem
        self._arrays, self._class_names, self._digest = self._read()
        self._cache: dict[int, Splits] = {}

    def _fail(self, message: str) -> DataError:
        return DataError(f"{self.path}: {message}")

    def _raw(self) -> tuple[dict[str, np.ndarray], str]:
        """The file's arrays by name, and the 12-hex-digit digest of its bytes."""
        if not self.path.exists():
            raise self._fail("no such file")
        if not self.path.is_file():
            raise self._fail("not a file")
        try:
            raw = self.path.read_bytes()
            with np.load(self.path, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise self._fail(f"not a readable .npz file ({exc})") from None
        return data, hashlib.sha1(raw).hexdigest()[:12]

    def _read(self) -> tuple[dict[str, Any], list[str], str]:
        data, digest = self._raw()
        self._pixels = "x_train" in data and data["x_train"].dtype == np.uint8
        for key in ("x_train", "y_train"):
            if key not in data:
                raise self._fail(f"missing array {key!r} (found: {', '.join(sorted(data)) or 'none'})")
        arrays: dict[str, np.ndarray] = {}
        for split in ("train", "val", "test"):
            xk, yk = f"x_{split}", f"y_{split}"
            if (xk in data) != (yk in data):
                have, lack = (xk, yk) if xk in data else (yk, xk)
                raise self._fail(f"has {have!r} but not {lack!r}")
            if xk in data:
                arrays[xk] = self._inputs(xk, data[xk])
                arrays[yk] = self._labels(yk, data[yk])
                if len(arrays[xk]) != len(arrays[yk]):
                    raise self._fail(f"{xk} has {len(arrays[xk])} samples but {yk} has {len(arrays[yk])}")
                if arrays[xk].shape[1:] != arrays["x_train"].shape[1:]:
                    raise self._fail(f"{xk} samples have shape {arrays[xk].shape[1:]} but x_train's have "
                                     f"{arrays['x_train'].shape[1:]}")
        if len(arrays["y_train"]) == 0:
            raise self._fail("x_train is empty")
        labels = np.unique(arrays["y_train"])
        if len(labels) < 2:
            raise self._fail(f"y_train holds only one class ({labels[0]}); at least two are needed")
        for yk in ("y_val", "y_test"):
            if yk in arrays:
                unknown = np.setdiff1d(arrays[yk], labels)
                if len(unknown):
                    raise self._fail(f"{yk} holds label {unknown[0]} that y_train lacks")
                arrays[yk] = np.searchsorted(labels, arrays[yk]).astype(np.int64)
        names = [str(v) for v in labels]
        if "class_names" in data:
            given = data["class_names"]
            if given.ndim != 1 or len(given) != len(labels) \
                    or not np.array_equal(labels, np.arange(len(labels))):
                raise self._fail(f"class_names has {given.size} entries for labels {labels.tolist()[:10]}; "
                                 f"it needs one name per label 0..K-1")
            names = [str(v) for v in given.tolist()]
        arrays["y_train"] = np.searchsorted(labels, arrays["y_train"]).astype(np.int64)
        return arrays, names, digest

    def _inputs(self, key: str, x: np.ndarray) -> Inputs:
        x = self._as_nchw(key, x)
        if x.dtype == np.uint8:
            return np.ascontiguousarray(to_unit_range(x, max_value=255.0))
        if not np.issubdtype(x.dtype, np.floating):
            raise self._fail(f"{key} has dtype {x.dtype}; expected uint8 (0..255) or float")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise self._fail(f"{key} holds NaN or infinite values")
        return x

    def _as_nchw(self, key: str, x: np.ndarray) -> np.ndarray:
        """``x`` viewed as ``(N, C, H, W)`` (a view: nothing is copied or read)."""
        if x.ndim == 3:
            return x[:, None, :, :]
        if x.ndim == 4:
            if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
                return x.transpose(0, 3, 1, 2)
            return x
        raise self._fail(f"{key} has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C)")

    def _labels(self, key: str, y: np.ndarray) -> np.ndarray:
        if y.ndim != 1:
            raise self._fail(f"{key} has shape {y.shape}; expected one integer label per sample")
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
            if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                return y.astype(np.int64)
            raise self._fail(f"{key} has dtype {y.dtype}; expected integer labels")
        return y.astype(np.int64)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self._arrays["x_train"].shape[1:])  # type: ignore[return-value]

    def preprocess(self):
        from hwnas.data.preprocess import Preprocess

        c, h, w = self.input_shape
        if self._pixels:
            return Preprocess(c, h, w, pixel_max=255.0, source=f"uint8 arrays of {self.path.name}")
        return Preprocess(c, h, w, pixel_max=None, source=f"float arrays of {self.path.name}, used as given")

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def key(self) -> str:
        suffix = ""
        if (self.val_fraction, self.test_fraction) != (0.2, 0.2):
            suffix = f"[val={self.val_fraction:g},test={self.test_fraction:g}]"
        return f"{self.kind}:{self.name}@{self._digest}{suffix}"

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            a = self._arrays
            x, y = a["x_train"], a["y_train"]
            has_val, has_test = "x_val" in a, "x_test" in a
            train, val, test = stratified_split(
                y, val_fraction=0.0 if has_val else self.val_fraction,
                test_fraction=0.0 if has_test else self.test_fraction, seed=seed)
            x_val, y_val = (a["x_val"], a["y_val"]) if has_val else (take(x, val), y[val])
            x_test, y_test = (a["x_test"], a["y_test"]) if has_test else (take(x, test), y[test])
            if len(y_val) == 0:
                raise self._fail(f"the validation split is empty ({len(y)} training samples); add "
                                 f"x_val/y_val or more samples")
            self._cache[seed] = Splits(take(x, train), y[train], x_val, y_val, x_test, y_test)
        return self._cache[seed]

    def describe(self) -> str:
        given = [s for s in ("val", "test") if f"x_{s}" in self._arrays]
        return f"arrays from {self.path}" + (f" (with {' and '.join(given)} splits)" if given else "")
