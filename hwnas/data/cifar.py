"""CIFAR-10 and CIFAR-100 from the official *binary* distribution the user already has (never the pickled
Python version, never a download): ``--dataset cifar10:PATH`` / ``cifar100:PATH``.

- CIFAR-10 (``cifar-10-binary.tar.gz`` unpacked): ``PATH`` is ``cifar-10-batches-bin/`` (or the folder holding
  it) with ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin`` and ``batches.meta.txt``; each record
  is 1 label byte and 3,072 pixel bytes (the red, green and blue 32x32 planes, row by row).
- CIFAR-100 (``cifar-100-binary.tar.gz``): ``PATH`` is ``cifar-100-binary/`` (or its parent) with ``train.bin``,
  ``test.bin``, ``fine_label_names.txt`` and ``coarse_label_names.txt``; each record is a coarse and a fine
  label byte, then the pixels. The 100 fine classes by default, ``-D labels=coarse`` for the 20 superclasses.

The records are memory-mapped; the training files give the training split less a stratified ``val_fraction``
(0.1: the usual 45,000/5,000) for validation, the test file the test split. Pixels are scaled to [-1, 1]. CIFAR-10
(737 MB as float32) fits the in-memory path; ``-D stream=true`` streams it from the files instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.data.base import (Dataset, DataError, Splits, check_fractions, stratified_split, stream_choice,
                             to_unit_range)
from hwnas.data.lazy import LazyArray, materialize, take

PIXELS = 3 * 32 * 32
SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class Layout:
    """One CIFAR release's binary layout."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_bytes: int
    names_files: dict
    classes: dict


