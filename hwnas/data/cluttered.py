"""``cluttered-digits``: a task where architecture matters, built from scikit-learn's embedded digits.

The construction follows the "cluttered MNIST" benchmark of the Spatial Transformer Networks paper
(Jaderberg et al., 2015), from data a dependency already ships (nothing is downloaded):

1. the 1,797 8x8 digits are split per class into train / validation / test *source* digits (60/20/20 %), so
   no handwritten digit appears in two splits;
2. each sample is a ``canvas`` x ``canvas`` black image (default 32x32, one channel) with ``clutter``
   fragments (``fragment`` x ``fragment`` crops, default 4x4 scaled like the digits) cut from other random
   digits of the same split, then one digit scaled by a random factor in ``[min_scale, max_scale]``
   (bilinear) and placed at a random position; overlapping pixels keep the brighter value;
3. the label is the class of the placed digit; pixel values are scaled to [-1, 1].

Every sample comes from ``numpy.random.default_rng([split_seed, split, 0xC1u77e4])``: the same seed gives the
same images. The network has to find a small, scaled digit among digit-like strokes, which needs receptive
field and capacity: wider, deeper networks with larger kernels are more accurate and slower
(``benchmarks/discrimination.py --dataset cluttered-digits`` measures by how much).
"""

from __future__ import annotations

import numpy as np

from hwnas.data import register_dataset
from hwnas.data.base import Dataset, DataError, Splits, options_key, stratified_split

DEFAULTS: dict[str, float] = {"canvas": 32, "train_size": 3000, "val_size": 2000, "test_size": 2000,
                              "clutter": 4, "fragment": 4, "min_scale": 1.5, "max_scale": 3.0}
#: Share of the source digits per class held out for validation and for testing.
SOURCE_VAL_FRACTION = 0.2
SOURCE_TEST_FRACTION = 0.2
_STREAM = 0xC1077E4


def _scale(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` resized by ``factor`` with bilinear interpolation (at least 1x1)."""
    from scipy.ndimage import zoom

    out = zoom(image, factor, order=1, mode="nearest", grid_mode=True)
    return np.clip(out, 0.0, 1.0)


def _paste_max(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    h, w = patch.shape
    region = canvas[top:top + h, left:left + w]
    np.maximum(region, patch[: region.shape[0], : region.shape[1]], out=region)


@register_dataset("cluttered-digits")
class ClutteredDigitsDataset(Dataset):
    """Digits at random position and scale among clutter on a 32x32 canvas (cluttered-MNIST style; no download).

    Args:
        canvas: Side of the square image in pixels.
        train_size: Generated training samples.
        val_size: Generated validation samples.
        test_size: Generated test samples.
        clutter: Clutter fragments per image.
        fragment: Side of a clutter fragment, in source pixels (before scaling).
        min_scale: Smallest scale factor of the 8x8 digit (and of the fragments).
        max_scale: Largest scale factor.
    """

    name = "cluttered-digits"

    def __init__(self, *, canvas: int = 32, train_size: int = 3000, val_size: int = 2000,
                 test_size: int = 2000, clutter: int = 4, fragment: int = 4, min_scale: float = 1.5,
                 max_scale: float = 3.0) -> None:
        values = {"canvas": canvas, "train_size": train_size, "val_size": val_size, "test_size": test_size,
                  "clutter": clutter, "fragment": fragment}
        for key, value in values.items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise DataError(f"cluttered-digits: {key} must be a whole number, got {value!r}")
        if not 1 <= train_size <= 1_000_000 or not 1 <= val_size <= 1_000_000 or not 1 <= test_size <= 1_000_000:
            raise DataError("cluttered-digits: train_size, val_size and test_size must be in 1..1000000")
        if not 0 <= clutter <= 100:
            raise DataError(f"cluttered-digits: clutter must be in 0..100, got {clutter}")
        if not 1 <= fragment <= 8:
            raise DataError(f"cluttered-digits: fragment must be in 1..8 (source pixels), got {fragment}")
        try:
            min_scale, max_scale = float(min_scale), float(max_scale)
        except (TypeError, ValueError):
            raise DataError("cluttered-digits: min_scale and max_scale must be numbers") from None
        if not 0.5 <= min_scale <= max_scale <= 8:
            raise DataError(f"cluttered-digits: need 0.5 <= min_scale <= max_scale <= 8, got {min_scale:g} "
                            f"and {max_scale:g}")
        if not 8 <= canvas <= 256 or int(np.ceil(8 * max_scale)) > canvas:
            raise DataError(f"cluttered-digits: canvas must be in 8..256 and hold a digit at max_scale "
                            f"({int(np.ceil(8 * max_scale))} px), got {canvas}")
        self.canvas, self.train_size, self.val_size, self.test_size = (int(canvas), int(train_size),
                                                                       int(val_size), int(test_size))
        self.clutter, self.fragment = int(clutter), int(fragment)
        self.min_scale, self.max_scale = min_scale, max_scale
        self._cache: dict[int, Splits] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.canvas, self.canvas)

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(10)]

    def preprocess(self):
        from hwnas.data.preprocess import Preprocess

        return Preprocess(1, self.canvas, self.canvas, pixel_max=1.0,
                          source="generated grayscale canvases of float values 0..1")

    @property
    def key(self) -> str:
        return options_key(self.name, self, DEFAULTS)

    def split_sizes(self, seed: int = 0) -> tuple[int, int, int]:
        return self.train_size, self.val_size, self.test_size

    def splits(self, seed: int = 0) -> Splits:
        seed = int(seed)
        if seed not in self._cache:
            from sklearn.datasets import load_digits

            data = load_digits()
            images = (data.images / 16.0).astype(np.float32)  # 0..1
            labels = data.target.astype(np.int64)
            parts = stratified_split(labels, val_fraction=SOURCE_VAL_FRACTION,
                                     test_fraction=SOURCE_TEST_FRACTION, seed=seed)
            arrays = []
            for index, (source, size) in enumerate(zip(parts, (self.train_size, self.val_size,
                                                                 self.test_size))):
                rng = np.random.default_rng([seed, index, _STREAM])
                arrays.extend(self._generate(images[source], labels[source], size, rng))
            self._cache[seed] = Splits(*arrays)
        return self._cache[seed]

    def _generate(self, images: np.ndarray, labels: np.ndarray, size: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``size`` cluttered samples from the source ``images`` (values 0..1) and their labels."""
        side = self.canvas
        x = np.zeros((size, 1, side, side), dtype=np.float32)
        y = np.empty(size, dtype=np.int64)
        for i in range(size):
            canvas = x[i, 0]
            for _ in range(self.clutter):
                source = images[rng.integers(len(images))]
                top, left = rng.integers(0, 8 - self.fragment + 1, size=2)
                piece = _scale(source[top:top + self.fragment, left:left + self.fragment],
                               rng.uniform(self.min_scale, self.max_scale))
                _paste_max(canvas, piece, *rng.integers(0, side - min(piece.shape) + 1, size=2))
            pick = rng.integers(len(images))
            digit = _scale(images[pick], rng.uniform(self.min_scale, self.max_scale))
            h, w = digit.shape
            _paste_max(canvas, digit, int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1)))
            y[i] = labels[pick]
        np.subtract(x * 2.0, 1.0, out=x)  # 0..1 -> [-1, 1]
        return x, y
