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


def _forward_with_hook(model: nn.Module, modules: Sequence[nn.Module], hook, input_shape: Sequence[int],
                       device: str | torch.device) -> None:
    """One batch-1 forward pass of ``model`` in eval mode with ``hook`` on ``modules`` (removed, and the train/eval
    mode restored, afterwards)."""
    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


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

    _forward_with_hook(model, [m for m in model.modules() if not list(m.children())], hook, input_shape, device)
    params = sum(p.numel() for p in model.parameters())
    return ModelStats(params=int(params), **counts)


#: Per-operator terms of a model (:func:`op_terms`): what an additive latency model weighs. ``*_p16`` are the
#: same MACs or elements with every channel count padded up to a multiple of 16, as blocked memory layouts
#: compute them (onnxruntime's NCHWc on AVX-512: 24 channels cost as 32).
OP_TERMS = ("conv_n", "dw_n", "se_n", "pool_n", "dense_macs", "pw_macs", "pw_macs_p16", "dw_macs", "dw_macs_p16",
            "pw_elems", "dw_elems_p16", "se_elems", "se_macs", "pool_elems")
PAD = 16


def _pad(channels: int) -> int:
    return -(-int(channels) // PAD) * PAD


@torch.no_grad()
def op_terms(model: nn.Module, input_shape: Sequence[int], *, device: str | torch.device = "cpu") -> dict[str, float]:
    """The model's per-operator terms (:data:`OP_TERMS`) for one input: counts of convolutions (depthwise among
    them), squeeze-excite gates and pools; MACs of dense, pointwise and depthwise convolutions, raw and with
    padded channels; elements the pointwise and depthwise convolutions, the gates and the pools read and write.

    Squeeze-excite is recognised as :class:`hwnas.nn.blocks.SqueezeExcite` (its gate multiplies a whole tensor,
    which costs more than its two tiny convolutions suggest); its convolutions count as its ``se_macs``.
    """
    from hwnas.nn.blocks import SqueezeExcite

    terms = dict.fromkeys(OP_TERMS, 0.0)
    inside_se = {id(m) for se in model.modules() if isinstance(se, SqueezeExcite) for m in se.modules()}

    def conv(module: nn.Conv2d, inputs, out) -> None:
        c_in, h_in, w_in = inputs[0].shape[1:]
        c_out, h_out, w_out = out.shape[1:]
        kh, kw = module.kernel_size
        if id(module) in inside_se:
            terms["se_macs"] += c_out * (c_in // module.groups) * kh * kw * h_out * w_out
            return
        terms["conv_n"] += 1
        if module.groups > 1:
            terms["dw_n"] += 1
            terms["dw_macs"] += c_out * (c_in // module.groups) * kh * kw * h_out * w_out
            terms["dw_macs_p16"] += _pad(c_out) * kh * kw * h_out * w_out
            terms["dw_elems_p16"] += _pad(c_out) * (h_in * w_in + h_out * w_out)
        elif (kh, kw) == (1, 1):
            terms["pw_macs"] += c_in * c_out * h_out * w_out
            terms["pw_macs_p16"] += _pad(c_in) * _pad(c_out) * h_out * w_out
            terms["pw_elems"] += c_in * h_in * w_in + c_out * h_out * w_out
        else:
            terms["dense_macs"] += c_in * c_out * kh * kw * h_out * w_out

    def hook(module: nn.Module, inputs, out) -> None:
        if not isinstance(out, torch.Tensor) or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        if isinstance(module, nn.Conv2d):
            conv(module, inputs, out)
        elif isinstance(module, nn.Linear):
            terms["dense_macs"] += module.in_features * module.out_features
        elif isinstance(module, SqueezeExcite):
            terms["se_n"] += 1
            terms["se_elems"] += out[0].numel()
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) and id(module) not in inside_se:
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            terms["pool_n"] += 1
            terms["pool_elems"] += out[0].numel() * k * k
        elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and id(module) not in inside_se:
            terms["pool_n"] += 1
            terms["pool_elems"] += inputs[0][0].numel()

    watched = [m for m in model.modules() if not list(m.children()) or isinstance(m, SqueezeExcite)]
    _forward_with_hook(model, watched, hook, input_shape, device)
    return {k: float(v) for k, v in terms.items()}
