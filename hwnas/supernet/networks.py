"""Which supernet covers which search space: one entry per space that has a weight-sharing network."""

from __future__ import annotations

from typing import Sequence

from hwnas.spaces.base import SearchSpace
from hwnas.supernet.base import Supernet, SupernetError
from hwnas.supernet.cells import CellSupernet
from hwnas.supernet.elastic import MobileNetSupernet

#: Space name -> its supernet class (:class:`~hwnas.supernet.base.Supernet`).
SUPERNETS: dict[str, type[Supernet]] = {kind.space_name: kind for kind in (MobileNetSupernet, CellSupernet)}


def make_supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> Supernet:
    """The supernet of ``space`` (freshly initialised from the global torch RNG)."""
    try:
        kind = SUPERNETS[space.name]
    except KeyError:
        raise SupernetError(f"no supernet covers space {space.name!r} (supernets exist for: "
                            f"{', '.join(sorted(SUPERNETS))})") from None
    return kind(space, input_shape, num_classes)
