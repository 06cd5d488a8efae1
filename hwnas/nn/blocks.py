"""Layers the spaces are made of: conv-BN-activation, squeeze-excite, inverted residual."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1,
                act: bool = True) -> nn.Sequential:
    """Conv2d (same padding, no bias) -> BatchNorm2d -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al.): channel gates from globally pooled features."""

    def __init__(self, channels: int, *, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2/MnasNet block: 1x1 expand -> kxk depthwise -> [SE] -> 1x1 linear projection.

    The expansion convolution is omitted for an expansion ratio of 1; the identity shortcut is used when
    the stride is 1 and the channel count is kept.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, expand: int, stride: int, se: bool) -> None:
        super().__init__()
        mid = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_act(in_ch, mid, 1))
        layers.append(conv_bn_act(mid, mid, kernel, stride=stride, groups=mid))
        if se:
            layers.append(SqueezeExcite(mid))
        layers.append(conv_bn_act(mid, out_ch, 1, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


def reduced_size(size: int, stride: int) -> int:
    """Output size of a same-padded convolution with odd kernel and ``stride``."""
    return (size - 1) // stride + 1
