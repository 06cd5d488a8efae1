"""``nb201``: the NAS-Bench-201 cell space (Dong & Yang, ICLR 2020), exact to the paper.

A cell is a 4-node DAG; each of its 6 edges ``j <- i`` (i < j) carries one of five operations. The
canonical string is the paper's, character for character, so published tables keyed by it plug in::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|

Macro skeleton (as in the reference implementation): 3x3 conv stem with C channels + BN; three stages of
N cells with C, 2C and 4C channels, separated by residual reduction blocks (ReLU-conv-BN 3x3 stride 2,
ReLU-conv-BN 3x3, shortcut 2x2 average pool + 1x1 conv); BN + ReLU; global average pool; linear classifier.
A reduction whose input is already 1 pixel wide keeps stride 1 (tiny inputs are never reduced below 1x1).

Structure features (:meth:`NB201Space.structure`, for the predictors) describe the *effective* cell: an edge
whose source cannot be reached from node 0, or whose target cannot reach node 3, through non-``none`` edges
computes nothing that reaches the output, so it counts as ``none``. Many strings share one effective cell;
their published accuracies differ only by training noise.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

import torch
from torch import nn

from hwnas.arch import Arch
from hwnas.errors import ArchError
from hwnas.nn.blocks import reduced_size
from hwnas.spaces import register_space
from hwnas.spaces.base import Decision, SearchSpace, Unit, whole_number

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def edge_label(to: int, frm: int) -> str:
    return f"{to}<-{frm}"


_EDGE_INDEX = {edge: i for i, edge in enumerate(EDGES)}
# Every route from the input (node 0) to the output (node 3), as indices into EDGES.
_ROUTES = tuple(tuple(_EDGE_INDEX[(b, a)] for a, b in zip(nodes, nodes[1:]))
                for nodes in ((0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)))
_SHORT = {"skip_connect": "skip", "nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3",
          "avg_pool_3x3": "pool"}
_SEQUENCES = tuple(seq for length in (1, 2, 3) for seq in itertools.product(OPS[1:], repeat=length))
_SEQUENCE_INDEX = {seq: i for i, seq in enumerate(_SEQUENCES)}
_CONV_WEIGHT = {"nor_conv_1x1": 1.0, "nor_conv_3x3": 9.0}
CELL_STATS = ("live_edges", "paths", "skip_path", "convfree_path", "max_convs", "min_convs", "max_conv3x3",
              "conv3x3_on_paths", "longest_path", "shortest_path", "conv_weight")
"""Cell statistics of :meth:`NB201Space.structure`, over the effective cell and its live paths from node 0
to node 3: live edges; number of paths; whether a path of only skips / of no convolution exists; most and
fewest convolutions on a path; most 3x3 convolutions on a path; 3x3 convolutions summed over paths; longest
and shortest path (edges); conv weight (1 per live 1x1, 9 per live 3x3: proportional to the cell's parameters
and MACs)."""


def effective_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """The operations over ``EDGES`` with every edge that cannot affect node 3 replaced by ``none``.

    An edge ``j <- i`` is live when it is not ``none``, node i is reachable from node 0 and node j reaches
    node 3, both through non-``none`` edges.
    """
    on = [op != "none" for op in ops]
    reached = [True, False, False, False]
    for to in range(1, 4):
        reached[to] = any(on[_EDGE_INDEX[(to, frm)]] and reached[frm] for frm in range(to))
    reaches = [False, False, False, True]
    for frm in (2, 1, 0):
        reaches[frm] = any(on[_EDGE_INDEX[(to, frm)]] and reaches[to] for to in range(frm + 1, 4))
    return tuple(op if on[i] and reached[frm] and reaches[to] else "none"
                 for i, ((to, frm), op) in enumerate(zip(EDGES, ops)))


def live_paths(ops: Sequence[str]) -> list[tuple[str, ...]]:
    """Operation sequences of the routes from node 0 to node 3 that use no ``none`` edge."""
    return [seq for seq in (tuple(ops[i] for i in route) for route in _ROUTES) if "none" not in seq]


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


class Zero(nn.Module):
    """The ``none`` operation: a zero tensor of the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchError(f"nb201: unknown operation {name!r}")


