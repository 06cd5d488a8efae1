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
    return dims  # type: ignore[return-value]


def format_input_shape(shape) -> str:
    return "x".join(str(int(d)) for d in shape)
