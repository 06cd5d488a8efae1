"""A weight-sharing supernet of the ``nb201`` cell space: every candidate operation of every edge, once.

The macro skeleton (stem, cells, residual reductions, head) is the one ``space.build`` makes; each cell holds
all five candidate operations on each of its six edges, with weights of their own (the one-shot model of
SPOS / NAS-Bench-201's weight-sharing baselines). A sub-network runs one operation per edge, the same in
every cell, as the space's architectures do. :meth:`CellSupernet.extract` copies the chosen operations'
weights into the stand-alone model of the architecture, which then computes what the supernet computes with
that sub-network active (tested).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from hwnas.arch import Arch
from hwnas.spaces.nb201 import EDGES, OPS, edge_label, make_op
from hwnas.supernet.base import Supernet


class SuperCell(nn.Module):
    """A cell with every candidate operation on every edge; :meth:`forward` runs the given ones."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.labels = {f"e{to}_{frm}": edge_label(to, frm) for to, frm in EDGES}
        self.edges = nn.ModuleDict({name: nn.ModuleDict({op: make_op(op, channels) for op in OPS})
                                    for name in self.labels})

    def forward(self, x: torch.Tensor, choices: Mapping[str, Any]) -> torch.Tensor:
        nodes = [x]
        for to in range(1, 4):
            nodes.append(sum(self.edges[f"e{to}_{frm}"][choices[self.labels[f"e{to}_{frm}"]]](nodes[frm])
                             for frm in range(to)))
        return nodes[3]

    @torch.no_grad()
    def copy_into(self, target: nn.Module, choices: Mapping[str, Any]) -> None:
        for name, label in self.labels.items():
            target.edges[name].load_state_dict(self.edges[name][choices[label]].state_dict())


class CellSupernet(Supernet):
    """The ``nb201`` space as one network; :meth:`forward` runs the active (or a given) architecture.

    Args:
        space: A :class:`~hwnas.spaces.nb201.NB201Space` (any channels and cells per stage).
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of output logits.
    """

    space_name = "nb201"

    def __init__(self, space, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(space, input_shape, num_classes)
        # the skeleton is the same for every cell; a cell unit becomes a cell holding every operation
        self.units = nn.ModuleList(SuperCell(unit.in_shape[0]) if unit.kind == "cell" else space.build_unit(unit)
                                   for unit in space.units(self.largest(), self.input_shape, self.num_classes))

    # -- architectures ---------------------------------------------------------------------------------------
    def largest(self) -> Arch:
        """Every edge a 3x3 convolution (the most parameters and operations)."""
        return self._uniform("nor_conv_3x3")

    def smallest(self) -> Arch:
        """Every edge a skip connection (no parameters; ``none`` everywhere would compute nothing)."""
        return self._uniform("skip_connect")

    def _uniform(self, op: str) -> Arch:
        return self.space.parse("|" + "|+|".join("|".join(f"{op}~{i}" for i in range(to)) for to in range(1, 4))
                                + "|")

    # -- compute ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arch: Arch | Mapping[str, Any] | None = None) -> torch.Tensor:
        choices = self.choices(arch)
        for unit in self.units:
            x = unit(x, choices) if isinstance(unit, SuperCell) else unit(x)
        return x

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        """The stand-alone model of ``arch`` (``space.build``) holding this supernet's weights for it,
        batch-norm statistics included; in eval mode."""
        self.space._check_own(arch)
        model = self.space.build(arch, self.input_shape, self.num_classes)
        for own, target in zip(self.units, model):
            if isinstance(own, SuperCell):
                own.copy_into(target, arch)
            else:
                target.load_state_dict(own.state_dict())
        return model.eval()
