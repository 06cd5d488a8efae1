"""Architectures: a flat, immutable ``label -> choice`` mapping with a canonical string and a stable id.

An :class:`Arch` is only ever made by its search space (``space.parse``, ``space.from_mapping``,
``space.sample``), which guarantees that it is valid and canonical: it holds exactly the space's *active*
decisions (a block beyond a stage's chosen depth has no entry), in the space's decision order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Iterator


def arch_id(space: str, string: str) -> str:
    """Stable 12-hex-digit id of an architecture: a SHA-1 of its space name and canonical string."""
    return hashlib.sha1(f"{space}:{string}".encode("utf-8")).hexdigest()[:12]


class Arch(Mapping):
    """One architecture of a search space.

    Attributes:
        space: Name of the search space it belongs to.
        string: Canonical, human-readable string; ``space.parse(string)`` gives this architecture back.
        id: Stable short id derived from ``space`` and ``string``.
    """

    __slots__ = ("space", "string", "id", "_choices")

    def __init__(self, space: str, choices: Mapping[str, Any], string: str) -> None:
        object.__setattr__(self, "space", space)
        object.__setattr__(self, "_choices", dict(choices))
        object.__setattr__(self, "string", string)
        object.__setattr__(self, "id", arch_id(space, string))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Arch is immutable")

    def __reduce__(self):
        return (Arch, (self.space, self._choices, self.string))

    def __copy__(self) -> "Arch":
        return self

    def __deepcopy__(self, memo) -> "Arch":
        return self

    def __getitem__(self, label: str) -> Any:
        return self._choices[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._choices)

    def __len__(self) -> int:
        return len(self._choices)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Arch):
            return self.space == other.space and self.string == other.string
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.space, self.string))

    def __str__(self) -> str:
        return self.string

    def __repr__(self) -> str:
        return f"Arch({self.space!r}, {self.string!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy of the ``label -> choice`` mapping."""
        return dict(self._choices)
