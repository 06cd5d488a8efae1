"""Featurisation of architectures for the predictors, as a scikit-learn transformer.

Features = the space's one-hot encoding + analytic statistics of the built model: totals (parameters, MACs
split into pointwise / depthwise / dense, activation memory, layer and operator counts, number of units) and
per-stage sums (MACs, parameters, activations, units) + the space's structure features
(:meth:`SearchSpace.structure`, named ``struct:<name>``: for nb201 the effective cell, its operation counts,
its path encoding and cell statistics). Statistics are computed per *unit* (stem, block, cell,
head — see :meth:`SearchSpace.units`) and cached, so an architecture costs a few dictionary look-ups once its
units have been seen: 100,000 architectures take seconds, not a model build each.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin

from hwnas.arch import Arch
from hwnas.nn.analysis import OP_TERMS, analyse, op_terms
from hwnas.spaces import SearchSpace, Unit, create_space

TOTAL_STATS = ("params", "macs", "macs_pointwise", "macs_depthwise", "macs_dense", "activation_elems",
               "peak_activation_elems", "conv_layers", "linear_layers", "leaf_modules")
STAGE_STATS = ("macs", "params", "activation_elems")
_PEAK = TOTAL_STATS.index("peak_activation_elems")
_STAGE_COLUMNS = [TOTAL_STATS.index(name) for name in STAGE_STATS]


class UnitStatsCache:
    """Statistics of units as vectors over ``TOTAL_STATS``, computed once per distinct unit.

    A unit is built and counted with hooks, or summed from its parts where the space decomposes it
    (:meth:`SearchSpace.unit_parts`).
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._stats: dict[Unit, np.ndarray] = {}

    def __call__(self, unit: Unit) -> np.ndarray:
        stats = self._stats.get(unit)
        if stats is None:
            parts = self.space.unit_parts(unit)
            if parts is None:
                with torch.device("meta"):  # shapes only: no weight init, no arithmetic
                    module = self.space.build_unit(unit)
                counted = analyse(module, unit.in_shape, device="meta")
                stats = np.array([getattr(counted, name) for name in TOTAL_STATS], dtype=float)
            else:
                vectors = np.stack([self(part) for part in parts])
                stats = vectors.sum(axis=0)
                stats[_PEAK] = vectors[:, _PEAK].max()
            self._stats[unit] = stats
        return stats

    def __len__(self) -> int:
        return len(self._stats)


