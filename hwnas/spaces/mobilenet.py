"""``mobilenet``: a MnasNet/ProxylessNAS-style space of inverted-residual blocks.

Per stage: a width (output channels) and a depth (number of blocks). Per block: depthwise kernel size
{3, 5, 7}, expansion ratio {1, 3, 6} and an optional squeeze-excite. The macro skeleton is fixed:
stem conv 3x3 -> stages -> 1x1 head conv -> global average pool -> linear classifier.

Canonical string: stages separated by ``/``; a stage is ``<width>:<block>.<block>...``; a block is
``k<kernel>e<expand>`` with an ``se`` suffix when it has squeeze-excite, e.g.::

    16:k3e1/24:k5e3.k3e6se/32:k7e6/48:k3e3se.k3e3

Strides adapt to the input: a stage reduces (stride 2 in its first block) only if its nominal stride is 2
and the feature map is still at least 2x2, so an 8x8 digit is reduced to 1x1 at most, never below; the stem
reduces only inputs larger than 64x64.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from hwnas.arch import Arch
from hwnas.errors import ArchError
from hwnas.nn.blocks import InvertedResidual, conv_bn_act, reduced_size
from hwnas.spaces import register_space
from hwnas.spaces.base import Decision, SearchSpace, Unit, whole_number

_BLOCK_RE = re.compile(r"^k(\d+)e(\d+)(se)?$")
#: Ranges of the constructor's options: stages, blocks per stage, depthwise kernel and expansion ratio.
MAX_STAGES = 16
MAX_DEPTH = 16
MAX_KERNEL = 15
MAX_EXPANSION = 16


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def choices(name: str, values: Any, *, maximum: int) -> tuple[int, ...]:
    """``values`` as a tuple of distinct whole numbers in ``1..maximum`` (a decision's choices); ValueError
    naming the option otherwise."""
    if not _is_list(values) or not values:
        raise ValueError(f"{name} must be a non-empty list of whole numbers, got {values!r}")
    numbers = tuple(whole_number(name, v, maximum=maximum) for v in values)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"{name} lists a value twice: {list(numbers)}")
    return numbers


@register_space("mobilenet")
class MobileNetSpace(SearchSpace):
    """MnasNet/ProxylessNAS-style inverted-residual blocks: per-stage width and depth, per-block k/e/SE.

    Args:
        widths: Per stage, the allowed output channel counts.
        depths: Allowed numbers of blocks per stage.
        kernels: Allowed depthwise kernel sizes.
        expansions: Allowed expansion ratios.
        strides: Nominal stride of each stage (applied in its first block, adapted to the input size).
        stem_channels: Output channels of the stem convolution.
        head_channels: Channels of the 1x1 convolution before pooling.
    """

    name = "mobilenet"

    def __init__(self, *, widths: Sequence[Sequence[int]] = ((16, 24, 32), (24, 32, 48), (32, 48, 64),
                                                            (48, 64, 96)),
                 depths: Sequence[int] = (1, 2, 3), kernels: Sequence[int] = (3, 5, 7),
                 expansions: Sequence[int] = (1, 3, 6), strides: Sequence[int] = (1, 2, 2, 2),
                 stem_channels: int = 16, head_channels: int = 128) -> None:
        if not _is_list(widths) or not 1 <= len(widths) <= MAX_STAGES:
            raise ValueError(f"widths must be a list of 1..{MAX_STAGES} stages (a list of widths each), got {widths!r}")
        if not _is_list(strides) or len(widths) != len(strides):
            raise ValueError("widths and strides need one entry per stage")
        self.widths = tuple(choices(f"widths[{s}]", ws, maximum=4096) for s, ws in enumerate(widths))
        self.depths = choices("depths", depths, maximum=MAX_DEPTH)
        self.kernels = choices("kernels", kernels, maximum=MAX_KERNEL)
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd (a depthwise kernel keeps the feature map's size), got "
                             f"{list(self.kernels)}")
        self.expansions = choices("expansions", expansions, maximum=MAX_EXPANSION)
        self.strides = tuple(whole_number(f"strides[{s}]", v, maximum=2) for s, v in enumerate(strides))
        self.stem_channels = whole_number("stem_channels", stem_channels)
        self.head_channels = whole_number("head_channels", head_channels)
        decisions: list[Decision] = []
        for s, stage_widths in enumerate(self.widths):
            decisions.append(Decision(f"s{s}.width", stage_widths))
            decisions.append(Decision(f"s{s}.depth", self.depths))
            for b in range(max(self.depths)):
                decisions.append(Decision(f"s{s}.b{b}.kernel", self.kernels))
                decisions.append(Decision(f"s{s}.b{b}.expand", self.expansions))
                decisions.append(Decision(f"s{s}.b{b}.se", (False, True)))
        self._decisions = tuple(decisions)

    @property
    def num_stages(self) -> int:
        return len(self.widths)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def is_active(self, decision: Decision, chosen: Mapping[str, Any]) -> bool:
        parts = decision.label.split(".")
        if len(parts) != 3:
            return True
        stage, block = parts[0], int(parts[1][1:])
        return block < chosen[f"{stage}.depth"]

    def size(self) -> int:
        per_block = len(self.kernels) * len(self.expansions) * 2
        per_stage = sum(per_block ** d for d in self.depths)
        return math.prod(len(ws) * per_stage for ws in self.widths)

    # -- strings ---------------------------------------------------------------------------------------------
    def format(self, choices: Mapping[str, Any]) -> str:
        stages = []
        for s in range(self.num_stages):
            blocks = []
            for b in range(choices[f"s{s}.depth"]):
                se = "se" if choices[f"s{s}.b{b}.se"] else ""
                blocks.append(f"k{choices[f's{s}.b{b}.kernel']}e{choices[f's{s}.b{b}.expand']}{se}")
            stages.append(f"{choices[f's{s}.width']}:{'.'.join(blocks)}")
        return "/".join(stages)

    def parse_choices(self, string: str) -> dict[str, Any]:
        stages = string.split("/")
        if len(stages) != self.num_stages:
            raise ArchError(f"mobilenet: expected {self.num_stages} stages separated by '/', "
                            f"got {len(stages)} in {string!r}")
        choices: dict[str, Any] = {}
        for s, stage in enumerate(stages):
            width, sep, body = stage.partition(":")
            if not sep or not width.isdigit():
                raise ArchError(f"mobilenet: stage {s} {stage!r} is not '<width>:<blocks>'")
            if int(width) not in self.widths[s]:
                raise ArchError(f"mobilenet: stage {s} width {width} is not one of {list(self.widths[s])}")
            blocks = body.split(".") if body else []
            if len(blocks) not in self.depths:
                raise ArchError(f"mobilenet: stage {s} has {len(blocks)} blocks; allowed depths are "
                                f"{list(self.depths)}")
            choices[f"s{s}.width"] = int(width)
            choices[f"s{s}.depth"] = len(blocks)
            for b, block in enumerate(blocks):
                match = _BLOCK_RE.match(block)
                if not match:
                    raise ArchError(f"mobilenet: stage {s} block {b} {block!r} is not 'k<K>e<E>[se]'")
                kernel, expand = int(match.group(1)), int(match.group(2))
                if kernel not in self.kernels:
                    raise ArchError(f"mobilenet: stage {s} block {b} kernel {kernel} is not one of "
                                    f"{list(self.kernels)}")
                if expand not in self.expansions:
                    raise ArchError(f"mobilenet: stage {s} block {b} expansion {expand} is not one of "
                                    f"{list(self.expansions)}")
                choices[f"s{s}.b{b}.kernel"] = kernel
                choices[f"s{s}.b{b}.expand"] = expand
                choices[f"s{s}.b{b}.se"] = match.group(3) is not None
        return choices

    # -- structure features ----------------------------------------------------------------------------------
    def structure_names(self) -> list[str]:
        """Whole network: ``depth`` (blocks), ``kernel=<k>`` / ``expand=<e>`` (blocks with that kernel /
        expansion), ``se`` (blocks with squeeze-excite); per stage ``s<i>.kernel_sum``, ``s<i>.expand_sum``,
        ``s<i>.se`` (sums over its blocks: they grow with both the depth and the per-block choices)."""
        return (["depth"] + [f"kernel={k}" for k in self.kernels] + [f"expand={e}" for e in self.expansions]
                + ["se"] + [f"s{s}.{name}" for s in range(self.num_stages)
                            for name in ("kernel_sum", "expand_sum", "se")])

    def structure(self, arch: Arch) -> np.ndarray:
        self._check_own(arch)
        blocks = [(arch[f"s{s}.b{b}.kernel"], arch[f"s{s}.b{b}.expand"], arch[f"s{s}.b{b}.se"], s)
                  for s in range(self.num_stages) for b in range(arch[f"s{s}.depth"])]
        totals = ([len(blocks)] + [sum(k == kernel for kernel, _, _, _ in blocks) for k in self.kernels]
                  + [sum(e == expand for _, expand, _, _ in blocks) for e in self.expansions]
                  + [sum(se for _, _, se, _ in blocks)])
        stages = np.zeros((self.num_stages, 3))
        for kernel, expand, se, stage in blocks:
            stages[stage] += (kernel, expand, se)
        return np.concatenate([np.asarray(totals, dtype=float), stages.ravel()]).astype(np.float32)

    # -- model -----------------------------------------------------------------------------------------------
    def stage_strides(self, input_shape: Sequence[int]) -> tuple[int, list[int]]:
        """The stem stride and the actual stride of each stage for an input of ``(C, H, W)``."""
        size = min(int(input_shape[1]), int(input_shape[2]))
        stem = 2 if size > 64 else 1
        size = reduced_size(size, stem)
        strides = []
        for nominal in self.strides:
            stride = nominal if size >= 2 else 1
            strides.append(stride)
            size = reduced_size(size, stride)
        return stem, strides

    def units(self, arch: Arch, input_shape: Sequence[int], num_classes: int) -> list[Unit]:
        self._check_own(arch)
        stem_stride, strides = self.stage_strides(input_shape)
        channels, h, w = (int(d) for d in input_shape)
        units = [Unit.make("stem", (channels, h, w), -1, out=self.stem_channels, stride=stem_stride)]
        channels, h, w = self.stem_channels, reduced_size(h, stem_stride), reduced_size(w, stem_stride)
        for s in range(self.num_stages):
            width = arch[f"s{s}.width"]
            for b in range(arch[f"s{s}.depth"]):
                stride = strides[s] if b == 0 else 1
                units.append(Unit.make("ir", (channels, h, w), s, out=width, kernel=arch[f"s{s}.b{b}.kernel"],
                                       expand=arch[f"s{s}.b{b}.expand"], stride=stride,
                                       se=arch[f"s{s}.b{b}.se"]))
                channels, h, w = width, reduced_size(h, stride), reduced_size(w, stride)
        units.append(Unit.make("head", (channels, h, w), self.num_stages, hidden=self.head_channels,
                               classes=int(num_classes)))
        return units

    def build_unit(self, unit: Unit) -> nn.Module:
        c_in = unit.in_shape[0]
        if unit.kind == "stem":
            return conv_bn_act(c_in, unit.get("out"), 3, stride=unit.get("stride"))
        if unit.kind == "ir":
            return InvertedResidual(c_in, unit.get("out"), kernel=unit.get("kernel"), expand=unit.get("expand"),
                                    stride=unit.get("stride"), se=unit.get("se"))
        if unit.kind == "head":
            return nn.Sequential(conv_bn_act(c_in, unit.get("hidden"), 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(unit.get("hidden"), unit.get("classes")))
        raise ValueError(f"mobilenet: unknown unit kind {unit.kind!r}")
