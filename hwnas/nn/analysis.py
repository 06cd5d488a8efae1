"""Analytic statistics of a built model: parameters, MACs, activation memory and layer counts.

Counted with forward hooks over one batch-1 forward pass, so any model built from standard layers is
covered without per-space formulas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class ModelStats:
    """Statistics of one model at one input shape (batch size 1)."""

    params: int
    macs: int
    activation_elems: int
    peak_activation_elems: int
    conv_layers: int
    linear_layers: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _conv_macs(module: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return int(out[0].numel()) * (module.in_channels // module.groups) * kh * kw


@torch.no_grad()
def analyse(model: nn.Module, input_shape: Sequence[int]) -> ModelStats:
    """Counts parameters, multiply-accumulates and activation sizes of ``model`` for one input.

    Args:
        model: The model (its train/eval mode is restored afterwards).
        input_shape: ``(channels, height, width)`` of one input.
    """
    macs = 0
    activations = 0
    peak = 0
    convs = 0
    linears = 0

    def hook(module: nn.Module, _inputs, out) -> None:
        nonlocal macs, activations, peak, convs, linears
        if not isinstance(out, torch.Tensor):
            return
        elems = int(out[0].numel())
        activations += elems
        peak = max(peak, elems)
        if isinstance(module, nn.Conv2d):
            macs += _conv_macs(module, out)
            convs += 1
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
            linears += 1

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return ModelStats(params=int(params), macs=int(macs), activation_elems=activations,
                      peak_activation_elems=peak, conv_layers=convs, linear_layers=linears)
