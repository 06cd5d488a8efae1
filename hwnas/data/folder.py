"""A folder of images, one sub-folder per class: ``root/<class>/<image>.png|.jpg|.jpeg``.

Images are converted to grayscale (``C = 1``) or RGB (``C = 3``), resized to ``H x W`` (bilinear) and scaled
to [-1, 1]. Class names are the sub-folder names in sorted order; hidden entries (``.name``) and files of
other types are ignored. Splits are stratified per class and fixed for a seed. The data set's store key
carries a hash of every image file's bytes, so edited data never reuses an old evaluation.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from hwnas.data.base import Dataset, DataError, Splits, check_fractions, stratified_split, to_unit_range
from hwnas.shapes import format_input_shape

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_IMAGE_SHAPE = (3, 32, 32)


class ImageFolderDataset(Dataset):
    """The user's images, one sub-folder per class (PNG/JPEG), resized to a chosen shape.

    Args:
        path: The root folder.
        input_shape: ``(C, H, W)`` the images are converted to; ``C`` is 1 (grayscale) or 3 (RGB).
        val_fraction: Share of each class held out for validation.
        test_fraction: Share of each class held out for testing.

    Raises:
        DataError: the folder is missing or empty, holds fewer than two classes, a class has no images, or
            the shape is unusable. An unreadable image is reported (by file) when the data is first loaded.
    """

    name = "folder"

    def __init__(self, path: str | Path, *, input_shape: Sequence[int] = DEFAULT_IMAGE_SHAPE,
                 val_fraction: float = 0.2, test_fraction: float = 0.2) -> None:
        self.path = Path(path)
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
            raise DataError(f"{self.path}: image input shape must be 1xHxW (grayscale) or 3xHxW (RGB), "
                            f"got {format_input_shape(shape) if len(shape) == 3 else shape}")
        check_fractions(float(val_fraction), float(test_fraction))
        self._shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.name = self.path.name or str(self.path)
        self._classes, self._files = self._scan()
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._digest: str | None = None
        self._cache: dict[int, Splits] = {}

    def _scan(self) -> tuple[list[str], list[tuple[Path, int]]]:
        if not self.path.exists():
            raise DataError(f"{self.path}: no such folder")
        if not self.path.is_dir():
            raise DataError(f"{self.path}: not a folder")
        classes = sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{self.path}: empty: expected one sub-folder per class holding PNG/JPEG images")
        if len(classes) < 2:
            raise DataError(f"{self.path}: only one class ({classes[0]!r}); at least two sub-folders are "
                            f"needed")
        files: list[tuple[Path, int]] = []
        for label, cls in enumerate(classes):
            images = sorted(p for p in (self.path / cls).iterdir() if p.is_file()
                            and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise DataError(f"{self.path / cls}: class {cls!r} has no PNG/JPEG images")
            files.extend((p, label) for p in images)
        return classes, files

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
        if (self.val_fraction, self.test_fraction) != (0.2, 0.2):
            options.append(f"val={self.val_fraction:g},test={self.test_fraction:g}")
        return f"folder:{self.name}@{self.digest()}[{','.join(options)}]"

    def digest(self) -> str:
        """12-hex-digit SHA-1 over every image's class, file name and bytes."""
        if self._digest is None:
            sha = hashlib.sha1()
            for file, label in self._files:
                sha.update(f"{self._classes[label]}/{file.name}\0".encode("utf-8"))
                try:
                    sha.update(file.read_bytes())
                except OSError as exc:
                    raise DataError(f"{file}: cannot read: {exc.strerror or exc}") from None
            self._digest = sha.hexdigest()[:12]
        return self._digest

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            from PIL import Image

            channels, height, width = self._shape
            mode = "L" if channels == 1 else "RGB"
            x = np.empty((len(self._files), channels, height, width), dtype=np.float32)
            y = np.empty(len(self._files), dtype=np.int64)
            for i, (file, label) in enumerate(self._files):
                try:
                    with Image.open(file) as img:
                        img = img.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                        pixels = np.asarray(img, dtype=np.uint8)
                except Exception as exc:  # PIL raises many types for bad files (OSError, ValueError, ...)
                    raise DataError(f"{file}: cannot read image: {exc}") from None
                chw = pixels.reshape(height, width, channels).transpose(2, 0, 1)
                x[i] = to_unit_range(chw, max_value=255.0)
                y[i] = label
            logger.info("loaded %d images of %d classes from %s", len(y), len(self._classes), self.path)
            self._arrays = (x, y)
        return self._arrays

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            x, y = self._load()
            train, val, test = stratified_split(y, val_fraction=self.val_fraction,
                                                test_fraction=self.test_fraction, seed=seed)
            if self.val_fraction > 0 and len(val) == 0:
                raise DataError(f"{self.path}: too few images ({len(y)}) for a validation split; "
                                f"add images or raise val_fraction")
            self._cache[seed] = Splits(x[train], y[train], x[val], y[val], x[test], y[test])
        return self._cache[seed]

    def describe(self) -> str:
        return f"image folder {self.path} ({self.num_images} images)"
