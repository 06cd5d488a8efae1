"""What every supernet is: one network of a whole space that runs any of its architectures.

A subclass names its space (``space_name``) and provides ``largest()``, ``smallest()``, ``forward(x, arch)``
(through :meth:`Supernet.choices`) and ``extract(arch)``, the stand-alone model of ``space.build`` holding the
supernet's weights for ``arch``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn

from hwnas.arch import Arch
from hwnas.errors import HwnasError


class SupernetError(HwnasError):
    """A supernet cannot be built, loaded or used for an architecture."""


class Supernet(nn.Module):
    """The shared part of the supernets: the space, the task's shape and the active sub-network.

    Args:
        space: A search space named ``space_name`` (any options).
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of output logits.
    """

    space_name = ""

    def __init__(self, space, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        if space.name != self.space_name:
            raise SupernetError(f"{type(self).__name__} covers the {self.space_name} space only, not "
                                f"{space.name!r}")
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.active: dict[str, Any] | None = None

    def set_active(self, arch: Arch | None) -> None:
        """Makes ``arch`` the sub-network :meth:`forward` runs (None: none)."""
        if arch is not None:
            self.space._check_own(arch)
        self.active = None if arch is None else dict(arch)

    def choices(self, arch: Arch | Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The decisions :meth:`forward` runs: ``arch``'s, else the active sub-network's."""
        choices = self.active if arch is None else arch
        if choices is None:
            raise SupernetError("no sub-network is active: call set_active(arch) or pass arch")
        return choices
