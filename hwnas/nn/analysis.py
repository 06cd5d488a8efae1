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
    macs_pointwise: int = 0
    macs_depthwise: int = 0
    macs_dense: int = 0
    leaf_modules: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _conv_macs(module: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return int(out[0].numel()) * (module.in_channels // module.groups) * kh * kw


@torch.no_grad()
def analyse(model: nn.Module, input_shape: Sequence[int], *, device: str | torch.device = "cpu") -> ModelStats:
    """Counts parameters, multiply-accumulates and activation sizes of ``model`` for one input.

    Args:
        model: The model (its train/eval mode is restored afterwards).
        input_shape: ``(channels, height, width)`` of one input.
        device: Device of the model; ``"meta"`` counts a model built under ``torch.device("meta")``
            without computing anything (several times faster).
    """
    counts = dict(macs=0, activation_elems=0, peak_activation_elems=0, conv_layers=0, linear_layers=0,
                  macs_pointwise=0, macs_depthwise=0, macs_dense=0, leaf_modules=0)

    def hook(module: nn.Module, _inputs, out) -> None:
        if not isinstance(out, torch.Tensor):
            return
        elems = int(out[0].numel())
        counts["leaf_modules"] += 1
        counts["activation_elems"] += elems
        counts["peak_activation_elems"] = max(counts["peak_activation_elems"], elems)
        if isinstance(module, nn.Conv2d):
            macs = _conv_macs(module, out)
            counts["macs"] += macs
            counts["conv_layers"] += 1
            kind = ("macs_depthwise" if module.groups > 1 else
                    "macs_pointwise" if module.kernel_size == (1, 1) else "macs_dense")
            counts[kind] += macs
        elif isinstance(module, nn.Linear):
            counts["macs"] += module.in_features * module.out_features
            counts["linear_layers"] += 1

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return ModelStats(params=int(params), **counts)
