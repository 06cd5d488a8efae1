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


def check_input_shape(shape) -> tuple[int, int, int]:
    """``shape`` as ``(C, H, W)`` if within :data:`MAX_CHANNELS` and :data:`MAX_SIDE`; :class:`ShapeError`
    otherwise."""
    c, h, w = (int(d) for d in shape)
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ShapeError(f"input shape {c}x{h}x{w} is out of range: at most {MAX_CHANNELS} channels and "
                         f"{MAX_SIDE}x{MAX_SIDE} pixels")
    return c, h, w


def format_input_shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape)
