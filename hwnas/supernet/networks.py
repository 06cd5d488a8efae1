"""Which supernet covers which search space: one entry per space that has a weight-sharing network."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from hwnas.spaces.base import SearchSpace
from hwnas.supernet.cells import CellSupernet
from hwnas.supernet.elastic import MobileNetSupernet, SupernetError

#: Space name -> supernet class (each takes ``(space, input_shape, num_classes)`` and offers ``set_active``,
#: ``largest``, ``smallest``, ``forward(x, arch)`` and ``extract(arch)``).
SUPERNETS: dict[str, type[nn.Module]] = {"mobilenet": MobileNetSupernet, "nb201": CellSupernet}


def make_supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """The supernet of ``space`` (freshly initialised from the global torch RNG)."""
    try:
        kind = SUPERNETS[space.name]
    except KeyError:
        raise SupernetError(f"no supernet covers space {space.name!r} (supernets exist for: "
                            f"{', '.join(sorted(SUPERNETS))})") from None
    return kind(space, input_shape, num_classes)
