"""A weight-sharing supernet of the ``mobilenet`` space: every architecture is a sub-network of one model.

Each stage holds its deepest configuration at its widest width; a sub-network uses (Once-for-All / BigNAS):

* **elastic depth**: the leading blocks of a stage;
* **elastic width and expansion**: the leading channels of every weight (output width, expanded width);
* **elastic kernel**: the centre ``k x k`` of the largest depthwise kernel;
* **elastic squeeze-excite**: the block's SE weights (their leading channels) are used or skipped.

:meth:`MobileNetSupernet.extract` copies a sub-network's slices into the stand-alone model that
``space.build`` makes for that architecture; with the same batch-norm statistics both compute the same
function (tested), so a supernet estimate is the estimate of exactly the model a full training would build.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.arch import Arch
from hwnas.nn.blocks import InvertedResidual, SqueezeExcite, conv_bn_act
from hwnas.supernet.base import Supernet, SupernetError

__all__ = ["MobileNetSupernet", "SupernetError"]


def _bn(bn: nn.BatchNorm2d, x: torch.Tensor, channels: int) -> torch.Tensor:
    """Batch norm over the leading ``channels`` of ``bn`` (its running statistics updated in place)."""
    return F.batch_norm(x, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels],
                        bn.bias[:channels], bn.training, bn.momentum if bn.momentum is not None else 0.1, bn.eps)


def _centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The centre ``kernel x kernel`` of a square kernel weight."""
    full = weight.shape[-1]
    start = (full - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class ElasticBlock(nn.Module):
    """An inverted-residual block at its largest (``max_in`` -> ``max_in * max_expand`` -> ``max_out``,
    ``max_kernel``, with SE); :meth:`forward` runs any smaller configuration on the leading slices."""

    def __init__(self, max_in: int, max_out: int, *, max_kernel: int, max_expand: int, stride: int) -> None:
        super().__init__()
        max_mid = max_in * max_expand
        self.stride = int(stride)
        self.expand = nn.Conv2d(max_in, max_mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(max_mid)
        self.depthwise = nn.Conv2d(max_mid, max_mid, max_kernel, groups=max_mid, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(max_mid)
        self.se = SqueezeExcite(max_mid)
        self.project = nn.Conv2d(max_mid, max_out, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(max_out)

    def forward(self, x: torch.Tensor, *, out_ch: int, kernel: int, expand: int, se: bool) -> torch.Tensor:
        in_ch = x.shape[1]
        mid = in_ch * expand
        h = x
        if expand != 1:
            h = F.relu(_bn(self.expand_bn, F.conv2d(h, self.expand.weight[:mid, :in_ch]), mid))
        h = F.conv2d(h, _centre(self.depthwise.weight[:mid], kernel), stride=self.stride, padding=kernel // 2,
                     groups=mid)
        h = F.relu(_bn(self.depthwise_bn, h, mid))
        if se:
            hidden = _se_hidden(mid)
            gate = F.adaptive_avg_pool2d(h, 1)
            gate = F.relu(F.conv2d(gate, self.se.reduce.weight[:hidden, :mid], self.se.reduce.bias[:hidden]))
            gate = F.conv2d(gate, self.se.expand.weight[:mid, :hidden], self.se.expand.bias[:mid])
            h = h * torch.sigmoid(gate)
        h = _bn(self.project_bn, F.conv2d(h, self.project.weight[:out_ch, :mid]), out_ch)
        return h + x if self.stride == 1 and in_ch == out_ch else h

    @torch.no_grad()
    def copy_into(self, target: InvertedResidual, *, in_ch: int, kernel: int, expand: int, se: bool) -> None:
        """Copies this configuration's weight slices into a stand-alone block of the same configuration."""
        mid = in_ch * expand
        layers = list(target.body)
        if expand != 1:
            _copy_conv_bn(layers.pop(0), self.expand.weight[:mid, :in_ch], self.expand_bn, mid)
        _copy_conv_bn(layers.pop(0), _centre(self.depthwise.weight[:mid], kernel), self.depthwise_bn, mid)
        if se:
            block: SqueezeExcite = layers.pop(0)
            hidden = _se_hidden(mid)
            block.reduce.weight.copy_(self.se.reduce.weight[:hidden, :mid])
            block.reduce.bias.copy_(self.se.reduce.bias[:hidden])
            block.expand.weight.copy_(self.se.expand.weight[:mid, :hidden])
            block.expand.bias.copy_(self.se.expand.bias[:mid])
        projection = layers.pop(0)
        out_ch = projection[0].weight.shape[0]
        _copy_conv_bn(projection, self.project.weight[:out_ch, :mid], self.project_bn, out_ch)


def _se_hidden(channels: int) -> int:
    """Hidden width of the squeeze-excite of ``channels`` (as :class:`~hwnas.nn.blocks.SqueezeExcite`)."""
    return max(8, channels // 4)


@torch.no_grad()
def _copy_conv_bn(target: nn.Sequential, weight: torch.Tensor, bn: nn.BatchNorm2d, channels: int) -> None:
    conv, norm = target[0], target[1]
    conv.weight.copy_(weight)
    norm.weight.copy_(bn.weight[:channels])
    norm.bias.copy_(bn.bias[:channels])
    norm.running_mean.copy_(bn.running_mean[:channels])
    norm.running_var.copy_(bn.running_var[:channels])


class MobileNetSupernet(Supernet):
    """The ``mobilenet`` space as one network; :meth:`forward` runs the active (or a given) architecture.

    Args:
        space: A :class:`~hwnas.spaces.mobilenet.MobileNetSpace` (any options).
        input_shape: ``(C, H, W)`` of one input.
        num_classes: Number of output logits.
    """

    space_name = "mobilenet"

    def __init__(self, space, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(space, input_shape, num_classes)
        stem_stride, strides = space.stage_strides(self.input_shape)
        self.stem = conv_bn_act(self.input_shape[0], space.stem_channels, 3, stride=stem_stride)
        max_kernel, max_expand, max_depth = max(space.kernels), max(space.expansions), max(space.depths)
        stages = []
        channels = space.stem_channels
        for s, widths in enumerate(space.widths):
            blocks = []
            for b in range(max_depth):
                blocks.append(ElasticBlock(channels if b == 0 else max(widths), max(widths), max_kernel=max_kernel,
                                           max_expand=max_expand, stride=strides[s] if b == 0 else 1))
            stages.append(nn.ModuleList(blocks))
            channels = max(widths)
        self.stages = nn.ModuleList(stages)
        self.head = conv_bn_act(channels, space.head_channels, 1)
        self.classifier = nn.Linear(space.head_channels, self.num_classes)

    # -- architectures ---------------------------------------------------------------------------------------
    def largest(self) -> Arch:
        """The widest, deepest architecture with the largest kernels and expansions, all with SE."""
        return self._extreme(max, True)

    def smallest(self) -> Arch:
        """The narrowest, shallowest architecture with the smallest kernels and expansions, no SE."""
        return self._extreme(min, False)

    def _extreme(self, pick, se: bool) -> Arch:
        space = self.space
        choices: dict[str, Any] = {}
        for s, widths in enumerate(space.widths):
            choices[f"s{s}.width"] = pick(widths)
            choices[f"s{s}.depth"] = pick(space.depths)
            for b in range(choices[f"s{s}.depth"]):
                choices[f"s{s}.b{b}.kernel"] = pick(space.kernels)
                choices[f"s{s}.b{b}.expand"] = pick(space.expansions)
                choices[f"s{s}.b{b}.se"] = se
        return space.parse(space.format(choices))

    # -- compute ---------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arch: Arch | Mapping[str, Any] | None = None) -> torch.Tensor:
        choices = self.choices(arch)
        h = self.stem(x)
        for s, blocks in enumerate(self.stages):
            width = choices[f"s{s}.width"]
            for b in range(choices[f"s{s}.depth"]):
                h = blocks[b](h, out_ch=width, kernel=choices[f"s{s}.b{b}.kernel"],
                              expand=choices[f"s{s}.b{b}.expand"], se=choices[f"s{s}.b{b}.se"])
        h = self.head[2](_bn(self.head[1], F.conv2d(h, self.head[0].weight[:, :h.shape[1]]),
                             self.space.head_channels))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        """The stand-alone model of ``arch`` (``space.build``) holding this supernet's weights for it,
        batch-norm statistics included; in eval mode."""
        self.space._check_own(arch)
        model = self.space.build(arch, self.input_shape, self.num_classes)
        units = list(model)
        units[0].load_state_dict(self.stem.state_dict())
        index = 1
        channels = self.space.stem_channels
        for s, blocks in enumerate(self.stages):
            width = arch[f"s{s}.width"]
            for b in range(arch[f"s{s}.depth"]):
                blocks[b].copy_into(units[index], in_ch=channels, kernel=arch[f"s{s}.b{b}.kernel"],
                                    expand=arch[f"s{s}.b{b}.expand"], se=arch[f"s{s}.b{b}.se"])
                channels = width
                index += 1
        head = units[index]
        _copy_conv_bn(head[0], self.head[0].weight[:, :channels], self.head[1], self.space.head_channels)
        head[3].load_state_dict(self.classifier.state_dict())
        return model.eval()
