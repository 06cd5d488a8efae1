"""The search-space contract every registered space implements.

A space is an ordered list of :class:`Decision` s. Some decisions are *conditional*: they only exist
for some values of earlier ones (a block of a stage exists only if the stage's depth reaches it). The base
class derives sampling, mutation, completion, one-hot encoding and enumeration from that list; a concrete
space adds the string format, the model builder and its size.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Collection, Iterator, Mapping, Sequence

import numpy as np
import torch

from hwnas.arch import Arch
from hwnas.errors import ArchError


@dataclass(frozen=True)
class Unit:
    """One piece of a model: a kind, its hyperparameters, the shape it takes in and the stage it belongs to.

    Attributes:
        kind: e.g. ``"stem"``, ``"ir"`` (inverted residual), ``"cell"``, ``"head"``.
        config: Hyperparameters as sorted ``(name, value)`` pairs (hashable).
        in_shape: ``(C, H, W)`` of the unit's input.
        stage: Index of the stage; -1 for the stem, the number of stages for the head.
    """

    kind: str
    config: tuple
    in_shape: tuple
    stage: int

    @classmethod
    def make(cls, kind: str, in_shape: Sequence[int], stage: int, **config: Any) -> "Unit":
        return cls(kind, tuple(sorted(config.items())), tuple(int(d) for d in in_shape), int(stage))

    def get(self, name: str) -> Any:
        return dict(self.config)[name]


@dataclass(frozen=True)
class Decision:
    """One choice point of a space: a label and its allowed values (in a fixed order)."""

    label: str
    choices: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {c: i for i, c in enumerate(self.choices)})

    def index(self, value: Any) -> int:
        """Position of ``value`` among the choices; :class:`ArchError` if it is not one.

        Types must match too: ``1`` is not the choice ``True``.
        """
        try:
            i = self._positions.get(value)  # type: ignore[attr-defined]
        except TypeError:  # unhashable
            i = None
        if i is None or type(self.choices[i]) is not type(value):
            raise ArchError(f"{self.label}: {value!r} is not one of {list(self.choices)}")
        return i


class SearchSpace(abc.ABC):
    """Base class of search spaces. Subclasses set :attr:`name` and implement the abstract methods."""

    name: str = ""

    # -- structure -------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """Every decision the space can ask, in canonical order (conditional ones included)."""

    def is_active(self, decision: Decision, chosen: Mapping[str, Any]) -> bool:
        """Whether ``decision`` exists given the earlier ``chosen`` values. Unconditional by default."""
        return True

    @abc.abstractmethod
    def size(self) -> int:
        """Number of distinct architectures in the space."""

    # -- strings ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def format(self, choices: Mapping[str, Any]) -> str:
        """Canonical string of a complete, canonical ``label -> choice`` mapping."""

    @abc.abstractmethod
    def parse_choices(self, string: str) -> dict[str, Any]:
        """Parses a canonical string into a mapping; raises :class:`ArchError` naming the bad part."""

    def parse(self, string: str) -> Arch:
        """Parses a canonical string into an :class:`Arch` (validated against the space)."""
        if not isinstance(string, str) or not string.strip():
            raise ArchError(f"{self.name}: empty architecture string")
        arch = self.from_mapping(self.parse_choices(string.strip()))
        return arch

    # -- construction and validation -------------------------------------------------------------------------
    def from_mapping(self, mapping: Mapping[str, Any]) -> Arch:
        """Validates a ``label -> choice`` mapping and returns the canonical :class:`Arch`.

        Raises:
            ArchError: a label is unknown, a value is not allowed, an active decision is missing, or a
                label is given that is inactive for the other choices.
        """
        known = {d.label for d in self.decisions}
        unknown = [label for label in mapping if label not in known]
        if unknown:
            raise ArchError(f"{self.name}: unknown decision {unknown[0]!r}")
        chosen: dict[str, Any] = {}
        for decision in self.decisions:
            if not self.is_active(decision, chosen):
                if decision.label in mapping:
                    raise ArchError(f"{self.name}: {decision.label!r} is not used by this architecture")
                continue
            if decision.label not in mapping:
                raise ArchError(f"{self.name}: missing decision {decision.label!r}")
            value = mapping[decision.label]
            decision.index(value)  # validates
            chosen[decision.label] = value
        return Arch(self.name, chosen, self.format(chosen))

    def active_decisions(self, chosen: Mapping[str, Any]) -> list[Decision]:
        """The decisions that exist for the (complete) mapping ``chosen``."""
        partial: dict[str, Any] = {}
        active = []
        for decision in self.decisions:
            if self.is_active(decision, partial):
                active.append(decision)
                if decision.label in chosen:
                    partial[decision.label] = chosen[decision.label]
        return active

    def complete(self, partial: Mapping[str, Any], rng: np.random.Generator) -> Arch:
        """Keeps the active choices of ``partial``, samples the missing ones, drops the inactive ones."""
        chosen: dict[str, Any] = {}
        for decision in self.decisions:
            if not self.is_active(decision, chosen):
                continue
            if decision.label in partial:
                chosen[decision.label] = partial[decision.label]
            else:
                chosen[decision.label] = decision.choices[int(rng.integers(len(decision.choices)))]
        return self.from_mapping(chosen)

    def equivalence_key(self, arch: Arch) -> str:
        """A key shared by architectures that compute the same function (e.g. cells differing only on edges
        that cannot reach the output): training two of them teaches nothing the first did not, apart from
        training noise, so the search trains one per key. Their latencies may still differ (dead operations
        still run), so measurements are not shared. The key is the canonical string of one architecture of
        the class (its representative). The architecture's own string (no equivalences) by default."""
        self._check_own(arch)
        return arch.string

    # -- sampling --------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """Samples each active decision uniformly, in order."""
        return self.complete({}, rng)

    def sample_distinct(self, n: int, rng: np.random.Generator, *, exclude: Collection[str] = frozenset(),
                        max_draws: int | None = None) -> list[Arch]:
        """Up to ``n`` distinct architectures outside ``exclude`` (canonical strings), in the order drawn with
        :meth:`sample`; stops after ``max_draws`` draws (default ``100 * n + 1000``), so a space with fewer
        such architectures returns fewer rather than looping forever."""
        found: dict[str, Arch] = {}
        limit = 100 * n + 1000 if max_draws is None else max_draws
        draws = 0
        while len(found) < n and draws < limit:
            draws += 1
            arch = self.sample(rng)
            if arch.string not in exclude:
                found.setdefault(arch.string, arch)
        return list(found.values())

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """Changes one active decision (with more than one choice) to another value.

        Decisions that become active are sampled; ones that become inactive are dropped.
        """
        self._check_own(arch)
        candidates = [d for d in self.active_decisions(arch) if len(d.choices) > 1]
        decision = candidates[int(rng.integers(len(candidates)))]
        current = decision.index(arch[decision.label])
        offset = int(rng.integers(1, len(decision.choices)))
        mapping = arch.to_dict()
        mapping[decision.label] = decision.choices[(current + offset) % len(decision.choices)]
        return self.complete(mapping, rng)

    def neighbours(self, arch: Arch, rng: np.random.Generator) -> list[Arch]:
        """Every architecture one changed active decision away from ``arch`` (the moves of :meth:`mutate`), in
        decision order; decisions that become active are sampled with ``rng``."""
        self._check_own(arch)
        out = []
        for decision in self.active_decisions(arch):
            for value in decision.choices:
                if value != arch[decision.label]:
                    mapping = arch.to_dict()
                    mapping[decision.label] = value
                    out.append(self.complete(mapping, rng))
        return out

    def enumerate(self) -> Iterator[Arch]:
        """Every architecture of the space, in a fixed order. Only practical for small spaces."""

        def rec(index: int, chosen: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if index == len(self.decisions):
                yield dict(chosen)
                return
            decision = self.decisions[index]
            if not self.is_active(decision, chosen):
                yield from rec(index + 1, chosen)
                return
            for value in decision.choices:
                chosen[decision.label] = value
                yield from rec(index + 1, chosen)
                del chosen[decision.label]

        for mapping in rec(0, {}):
            yield Arch(self.name, mapping, self.format(mapping))

    # -- encoding --------------------------------------------------------------------------------------------
    def encoding_names(self) -> list[str]:
        """Names of the columns of :meth:`encode`: ``label=choice`` for every decision and choice."""
        return [f"{d.label}={c}" for d in self.decisions for c in d.choices]

    def encode(self, arch: Arch) -> np.ndarray:
        """One-hot encoding over every decision (an inactive decision's block is all zeros)."""
        self._check_own(arch)
        offsets = self.__dict__.get("_encoding_offsets")
        if offsets is None:
            starts = np.cumsum([0] + [len(d.choices) for d in self.decisions])
            offsets = self.__dict__["_encoding_offsets"] = {d.label: (int(o), d) for d, o in
                                                            zip(self.decisions, starts)}
            self.__dict__["_encoding_size"] = int(starts[-1])
        vec = np.zeros(self.__dict__["_encoding_size"], dtype=np.float32)
        for label, value in arch.items():
            offset, decision = offsets[label]
            vec[offset + decision.index(value)] = 1.0
        return vec

    # -- structure features ----------------------------------------------------------------------------------
    def structure_names(self) -> list[str]:
        """Names of the columns of :meth:`structure`. None by default; a space overrides both together."""
        return []

    def structure(self, arch: Arch) -> np.ndarray:
        """Structural features of ``arch`` that its one-hot encoding leaves implicit (e.g. which edges of a
        cell actually compute, the paths through it, operation counts), as a float32 vector over
        :meth:`structure_names`. Empty by default."""
        self._check_own(arch)
        return np.zeros(0, dtype=np.float32)

    # -- models ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def units(self, arch: Arch, input_shape: Sequence[int], num_classes: int) -> list["Unit"]:
        """The model of ``arch`` as an ordered list of units (stem, blocks or cells, head).

        The model is exactly the sequence of its units, so statistics (and measured latencies) of units add up
        to those of the model; identical units of different architectures share one cache entry.
        """

    @abc.abstractmethod
    def build_unit(self, unit: "Unit") -> torch.nn.Module:
        """A freshly initialised module for one unit."""

    def unit_parts(self, unit: "Unit") -> list["Unit"] | None:
        """Smaller units whose statistics add up to ``unit``'s, or None if it is not decomposable.

        Lets a cell of many possible wirings be counted from its few distinct operations.
        """
        return None

    def build(self, arch: Arch, input_shape: Sequence[int], num_classes: int) -> torch.nn.Module:
        """A freshly initialised PyTorch model for ``arch``: the sequence of its units.

        Args:
            arch: An architecture of this space.
            input_shape: ``(channels, height, width)`` of one input, without the batch dimension.
            num_classes: Number of output logits.
        """
        self._check_own(arch)
        return torch.nn.Sequential(*[self.build_unit(u) for u in self.units(arch, input_shape, num_classes)])

    def features(self, arch: Arch, input_shape: Sequence[int], num_classes: int) -> dict[str, float]:
        """Cheap analytic features of the built model (parameters, MACs, activation memory, layers)."""
        from hwnas.nn.analysis import analyse

        model = self.build(arch, input_shape, num_classes)
        return analyse(model, input_shape).as_dict()

    def describe(self) -> str:
        """One line describing the space (for ``hwnas spaces``)."""
        return (self.__doc__ or "").strip().splitlines()[0]

    def _check_own(self, arch: Arch) -> None:
        if not isinstance(arch, Arch) or arch.space != self.name:
            raise ArchError(f"{arch!r} is not an architecture of space {self.name!r}")


def whole_number(name: str, value, *, minimum: int = 1, maximum: int = 4096) -> int:
    """``value`` as an int if it is a whole number in ``[minimum, maximum]`` (``2.5``, ``True`` or ``"8"`` are
    refused, never truncated); ValueError naming the option otherwise."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not minimum <= int(value) <= maximum:
        raise ValueError(f"{name} must be in {minimum}..{maximum}, got {value}")
    return int(value)
