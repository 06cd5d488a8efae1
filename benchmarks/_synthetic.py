"""A synthetic nb201 task with a known optimum: accuracy and latency as known functions of the ops.

Shared by ``predictors.py`` and ``search.py``. The whole space (15,625 cells) is tabulated, so the true best
architecture under any latency budget is known exactly.

- accuracy = 0.90 + per-edge op weights (convolutions help, ``none`` hurts, more on the edges into the output
  node) - diminishing returns in the number of convolutions + Gaussian noise (sd ``noise``, fixed per
  architecture); a cell with no path from its input to its output through non-``none`` edges scores 0.10
  (chance), as in NAS-Bench-201.
- latency (ms) = 0.2 + 0.12 per 3x3 conv + 0.04 per 1x1 conv + 0.01 per pooling + 0.005 per skip, times a
  multiplicative measurement noise (sd ``latency_noise``, fixed per architecture).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

OP_WEIGHT = {"none": -0.03, "skip_connect": 0.0, "nor_conv_1x1": 0.02, "nor_conv_3x3": 0.035,
             "avg_pool_3x3": -0.005}
OP_LATENCY = {"none": 0.0, "skip_connect": 0.005, "nor_conv_1x1": 0.04, "nor_conv_3x3": 0.12,
              "avg_pool_3x3": 0.01}
EDGE_WEIGHT = {"1<-0": 0.8, "2<-0": 0.8, "2<-1": 0.9, "3<-0": 1.2, "3<-1": 1.1, "3<-2": 1.2}


def _connected(arch) -> bool:
    reach = {0}
    for node in (1, 2, 3):
        if any(arch[f"{node}<-{src}"] != "none" and src in reach for src in range(node)):
            reach.add(node)
    return 3 in reach


def accuracy_mean(arch) -> float:
    """The noise-free accuracy of an nb201 :class:`~hwnas.arch.Arch`."""
    if not _connected(arch):
        return 0.10
    ops = [arch[edge] for edge in EDGE_WEIGHT]
    convs = sum(op.startswith("nor_conv") for op in ops)
    return 0.90 + sum(EDGE_WEIGHT[e] * OP_WEIGHT[arch[e]] for e in EDGE_WEIGHT) - 0.004 * convs ** 2


def latency_mean(arch) -> float:
    counts = collections.Counter(arch[edge] for edge in EDGE_WEIGHT)
    return 0.2 + sum(OP_LATENCY[op] * n for op, n in counts.items())


@dataclass
class SyntheticTable:
    """Every nb201 architecture with its (noisy, fixed) accuracy and latency."""

    archs: list          # Arch objects, in enumeration order
    strings: list[str]
    accuracy: np.ndarray
    latency_ms: np.ndarray

    def __post_init__(self) -> None:
        self.index = {s: i for i, s in enumerate(self.strings)}

    def acc(self, string: str) -> float:
        return float(self.accuracy[self.index[string]])

    def lat(self, string: str) -> float:
        return float(self.latency_ms[self.index[string]])

    def best_under(self, budget_ms: float) -> tuple[str, float]:
        """The truly best architecture within the latency budget, and its accuracy."""
        feasible = np.flatnonzero(self.latency_ms <= budget_ms)
        i = feasible[np.argmax(self.accuracy[feasible])]
        return self.strings[i], float(self.accuracy[i])


def make_table(*, noise: float = 0.004, latency_noise: float = 0.01, seed: int = 0) -> SyntheticTable:
    """Tabulates the whole nb201 space (about 1 s)."""
    from hwnas.spaces import create_space

    space = create_space("nb201")
    archs = list(space.enumerate())
    rng = np.random.default_rng(seed)
    acc = np.array([accuracy_mean(a) for a in archs]) + rng.normal(0.0, noise, len(archs))
    lat = np.array([latency_mean(a) for a in archs]) * np.exp(rng.normal(0.0, latency_noise, len(archs)))
    return SyntheticTable(archs, [a.string for a in archs], np.clip(acc, 0.0, 1.0), lat)