class ArchFeaturizer(TransformerMixin, BaseEstimator):
    """Turns architectures (canonical strings or :class:`Arch`) into a numeric feature matrix.

    Args:
        space: Name of the registered search space.
        space_options: Keyword arguments of the space's constructor.
        input_shape: ``(C, H, W)`` of the task's inputs.
        num_classes: Number of classes of the task.
        encoding: Include the space's one-hot encoding.
        analytic: Include the analytic model statistics.
        structure: Include the space's structure features.
        drop: Feature-name prefixes to leave out (e.g. ``("struct:path:",)``), for ablations.
    """

    def __init__(self, space: str = "mobilenet", space_options: Mapping[str, Any] | None = None,
                 input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10, encoding: bool = True,
                 analytic: bool = True, structure: bool = True, drop: Sequence[str] = ()) -> None:
        self.space = space
        self.space_options = space_options
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.encoding = encoding
        self.analytic = analytic
        self.structure = structure
        self.drop = drop

    # -- scikit-learn API ------------------------------------------------------------------------------------
    def fit(self, archs: Iterable | None = None, y=None) -> "ArchFeaturizer":
        """Resolves the space and the feature names; the data is not needed (features are analytic)."""
        self.space_ = create_space(self.space, **dict(self.space_options or {}))
        self.unit_stats_ = UnitStatsCache(self.space_)
        self.num_stages_ = self._num_stages()
        names: list[str] = []
        if self.encoding:
            names += [f"enc:{n}" for n in self.space_.encoding_names()]
        if self.analytic:
            names += list(TOTAL_STATS) + ["units"]
            for stage in range(-1, self.num_stages_ + 1):
                names += [f"stage{stage}:{stat}" for stat in STAGE_STATS] + [f"stage{stage}:units"]
        if self.structure:
            names += [f"struct:{n}" for n in self.space_.structure_names()]
        drop = tuple(self.drop)
        keep = [i for i, name in enumerate(names) if not name.startswith(drop)] if drop else None
        self.columns_ = None if keep is None or len(keep) == len(names) else np.asarray(keep)
        self.feature_names_ = names if self.columns_ is None else [names[i] for i in keep]
        self._row_cache: dict[str, np.ndarray] = {}
        return self

    def transform(self, archs: Iterable[str | Arch]) -> np.ndarray:
        """Feature matrix of shape ``(len(archs), n_features)`` (float32)."""
        if not hasattr(self, "feature_names_"):
            self.fit()
        rows = [self._row(a) for a in archs]
        if not rows:
            return np.zeros((0, len(self.feature_names_)), dtype=np.float32)
        return np.stack(rows)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def feature(self, archs: Iterable[str | Arch], name: str) -> np.ndarray:
        """One named feature (e.g. ``"macs"``) of each architecture, from the cached rows."""
        if not hasattr(self, "feature_names_"):
            self.fit()
        try:
            column = self.feature_names_.index(name)
        except ValueError:
            raise KeyError(f"no feature {name!r} (this featurizer has {len(self.feature_names_)})") from None
        return self.transform(archs)[:, column]

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def schema(self) -> str:
        """A short hash of the feature names: two featurizers with the same schema make the same columns."""
        return hashlib.sha1("\n".join(self.feature_names_).encode()).hexdigest()[:12]

    def parse(self, arch: str | Arch) -> Arch:
        if isinstance(arch, Arch):
            self.space_._check_own(arch)
            return arch
        return self.space_.parse(arch)

    def _num_stages(self) -> int:
        probe = self.space_.sample(np.random.default_rng(0))
        return max(u.stage for u in self.space_.units(probe, self.input_shape, self.num_classes))

    def _row(self, arch: str | Arch) -> np.ndarray:
        key = arch.string if isinstance(arch, Arch) else arch
        row = self._row_cache.get(key)
        if row is not None:
            return row
        parsed = self.parse(arch)
        parts = []
        if self.encoding:
            parts.append(self.space_.encode(parsed))
        if self.analytic:
            parts.append(self._analytic(parsed))
        if self.structure:
            parts.append(self.space_.structure(parsed))
        row = np.concatenate(parts).astype(np.float32)
        if self.columns_ is not None:
            row = row[self.columns_]
        if len(self._row_cache) < 1_000_000:
            self._row_cache[key] = row
        return row

    def _analytic(self, arch: Arch) -> np.ndarray:
        units = self.space_.units(arch, self.input_shape, self.num_classes)
        vectors = np.stack([self.unit_stats_(unit) for unit in units])
        totals = vectors.sum(axis=0)
        totals[_PEAK] = vectors[:, _PEAK].max()
        stage_index = np.fromiter((unit.stage + 1 for unit in units), int, len(units))
        stages = np.zeros((self.num_stages_ + 2, len(STAGE_STATS) + 1))
        np.add.at(stages, stage_index, np.column_stack([vectors[:, _STAGE_COLUMNS], np.ones(len(units))]))
        return np.concatenate([totals, [len(units)], stages.ravel()])


class OpFeaturizer:
    """Per-operator terms of architectures (:data:`hwnas.nn.analysis.OP_TERMS`, plus ``const`` = 1), the
    features of :class:`~hwnas.predictors.additive.AdditiveLatencyPredictor`: computed per unit (stem, block,
    cell, head) on the meta device, cached, and summed over the architecture's units.

    Args:
        space: Name of the registered search space.
        space_options: Keyword arguments of the space's constructor.
        input_shape: ``(C, H, W)`` of the task's inputs.
        num_classes: Number of classes of the task.
    """

    def __init__(self, space: str = "mobilenet", space_options: Mapping[str, Any] | None = None,
                 input_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10) -> None:
        self.space_ = create_space(space, **dict(space_options or {}))
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.feature_names_ = ["const", *OP_TERMS]
        self._units: dict[Unit, np.ndarray] = {}
        self._rows: dict[str, np.ndarray] = {}

    def _unit(self, unit: Unit) -> np.ndarray:
        terms = self._units.get(unit)
        if terms is None:
            parts = self.space_.unit_parts(unit)
            if parts is None:
                with torch.device("meta"):
                    module = self.space_.build_unit(unit)
                counted = op_terms(module, unit.in_shape, device="meta")
                terms = np.array([0.0] + [counted[name] for name in OP_TERMS])
            else:
                terms = np.sum([self._unit(part) for part in parts], axis=0)
            self._units[unit] = terms
        return terms

    def _row(self, arch: str | Arch) -> np.ndarray:
        key = arch.string if isinstance(arch, Arch) else arch
        row = self._rows.get(key)
        if row is None:
            parsed = arch if isinstance(arch, Arch) else self.space_.parse(arch)
            units = self.space_.units(parsed, self.input_shape, self.num_classes)
            row = np.sum([self._unit(u) for u in units], axis=0)
            row[0] = 1.0
            if len(self._rows) < 1_000_000:
                self._rows[key] = row
        return row

    def transform(self, archs: Iterable[str | Arch]) -> np.ndarray:
        """Feature matrix of shape ``(len(archs), len(feature_names_))`` (float64)."""
        rows = [self._row(a) for a in archs]
        return np.stack(rows) if rows else np.zeros((0, len(self.feature_names_)))
