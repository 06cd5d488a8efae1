"""A folder of images, one sub-folder per class: ``root/<class>/<image>.png|.jpg|.jpeg``, or an ImageNet-style
tree that brings its own split: ``root/train/<class>/...``, ``root/val/<class>/...`` [, ``root/test/<class>/...``].

Images are converted to grayscale (``C = 1``) or RGB (``C = 3``), resized to ``H x W`` (bilinear) and scaled
to [-1, 1]. Class names are the sub-folder names (of ``train/`` in a tree) in sorted order; hidden entries
(``.name``) and files of other types are ignored. A flat folder's splits are stratified per class and fixed for
a seed; a tree's validation (and test) images are its folders', and without ``test/`` a stratified
``test_fraction`` of ``train/`` is held out for testing. The data set's store key carries a hash of every image
file's bytes, so edited data never reuses an old evaluation.

A small folder is decoded once into memory. A large one (decoded size above :data:`~hwnas.data.base.STREAM_BYTES`, or
``-D stream=true``) is *streamed*: its splits are :class:`~hwnas.data.lazy.LazyArray` s whose images are decoded
when a batch needs them (by the trainer's DataLoader workers), so the data set need not fit in memory.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.data.base import (Dataset, DataError, Splits, check_fractions, stratified_split, stream_choice,
                             to_unit_range)
from hwnas.data.lazy import Inputs, LazyArray, take
from hwnas.shapes import format_input_shape

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_IMAGE_SHAPE = (3, 32, 32)
#: The sub-folders of a tree that brings its own split.
SPLIT_FOLDERS = ("train", "val", "test")
#: Share of ``train/`` held out for testing when a tree has no ``test/``.
TREE_TEST_FRACTION = 0.1


def decode_image(file: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """One image file as ``float32`` ``(C, H, W)`` in [-1, 1] (converted, resized bilinearly).

    Raises:
        DataError: the file is not a readable image (naming it).
    """
    from PIL import Image

    channels, height, width = shape
    try:
        with Image.open(file) as img:
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for bad files (OSError, ValueError, ...)
        raise DataError(f"{file}: cannot read image: {exc}") from None
    return to_unit_range(pixels.reshape(height, width, channels).transpose(2, 0, 1), max_value=255.0)


class ImageFiles:
    """Image files decoded on demand: the picklable reader of a streamed folder's
    :class:`~hwnas.data.lazy.LazyArray` (a DataLoader worker decodes its batches itself)."""

    def __init__(self, files: Sequence[Path], shape: tuple[int, int, int]) -> None:
        self.files = [str(f) for f in files]
        self.sample_shape = tuple(shape)
        self.size = len(self.files)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.sample_shape), dtype=np.float32)
        for i, index in enumerate(np.asarray(indices, dtype=np.int64)):
            out[i] = decode_image(self.files[index], self.sample_shape)  # type: ignore[arg-type]
        return out


class ImageFolderDataset(Dataset):
    """The user's images, one sub-folder per class (PNG/JPEG), or a ``train/``/``val/`` [``test/``] tree of such
    folders, resized to a chosen shape.

    Args:
        path: The root folder.
        input_shape: ``(C, H, W)`` the images are converted to; ``C`` is 1 (grayscale) or 3 (RGB).
        val_fraction: Share of each class held out for validation (a flat folder; 0.2 by default).
        test_fraction: Share of each class held out for testing (a flat folder: 0.2 by default; a tree without
            ``test/``: of ``train/``, 0.1 by default).
        stream: ``"auto"`` (stream when the decoded images exceed :data:`~hwnas.data.base.STREAM_BYTES`), or true/false.

    Raises:
        DataError: the folder is missing or empty, holds fewer than two classes, a class has no images, a
            tree's ``val/`` holds a class ``train/`` lacks, an option does not apply, or the shape is unusable.
            An unreadable image is reported (by file) when it is first decoded.
    """

    name = "folder"

    def __init__(self, path: str | Path, *, input_shape: Sequence[int] = DEFAULT_IMAGE_SHAPE,
                 val_fraction: float | None = None, test_fraction: float | None = None,
                 stream: object = "auto") -> None:
        self.path = Path(path)
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
            raise DataError(f"{self.path}: image input shape must be 1xHxW (grayscale) or 3xHxW (RGB), "
                            f"got {format_input_shape(shape) if len(shape) == 3 else shape}")
        self._shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.name = self.path.name or str(self.path)
        self.tree = _is_tree(self.path)
        if self.tree:
            if val_fraction is not None:
                raise DataError(f"{self.path}: val_fraction does not apply: the validation images are those of "
                                f"{self.path / 'val'}")
            if test_fraction is not None and (self.path / "test").is_dir():
                raise DataError(f"{self.path}: test_fraction does not apply: the test images are those of "
                                f"{self.path / 'test'}")
        self.val_fraction = 0.0 if self.tree else float(0.2 if val_fraction is None else val_fraction)
        self.test_fraction = float((TREE_TEST_FRACTION if self.tree else 0.2) if test_fraction is None
                                   else test_fraction)
        check_fractions(self.val_fraction, self.test_fraction)
        self._classes, self._files, self._split_of = self._scan_tree() if self.tree else self._scan()
        self.stream = stream_choice(stream, decoded_bytes=len(self._files) * int(np.prod(shape)) * 4,
                                    what=str(self.path))
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._digest: str | None = None
        self._cache: dict[int, Splits] = {}

    def _scan(self) -> tuple[list[str], list[tuple[Path, int]], np.ndarray]:
        classes = _class_folders(self.path)
        files = _class_files(self.path, classes)
        return classes, files, np.zeros(len(files), dtype=np.int8)

    def _scan_tree(self) -> tuple[list[str], list[tuple[Path, int]], np.ndarray]:
        classes = _class_folders(self.path / "train")
        files = _class_files(self.path / "train", classes)
        split_of = [0] * len(files)
        for split, folder in ((1, self.path / "val"), (2, self.path / "test")):
            if not folder.is_dir():
                continue
            present = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
            unknown = sorted(set(present) - set(classes))
            if unknown:
                raise DataError(f"{folder / unknown[0]}: class {unknown[0]!r} is not a class of "
                                f"{self.path / 'train'}")
            extra = _class_files(folder, classes, required=False)
            if not extra:
                raise DataError(f"{folder}: no PNG/JPEG images in its class sub-folders")
            files.extend(extra)
            split_of.extend([split] * len(extra))
        return classes, files, np.asarray(split_of, dtype=np.int8)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def class_names(self) -> list[str]:
        return list(self._classes)

    def preprocess(self):
        from hwnas.data.preprocess import Preprocess

        channels, height, width = self._shape
        return Preprocess(channels, height, width, pixel_max=255.0, resize="bilinear",
                          source="PNG/JPEG image files, 8 bits per channel")

    @property
    def files(self) -> list[tuple[Path, int]]:
        """``(image file, label)`` in the order of the arrays (index ``i`` of :meth:`splits`' inputs comes
        from ``files[i]``, before the split)."""
        return list(self._files)

    @property
    def num_images(self) -> int:
        return len(self._files)

    @property
    def key(self) -> str:
        options = [format_input_shape(self._shape)]
        default_test = TREE_TEST_FRACTION if self.tree else 0.2
        if (self.val_fraction, self.test_fraction) != (0.0 if self.tree else 0.2, default_test):
            options.append(f"val={self.val_fraction:g},test={self.test_fraction:g}")
        return f"{'tree' if self.tree else 'folder'}:{self.name}@{self.digest()}[{','.join(options)}]"

    def digest(self) -> str:
        """12-hex-digit SHA-1 over every image's split (of a tree), class, file name and bytes."""
        if self._digest is None:
            sha = hashlib.sha1()
            for (file, label), split in zip(self._files, self._split_of):
                where = f"{SPLIT_FOLDERS[split]}/" if self.tree else ""
                sha.update(f"{where}{self._classes[label]}/{file.name}\0".encode("utf-8"))
                try:
                    sha.update(file.read_bytes())
                except OSError as exc:
                    raise DataError(f"{file}: cannot read: {exc.strerror or exc}") from None
            self._digest = sha.hexdigest()[:12]
        return self._digest

    def _labels(self) -> np.ndarray:
        return np.asarray([label for _, label in self._files], dtype=np.int64)

    def _inputs(self) -> Inputs:
        """Every image: decoded into memory once, or a lazy array when streamed."""
        if self.stream:
            return LazyArray(ImageFiles([f for f, _ in self._files], self._shape))
        if self._arrays is None:
            x = np.empty((len(self._files), *self._shape), dtype=np.float32)
            for i, (file, _) in enumerate(self._files):
                x[i] = decode_image(file, self._shape)
            logger.info("loaded %d images of %d classes from %s", len(x), len(self._classes), self.path)
            self._arrays = (x, self._labels())
        return self._arrays[0]

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            x, y = self._inputs(), self._labels()
            if self.tree:
                train, val, test = self._tree_split(y, seed)
            else:
                train, val, test = stratified_split(y, val_fraction=self.val_fraction,
                                                    test_fraction=self.test_fraction, seed=seed)
            if self.val_fraction > 0 and len(val) == 0:
                raise DataError(f"{self.path}: too few images ({len(y)}) for a validation split; "
                                f"add images or raise val_fraction")
            self._cache[seed] = Splits(take(x, train), y[train], take(x, val), y[val], take(x, test), y[test])
        return self._cache[seed]

    def _tree_split(self, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The folders' split; without ``test/``, a stratified ``test_fraction`` of ``train/`` for testing."""
        train = np.flatnonzero(self._split_of == 0)
        val = np.flatnonzero(self._split_of == 1)
        test = np.flatnonzero(self._split_of == 2)
        if not (self.path / "test").is_dir() and self.test_fraction > 0:
            keep, _, held = stratified_split(y[train], val_fraction=0.0, test_fraction=self.test_fraction,
                                             seed=seed)
            train, test = train[keep], train[held]
        return train, val, test

    def describe(self) -> str:
        kind = "image tree (train/val" + ("/test" if (self.path / "test").is_dir() else "") + ")" if self.tree \
            else "image folder"
        return f"{kind} {self.path} ({self.num_images} images{', streamed' if self.stream else ''})"


def _is_tree(path: Path) -> bool:
    """Whether ``path`` holds a ``train/``/``val/`` tree (``train/`` of class sub-folders) rather than classes."""
    train = path / "train"
    if not (train.is_dir() and (path / "val").is_dir()):
        return False
    return any(p.is_dir() and not p.name.startswith(".") for p in train.iterdir())


def _class_folders(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{path}: empty: expected one sub-folder per class holding PNG/JPEG images")
    if len(classes) < 2:
        raise DataError(f"{path}: only one class ({classes[0]!r}); at least two sub-folders are needed")
    return classes


def _class_files(path: Path, classes: list[str], *, required: bool = True) -> list[tuple[Path, int]]:
    """``(image, label)`` of every class sub-folder of ``path``; an empty class is an error when ``required``."""
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        folder = path / cls
        if not folder.is_dir():
            if required:
                raise DataError(f"{folder}: no such class folder")
            continue
        images = sorted(p for p in folder.iterdir() if p.is_file()
                        and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images and required:
            raise DataError(f"{folder}: class {cls!r} has no PNG/JPEG images")
        files.extend((p, label) for p in images)
    return files

