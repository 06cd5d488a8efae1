"""Parsing input shapes written as ``CxHxW`` (e.g. ``1x8x8``, ``3x32x32``)."""

from __future__ import annotations

from hwnas.errors import ShapeError


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """Parses ``"CxHxW"`` into a ``(C, H, W)`` tuple of positive integers.

    Raises:
        ShapeError: the text is not three positive integers separated by ``x``.
    """
    parts = str(text).strip().lower().split("x")
    if len(parts) != 3:
        raise ShapeError(f"input shape {text!r} must be CxHxW, e.g. 1x8x8 or 3x32x32")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"input shape {text!r} must be CxHxW with integer sizes, e.g. 1x8x8") from None
    if any(d <= 0 for d in dims):
        raise ShapeError(f"input shape {text!r} has a non-positive size")
    check_input_shape(dims)
    return dims  # type: ignore[return-value]


#: Limits of an input shape: at most this many channels and this height/width (a stated limit, not an
#: out-of-memory error half-way through an export).
MAX_CHANNELS = 64
MAX_SIDE = 4096
#: Limits of one input batch: at most this many inputs (the activations of a small input grow with the batch, not
#: the input), and at most this many values in all (batch x C x H x W;
#: 2**24 float32 values are 64 MiB, so the model's activations, tens of times the input, stay within a few GiB).
MAX_BATCH = 4096
MAX_BATCH_VALUES = 2**24
#: The other sizes of the work, checked before it starts: training epochs, and a seed (it fits the store's 64-bit
#: integer). Here, with the batch, so that the command line states them without importing the training code.
MAX_EPOCHS = 10_000
MAX_SEED = 2**63 - 1


def check_input_shape(shape) -> tuple[int, int, int]:
    """``shape`` as ``(C, H, W)`` if within :data:`MAX_CHANNELS` and :data:`MAX_SIDE`; :class:`ShapeError`
    otherwise."""
    c, h, w = (int(d) for d in shape)
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ShapeError(f"input shape {c}x{h}x{w} is out of range: at most {MAX_CHANNELS} channels and "
                         f"{MAX_SIDE}x{MAX_SIDE} pixels")
    if c * h * w > MAX_BATCH_VALUES:
        raise ShapeError(f"input shape {c}x{h}x{w} holds {c * h * w:,} values; the limit is {MAX_BATCH_VALUES:,} "
                         f"(C x H x W) so that a batch and the model's activations fit memory")
    return c, h, w


def check_batch(batch_size: int, shape=None) -> int:
    """``batch_size`` if it is in ``1..MAX_BATCH`` and, with ``shape`` (C, H, W), one batch holds at most
    :data:`MAX_BATCH_VALUES` values; :class:`ShapeError` naming the limit otherwise."""
    batch = int(batch_size)
    if not 1 <= batch <= MAX_BATCH:
        raise ShapeError(f"batch size {batch_size} is out of range: 1..{MAX_BATCH}")
    if shape is not None:
        c, h, w = (int(d) for d in shape)
        if batch * c * h * w > MAX_BATCH_VALUES:
            raise ShapeError(f"a batch of {batch} inputs of {c}x{h}x{w} holds {batch * c * h * w:,} values; the "
                             f"limit is {MAX_BATCH_VALUES:,} (batch x C x H x W) so that it and the model's "
                             f"activations fit memory: give a smaller --batch-size (at most "
                             f"{max(1, MAX_BATCH_VALUES // (c * h * w))} here)")
    return batch


def format_input_shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape)