class Cell(nn.Module):
    """One NAS-Bench-201 cell: node j = sum over i < j of op_{j<-i}(node i); output = node 3."""

    def __init__(self, arch: Mapping[str, str], channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({f"e{to}_{frm}": make_op(arch[edge_label(to, frm)], channels)
                                    for to, frm in EDGES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in range(1, 4):
            nodes.append(sum(self.edges[f"e{to}_{frm}"](nodes[frm]) for frm in range(to)))
        return nodes[3]


class ResidualReduction(nn.Module):
    """The skeleton's residual block between stages (``ResNetBasicblock`` of the reference code)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        if stride == 2:
            # ceil_mode keeps odd sizes aligned with the strided conv; identical to the paper for even sizes.
            self.shortcut: nn.Module = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0, ceil_mode=True),
                                                     nn.Conv2d(c_in, c_out, 1, bias=False))
        else:
            self.shortcut = ReLUConvBN(c_in, c_out, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space: 6 edges x 5 ops (15,625 cells) on the paper's macro skeleton.

    Args:
        channels: C, the channel count of the first stage (the paper uses 16).
        cells_per_stage: N, the number of cells in each of the three stages (the paper uses 5).
    """

    name = "nb201"

    def __init__(self, *, channels: int = 16, cells_per_stage: int = 5) -> None:
        self.channels = whole_number("channels", channels, maximum=1024)
        self.cells_per_stage = whole_number("cells_per_stage", cells_per_stage, maximum=64)
        self._decisions = tuple(Decision(edge_label(to, frm), OPS) for to, frm in EDGES)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def size(self) -> int:
        return len(OPS) ** len(EDGES)

    def format(self, choices: Mapping[str, Any]) -> str:
        nodes = []
        for to in range(1, 4):
            nodes.append("|" + "|".join(f"{choices[edge_label(to, frm)]}~{frm}" for frm in range(to)) + "|")
        return "+".join(nodes)

    def parse_choices(self, string: str) -> dict[str, Any]:
        nodes = string.split("+")
        if len(nodes) != 3:
            raise ArchError(f"nb201: expected 3 nodes separated by '+', got {len(nodes)} in {string!r}")
        choices: dict[str, Any] = {}
        for to, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
                raise ArchError(f"nb201: node {to} {node!r} must be enclosed in '|'")
            edges = node[1:-1].split("|")
            if len(edges) != to:
                raise ArchError(f"nb201: node {to} {node!r} needs {to} input edge(s), got {len(edges)}")
            for frm, edge in enumerate(edges):
                op, sep, src = edge.partition("~")
                if not sep or src != str(frm):
                    raise ArchError(f"nb201: node {to} edge {edge!r} must be '<op>~{frm}'")
                if op not in OPS:
                    raise ArchError(f"nb201: node {to} edge {edge!r}: unknown operation {op!r} "
                                    f"(known: {', '.join(OPS)})")
                choices[edge_label(to, frm)] = op
        return choices

    def equivalence_key(self, arch: Arch) -> str:
        """The canonical string of the effective cell (:func:`effective_ops`): every edge that cannot affect
        the output reads ``none``."""
        self._check_own(arch)
        ops = effective_ops([arch[edge_label(to, frm)] for to, frm in EDGES])
        return self.format(dict(zip((edge_label(to, frm) for to, frm in EDGES), ops)))

    # -- structure features ----------------------------------------------------------------------------------
    def structure_names(self) -> list[str]:
        """``eff:<edge>=<op>`` (one-hot of the effective cell), ``count:<op>`` (its operation counts),
        ``path:<op>-<op>...`` (BANANAS path encoding: how many live paths from node 0 to node 3 carry each
        operation sequence; 84 sequences of 1-3 operations) and the :data:`CELL_STATS`."""
        return ([f"eff:{edge_label(to, frm)}={op}" for to, frm in EDGES for op in OPS]
                + [f"count:{op}" for op in OPS]
                + ["path:" + "-".join(_SHORT[op] for op in seq) for seq in _SEQUENCES]
                + list(CELL_STATS))

    def structure(self, arch: Arch) -> np.ndarray:
        self._check_own(arch)
        ops = effective_ops([arch[edge_label(to, frm)] for to, frm in EDGES])
        onehot = np.zeros((len(EDGES), len(OPS)), dtype=np.float32)
        onehot[np.arange(len(EDGES)), [OPS.index(op) for op in ops]] = 1.0
        counts = onehot.sum(axis=0)
        paths = live_paths(ops)
        encoding = np.zeros(len(_SEQUENCES), dtype=np.float32)
        for seq in paths:
            encoding[_SEQUENCE_INDEX[seq]] += 1.0
        convs = [sum(op in _CONV_WEIGHT for op in seq) for seq in paths] or [0]
        conv3 = [seq.count("nor_conv_3x3") for seq in paths] or [0]
        lengths = [len(seq) for seq in paths] or [0]
        stats = [len(EDGES) - counts[0], len(paths), any(set(seq) == {"skip_connect"} for seq in paths),
                 any(c == 0 for c in convs) and bool(paths), max(convs), min(convs), max(conv3), sum(conv3),
                 max(lengths), min(lengths), sum(_CONV_WEIGHT.get(op, 0.0) for op in ops)]
        return np.concatenate([onehot.ravel(), counts, encoding, np.asarray(stats, dtype=np.float32)])

    def units(self, arch: Arch, input_shape: Sequence[int], num_classes: int) -> list[Unit]:
        self._check_own(arch)
        ops = tuple(arch[edge_label(to, frm)] for to, frm in EDGES)
        c_in, h, w = (int(d) for d in input_shape)
        c = self.channels
        units = [Unit.make("stem", (c_in, h, w), -1, out=c)]
        for stage in range(3):
            if stage > 0:
                stride = 2 if min(h, w) >= 2 else 1
                units.append(Unit.make("reduction", (c, h, w), stage, out=2 * c, stride=stride))
                c, h, w = 2 * c, reduced_size(h, stride), reduced_size(w, stride)
            units.extend(Unit.make("cell", (c, h, w), stage, ops=ops) for _ in range(self.cells_per_stage))
        units.append(Unit.make("head", (c, h, w), 3, classes=int(num_classes)))
        return units

    def unit_parts(self, unit: Unit) -> list[Unit] | None:
        """A cell counts as the sum of its six edge operations (the node additions hold no parameters)."""
        if unit.kind != "cell":
            return None
        return [Unit.make("op", unit.in_shape, unit.stage, op=op) for op in unit.get("ops")]

    def build_unit(self, unit: Unit) -> nn.Module:
        c = unit.in_shape[0]
        if unit.kind == "stem":
            return nn.Sequential(nn.Conv2d(c, unit.get("out"), 3, padding=1, bias=False),
                                 nn.BatchNorm2d(unit.get("out")))
        if unit.kind == "reduction":
            return ResidualReduction(c, unit.get("out"), unit.get("stride"))
        if unit.kind == "cell":
            return Cell(dict(zip((edge_label(to, frm) for to, frm in EDGES), unit.get("ops"))), c)
        if unit.kind == "op":
            return make_op(unit.get("op"), c)
        if unit.kind == "head":
            return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(c, unit.get("classes")))
        raise ValueError(f"nb201: unknown unit kind {unit.kind!r}")