CIFAR10 = Layout("cifar10", "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                 "test_batch.bin", 1, {"fine": "batches.meta.txt"}, {"fine": 10})
CIFAR100 = Layout("cifar100", "cifar-100-binary", ("train.bin",), "test.bin", 2,
                  {"fine": "fine_label_names.txt", "coarse": "coarse_label_names.txt"}, {"fine": 100, "coarse": 20})
LAYOUTS = {layout.name: layout for layout in (CIFAR10, CIFAR100)}


class CifarRecords:
    """The picklable reader of CIFAR binary records: ``(indices) -> float32 (n, 3, 32, 32)``, memory-mapped and
    opened again in each process that reads."""

    def __init__(self, files: Sequence[Path], *, label_bytes: int) -> None:
        self.files = [str(f) for f in files]
        self.record = label_bytes + PIXELS
        self.label_bytes = label_bytes
        self.counts = [Path(f).stat().st_size // self.record for f in self.files]
        self.offsets = np.cumsum([0] + self.counts)
        self.sample_shape = SHAPE
        self.size = int(self.offsets[-1])

    def _maps(self) -> list[np.ndarray]:
        if getattr(self, "_mapped", None) is None:
            self._mapped = [np.memmap(f, dtype=np.uint8, mode="r", shape=(n, self.record))
                            for f, n in zip(self.files, self.counts)]
        return self._mapped

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_mapped"}

    def records(self, indices: np.ndarray) -> np.ndarray:
        """The raw records ``(n, record bytes)`` of ``indices``, in their order."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), self.record), dtype=np.uint8)
        part = np.searchsorted(self.offsets, indices, side="right") - 1
        maps = self._maps()
        for p in np.unique(part):
            where = np.flatnonzero(part == p)
            out[where] = maps[p][indices[where] - self.offsets[p]]
        return out

    def labels(self, which: int) -> np.ndarray:
        """Label byte ``which`` of every record."""
        return np.concatenate([np.asarray(m[:, which]) for m in self._maps()]).astype(np.int64)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        pixels = self.records(indices)[:, self.label_bytes:].reshape(-1, *SHAPE)
        return to_unit_range(pixels, max_value=255.0)


class CifarDataset(Dataset):
    """CIFAR-10/100 from the official binary files (``cifar10:PATH``, ``cifar100:PATH``).

    Args:
        path: The release's folder (``cifar-10-batches-bin``, ``cifar-100-binary``) or the folder holding it.
        release: ``cifar10`` or ``cifar100``.
        labels: CIFAR-100's ``fine`` (100 classes, default) or ``coarse`` (20) labels.
        val_fraction: Share of each class of the training files held out for validation.
        stream: ``"auto"``, or true/false (see :func:`hwnas.data.base.stream_choice`).

    Raises:
        DataError: (naming the file) a file is missing, its size is not a whole number of records, the class
            names do not match, or a label is out of range.
    """

    def __init__(self, path: str | Path, *, release: str = "cifar10", labels: str = "fine",
                 val_fraction: float = 0.1, stream: object = "auto") -> None:
        if release not in LAYOUTS:
            raise DataError(f"unknown CIFAR release {release!r} (known: {', '.join(LAYOUTS)})")
        self.layout = layout = LAYOUTS[release]
        if labels not in layout.names_files:
            raise DataError(f"{release}: labels={labels!r} is not one of {', '.join(layout.names_files)}")
        check_fractions(float(val_fraction), 0.0)
        if float(val_fraction) <= 0:
            raise DataError(f"{release}: val_fraction must be above 0 (the validation split ranks architectures)")
        self.name = release
        self.labels_kind = labels
        self.val_fraction = float(val_fraction)
        self.path = self._find(Path(path))
        self._classes = self._class_names()
        record = layout.label_bytes + PIXELS
        for file in (*layout.train_files, layout.test_file):
            size = (self.path / file).stat().st_size
            if size == 0 or size % record:
                raise DataError(f"{self.path / file}: {size} bytes is not a whole number of {record}-byte "
                                f"{release} records: not the binary version, or truncated")
        which = layout.label_bytes - 1 if labels == "fine" else 0
        self._train = CifarRecords([self.path / f for f in layout.train_files], label_bytes=layout.label_bytes)
        self._test = CifarRecords([self.path / layout.test_file], label_bytes=layout.label_bytes)
        self._y_train, self._y_test = self._train.labels(which), self._test.labels(which)
        for file, y in ((layout.train_files[0], self._y_train), (layout.test_file, self._y_test)):
            if y.size and y.max() >= len(self._classes):
                raise DataError(f"{self.path / file}: label {int(y.max())} but {len(self._classes)} classes: not "
                                f"{release} binary records")
        self.stream = stream_choice(stream, decoded_bytes=(self._train.size + self._test.size) * PIXELS * 4,
                                    what=str(self.path))
        self._digest: str | None = None
        self._cache: dict[int, Splits] = {}

    def _find(self, path: Path) -> Path:
        layout = self.layout
        for candidate in (path, path / layout.folder):
            if all((candidate / f).is_file() for f in (*layout.train_files, layout.test_file)):
                return candidate
        if not path.exists():
            raise DataError(f"{path}: no such folder ({layout.name} needs the unpacked binary version, "
                            f"{layout.folder}/)")
        missing = next(f for f in (*layout.train_files, layout.test_file) if not (path / f).is_file())
        raise DataError(f"{path}: no {missing}: expected the {layout.name} binary version ({layout.folder}/ with "
                        f"{', '.join(layout.train_files[:2])}{', ...' if len(layout.train_files) > 2 else ''} and "
                        f"{layout.test_file}; the Python/pickle version is not read)")

    def _class_names(self) -> list[str]:
        file = self.path / self.layout.names_files[self.labels_kind]
        expected = self.layout.classes[self.labels_kind]
        try:
            names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{file}: cannot read the class names: {exc}") from None
        if len(names) != expected:
            raise DataError(f"{file}: {len(names)} class names, {self.layout.name} has {expected}")
        return names

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return SHAPE

    @property
    def class_names(self) -> list[str]:
        return list(self._classes)

    @property
    def key(self) -> str:
        options = [] if self.labels_kind == "fine" or self.name == "cifar10" else ["labels=coarse"]
        if self.val_fraction != 0.1:
            options.append(f"val={self.val_fraction:g}")
        return f"{self.name}@{self.digest()}" + (f"[{','.join(options)}]" if options else "")

    def digest(self) -> str:
        """12-hex-digit SHA-1 of the record files' bytes."""
        if self._digest is None:
            sha = hashlib.sha1()
            for file in (*self.layout.train_files, self.layout.test_file):
                with open(self.path / file, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 22), b""):
                        sha.update(chunk)
            self._digest = sha.hexdigest()[:12]
        return self._digest

    def preprocess(self):
        from hwnas.data.preprocess import Preprocess

        return Preprocess(3, 32, 32, pixel_max=255.0, source=f"{self.name} binary records (8-bit RGB, 32x32)")

    def split_sizes(self, seed: int = 0) -> tuple[int, int, int]:
        """``(train, val, test)`` counts from the labels alone (nothing is read into memory)."""
        train, val, _ = stratified_split(self._y_train, val_fraction=self.val_fraction, test_fraction=0.0,
                                         seed=int(seed))
        return len(train), len(val), len(self._y_test)

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            x_train, x_test = LazyArray(self._train), LazyArray(self._test)
            if not self.stream:
                x_train, x_test = materialize(x_train), materialize(x_test)  # type: ignore[assignment]
            train, val, _ = stratified_split(self._y_train, val_fraction=self.val_fraction, test_fraction=0.0,
                                             seed=seed)
            self._cache[seed] = Splits(take(x_train, train), self._y_train[train], take(x_train, val),
                                       self._y_train[val], x_test, self._y_test)
        return self._cache[seed]

    def describe(self) -> str:
        return f"{self.name} binary files in {self.path}" + (" (streamed)" if self.stream else "")
