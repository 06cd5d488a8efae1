"""How a data set turns its source images into model inputs, written into every exported model.

A :class:`Preprocess` is the contract between an exported ONNX file and whoever feeds it: colour mode,
resize (method, library, size), the scaling formula, the input layout and dtype, and what the output is.
``hwnas export`` writes it as the JSON metadata entry ``preprocess``; ``hwnas evaluate`` reads it to feed the
file; README's deploy script follows it with only onnxruntime, numpy and Pillow.

Every hwnas data set scales pixel values ``0..pixel_max`` to [-1, 1] as ``(x / pixel_max - 0.5) / 0.5`` in
float32 (:func:`hwnas.data.base.to_unit_range`). A *raw-input* model has that scaling and the NHWC -> NCHW
transpose inside its graph: it takes ``uint8`` images ``(N, H, W, C)`` as Pillow gives them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hwnas.errors import HwnasError

#: Version of the ``preprocess`` metadata entry.
SCHEMA = 1
COLOUR_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class PreprocessError(HwnasError, ValueError):
    """A model's ``preprocess`` entry is unreadable, or inputs cannot be given in the form it asks for."""


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing of one data set's inputs (and, once exported, of a model's).

    Attributes:
        channels: ``C`` of the model's input.
        height: ``H`` of the model's input.
        width: ``W`` of the model's input.
        pixel_max: The source pixel value that maps to 1.0 (255 for 8-bit images, 16 for scikit-learn's
            digits); None when the data set's inputs are used as given (a float ``.npz``).
        resize: ``"bilinear"`` (Pillow's ``Image.Resampling.BILINEAR``) when source images of any size are
            resized to ``H x W``, None when the source already has that size.
        source: What the data set's source inputs are, in words.
        raw_input: The scaling and transpose are in the model's graph: it takes ``uint8`` NHWC pixels.
    """

    channels: int
    height: int
    width: int
    pixel_max: float | None = 255.0
    resize: str | None = None
    source: str = "images"
    raw_input: bool = False

    @property
    def colour_mode(self) -> str:
        """Pillow's mode of the source image (``L``, ``RGB`` or ``RGBA``)."""
        return COLOUR_MODES.get(self.channels, f"{self.channels} channels")

    @property
    def layout(self) -> str:
        return "NHWC" if self.raw_input else "NCHW"

    @property
    def dtype(self) -> str:
        return "uint8" if self.raw_input else "float32"

    @property
    def formula(self) -> str:
        if self.pixel_max is None:
            return "x (inputs used as given)"
        return f"(x / {self.pixel_max:g} - 0.5) / 0.5"

    def input_shape(self) -> tuple[int, int, int]:
        """One input of the model's graph: ``(C, H, W)``, or ``(H, W, C)`` for a raw-input model."""
        if self.raw_input:
            return (self.height, self.width, self.channels)
        return (self.channels, self.height, self.width)

    def as_raw(self) -> "Preprocess":
        """The same preprocessing with the scaling baked into the model (uint8 NHWC input).

        Raises:
            PreprocessError: the data set's inputs are not pixel values (no ``pixel_max``).
        """
        if self.pixel_max is None:
            raise PreprocessError(f"raw input needs pixel values, but this data set's inputs are {self.source}")
        return dataclasses.replace(self, raw_input=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the ``preprocess`` metadata entry."""
        scaling = None if self.pixel_max is None else {
            "formula": self.formula, "pixel_max": self.pixel_max, "range": [-1.0, 1.0],
            "dtype": "float32", "in_graph": self.raw_input}
        return {
            "schema": SCHEMA,
            "source": self.source,
            "colour_mode": self.colour_mode,
            "resize": None if self.resize is None else {
                "method": self.resize, "library": "Pillow", "size_wh": [self.width, self.height]},
            "size_hw": [self.height, self.width],
            "scaling": scaling,
            "layout": self.layout,
            "dtype": self.dtype,
            "input_shape": list(self.input_shape()),
            "output": "logits",
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocess":
        """Reads a ``preprocess`` entry written by :meth:`to_dict`.

        Raises:
            PreprocessError: the entry is not one this version understands.
        """
        try:
            if int(data["schema"]) != SCHEMA:
                raise PreprocessError(f"preprocess schema {data['schema']} is not supported (this hwnas reads "
                                      f"{SCHEMA})")
            height, width = (int(d) for d in data["size_hw"])
            channels = {v: k for k, v in COLOUR_MODES.items()}.get(data["colour_mode"])
            if channels is None:
                raise PreprocessError(f"unknown colour mode {data['colour_mode']!r}")
            scaling = data.get("scaling")
            resize = data.get("resize")
            return cls(channels=channels, height=height, width=width,
                       pixel_max=None if scaling is None else float(scaling["pixel_max"]),
                       resize=None if resize is None else str(resize["method"]), source=str(data["source"]),
                       raw_input=data["layout"] == "NHWC")
        except PreprocessError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise PreprocessError(f"the model's preprocess metadata is unreadable ({type(exc).__name__}: "
                                  f"{exc})") from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], default: "Preprocess | None" = None
                      ) -> "Preprocess | None":
        """The ``preprocess`` entry of a model's metadata; ``default`` for files exported before it existed."""
        if "preprocess" not in metadata:
            return default
        try:
            data = json.loads(metadata["preprocess"])
        except ValueError as exc:
            raise PreprocessError(f"the model's preprocess metadata is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise PreprocessError("the model's preprocess metadata is not a JSON object")
        return cls.from_dict(data)

    def same_inputs(self, other: "Preprocess") -> bool:
        """Whether both describe the same scaled inputs (whatever the layout the model takes them in)."""
        return dataclasses.replace(self, raw_input=False, source="") == dataclasses.replace(
            other, raw_input=False, source="")

    def model_inputs(self, x: np.ndarray) -> np.ndarray:
        """A data set's float ``(N, C, H, W)`` inputs in the form the model takes.

        For a raw-input model the scaling is inverted back to ``uint8`` pixels (exactly: every value must be
        a whole pixel value within 1e-3).

        A lazy array (a streamed split) gives a lazy array, converted batch by batch as it is read.

        Raises:
            PreprocessError: a raw-input model, and the inputs are not whole pixel values (e.g. digits' noise).
        """
        from hwnas.data.lazy import LazyArray, is_lazy

        if is_lazy(x):
            return LazyArray(_ModelInputs(x, self))
        if not self.raw_input:
            return np.ascontiguousarray(x, dtype=np.float32)
        assert self.pixel_max is not None
        pixels = (np.asarray(x, dtype=np.float64) * 0.5 + 0.5) * self.pixel_max
        rounded = np.rint(pixels)
        if pixels.size and (np.max(np.abs(pixels - rounded)) > 1e-3 or rounded.min() < 0
                            or rounded.max() > min(255.0, self.pixel_max)):
            raise PreprocessError(f"a raw-input model takes whole pixel values 0..{self.pixel_max:g}, but these "
                                  f"inputs are not ({self.source})")
        return np.ascontiguousarray(rounded.astype(np.uint8).transpose(0, 2, 3, 1))


class _ModelInputs:
    """A lazy split's samples in the form a model takes (:meth:`Preprocess.model_inputs`, batch by batch)."""

    def __init__(self, x, preprocess: Preprocess) -> None:
        self.x = x
        self.preprocess = preprocess
        self.sample_shape = preprocess.input_shape()
        self.size = len(x)
        self.dtype = np.dtype(preprocess.dtype)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        return self.preprocess.model_inputs(self.x[np.asarray(indices, dtype=np.int64)])
