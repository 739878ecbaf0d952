"""OFA ResNet-50 (the space NAAS searches): elastic supernet, bottleneck blocks, extracted plain network."""

from __future__ import annotations

import copy
from collections import OrderedDict, defaultdict
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwmodel import Layer

from ._utils import conv_out_size, make_divisible, pool_out_size
from .elastic_ops import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from .layers import ElasticConvBnAct, ProfiledLayer, conv_layer, linear_layer
from .registry import register_supernet
from .resnet_space import ResNetConfig, ResNetSpace
from .sorting import ChannelPermutations, apply_permutations, importance_order

__all__ = ["Bottleneck", "ElasticBottleneck", "ResNet", "OFAResNet50"]

#: ResNet-50 output widths and first-block strides per stage, stem width 64 (He et al., CVPR 2016, Table 1).
STAGE_WIDTHS: tuple[int, ...] = (256, 512, 1024, 2048)
STAGE_STRIDES: tuple[int, ...] = (1, 2, 2, 2)
STEM_WIDTH: int = 64


class Residual(nn.Module):
    """``x + body(x)`` with no activation after the sum (the ResNet-D stem's middle conv)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Bottleneck(nn.Module):
    """Plain bottleneck: 1x1 -> 3x3 (stride) -> 1x1, shortcut identity or avg-pool + 1x1 conv (ResNet-D)."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module, conv3: nn.Module, downsample: nn.Module | None):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.downsample = conv1, conv2, conv3, downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


class ElasticDownsample(nn.Module):
    """ResNet-D shortcut with elastic channels: avg-pool (stride > 1) -> 1x1 conv -> BN.

    He et al., "Bag of Tricks for Image Classification with CNNs", CVPR 2019, Sec. 4.1 (ResNet-D).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.avg_pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else None
        self.conv = ElasticConv2d(in_channels, out_channels, 1)
        self.bn = ElasticBatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        if self.avg_pool is not None:
            x = self.avg_pool(x)
        return self.bn(self.conv(x, out_channels))

    def extract(self, in_channels: int, out_channels: int) -> nn.Sequential:
        parts = [] if self.avg_pool is None else [("avg_pool", copy.deepcopy(self.avg_pool))]
        parts += [("conv", self.conv.extract(in_channels, out_channels)), ("bn", self.bn.extract(out_channels))]
        return nn.Sequential(OrderedDict(parts))


class ElasticBottleneck(nn.Module):
    """Bottleneck with elastic in/out width and bottleneck ratio; middle ``make_divisible(round(C_out * e), 8)``."""

    def __init__(
        self,
        in_channels: int,
        out_widths: tuple[int, ...],
        expand_ratios: tuple[float, ...],
        stride: int,
        identity_shortcut: bool,
    ):
        super().__init__()
        self.out_widths, self.expand_ratios, self.stride = tuple(out_widths), tuple(sorted(expand_ratios)), stride
        max_out = max(out_widths)
        max_mid = self.mid_channels(max_out, self.expand_ratios[-1])
        self.conv1 = ElasticConvBnAct(in_channels, max_mid, 1)
        self.conv2 = ElasticConvBnAct(max_mid, max_mid, 3, stride)
        self.conv3 = ElasticConvBnAct(max_mid, max_out, 1, act_layer=None)
        self.downsample = None if identity_shortcut else ElasticDownsample(in_channels, max_out, stride)
        self.active_out_channels = max_out
        self.active_expand_ratio = self.expand_ratios[-1]

    @staticmethod
    def mid_channels(out_channels: int, expand_ratio: float) -> int:
        return make_divisible(round(out_channels * expand_ratio), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, mid = self.active_out_channels, self.mid_channels(self.active_out_channels, self.active_expand_ratio)
        shortcut = self.downsample(x, out) if self.downsample is not None else x
        return F.relu(self.conv3(self.conv2(self.conv1(x, mid), mid), out) + shortcut)

    def extract(self, in_channels: int) -> Bottleneck:
        out, mid = self.active_out_channels, self.mid_channels(self.active_out_channels, self.active_expand_ratio)
        return Bottleneck(
            self.conv1.extract(in_channels, mid),
            self.conv2.extract(mid, mid),
            self.conv3.extract(mid, out),
            self.downsample.extract(in_channels, out) if self.downsample is not None else None,
        )

    def profile_layers(self, name: str, in_channels: int, in_size: int) -> tuple[list[ProfiledLayer], int]:
        out, mid = self.active_out_channels, self.mid_channels(self.active_out_channels, self.active_expand_ratio)
        out_size = conv_out_size(in_size, 3, self.stride)
        layers = [
            conv_layer(f"{name}.conv1", in_channels, mid, 1, 1, in_size),
            conv_layer(f"{name}.conv2", mid, mid, 3, self.stride, out_size),
            conv_layer(f"{name}.conv3", mid, out, 1, 1, out_size),
        ]
        if self.downsample is not None:
            pooled = pool_out_size(in_size, self.stride, self.stride, ceil_mode=True) if self.stride > 1 else in_size
            layers.append(conv_layer(f"{name}.downsample", in_channels, out, 1, 1, pooled))
        return layers, out_size

    def sort_channels(self, keep: int = 0) -> ChannelPermutations:
        """Sort conv2's outputs by conv3's input-weight L1 norm, then conv1's outputs by conv2's (OFA's order).

        The nested widths are every middle width the block can take (all output widths x expand ratios).
        """
        widths = sorted({self.mid_channels(w, e) for w in self.out_widths for e in self.expand_ratios}, reverse=True)
        bn = ("weight", "bias", "running_mean", "running_var")
        perms: ChannelPermutations = defaultdict(list)
        for reader, writer in (("conv3", "conv2"), ("conv2", "conv1")):
            reader_weight = getattr(self, reader).conv.weight
            idx = importance_order(reader_weight.abs().sum((0, 2, 3)), widths, keep)
            step = {f"{reader}.conv.weight": [(1, idx)], f"{writer}.conv.weight": [(0, idx)]}
            step.update({f"{writer}.bn.{n}": [(0, idx)] for n in bn})
            apply_permutations(self, step)
            for n, steps in step.items():
                perms[n] += steps
        return dict(perms)


class ResNet(nn.Module):
    """A plain ResNet (what ``OFAResNet50.extract`` returns): only standard torch layers."""

    def __init__(self, input_stem: list[nn.Module], blocks: list[nn.Module], classifier: nn.Module):
        super().__init__()
        self.input_stem = nn.Sequential(*input_stem)
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        self.blocks = nn.Sequential(*blocks)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.max_pooling(self.input_stem(x)))
        return self.classifier(x.mean((2, 3)))


@register_supernet
class OFAResNet50(nn.Module):
    """OFA's elastic ResNet-50-D (``OFAResNets`` of the ``ofa`` package; the NAAS network space).

    Deep stem (3x3/2 to ``64w/2``, residual 3x3, 3x3 to ``64w``) -> max-pool -> 4 stages of
    ``(2, 2, 4, 2) + max(depth_list)`` bottlenecks with avg-pool shortcuts -> pool -> dropout -> linear.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        depth_list: tuple[int, ...] = (0, 1, 2),
        expand_list: tuple[float, ...] = (0.2, 0.25, 0.35),
        width_mult_list: tuple[float, ...] = (0.65, 0.8, 1.0),
        dropout: float = 0.0,
    ):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.space = ResNetSpace(depth_list, expand_list, width_mult_list)
        self.num_classes = num_classes
        mults = self.space.width_mult_list
        self.in_widths = tuple(make_divisible(STEM_WIDTH * m, 8) for m in mults)
        self.stem_widths = tuple(make_divisible(c // 2, 8) for c in self.in_widths)
        self.stage_widths = tuple(tuple(make_divisible(w * m, 8) for m in mults) for w in STAGE_WIDTHS)
        self.input_stem = nn.ModuleList(
            [
                ElasticConvBnAct(3, max(self.stem_widths), 3, 2),
                ElasticConvBnAct(max(self.stem_widths), max(self.stem_widths), 3, 1),
                ElasticConvBnAct(max(self.stem_widths), max(self.in_widths), 3, 1),
            ]
        )
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        blocks, in_widths = [], self.in_widths
        for n, widths, stride in zip(self.space.stage_blocks, self.stage_widths, STAGE_STRIDES):
            for i in range(n):
                s = stride if i == 0 else 1
                blocks.append(
                    ElasticBottleneck(max(in_widths), widths, self.space.expand_list, s, s == 1 and in_widths == widths)
                )
                in_widths = widths
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Sequential()
        self.classifier.add_module("dropout", nn.Dropout(dropout))
        self.classifier.add_module("linear", ElasticLinear(max(in_widths), num_classes))
        self.set_active(self.space.max_config())

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (its :func:`supernet.supernet_spec`)."""
        space = self.space
        return {"num_classes": self.num_classes, "depth_list": list(space.depth_list),
                "expand_list": list(space.expand_list), "width_mult_list": list(space.width_mult_list),
                "dropout": float(self.classifier.dropout.p)}

    # --- active subnet ------------------------------------------------------------------------------
    def set_active(self, cfg: ResNetConfig) -> None:
        """Make the forward run subnet ``cfg`` (its resolution is the caller's business)."""
        self.space.validate(cfg)
        stage_of = [s for s, n in enumerate(self.space.stage_blocks) for _ in range(n)]
        for block, e, s in zip(self.blocks, cfg.e, stage_of):
            block.active_expand_ratio = e
            block.active_out_channels = self.stage_widths[s][cfg.w[s + 2]]
        self.active_config = copy.deepcopy(cfg)

    def _stem_channels(self, cfg: ResNetConfig) -> tuple[int, int, bool]:
        return self.stem_widths[cfg.w[0]], self.in_widths[cfg.w[1]], cfg.d[0] < self.space.max_depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0, c1, skip = self._stem_channels(self.active_config)
        x = self.input_stem[0](x, c0)
        if not skip:
            x = x + self.input_stem[1](x, c0)
        x = self.max_pooling(self.input_stem[2](x, c1))
        for i in self.space.active_blocks(self.active_config):
            x = self.blocks[i](x)
        return self.classifier(x.mean((2, 3)))

    def extract(self, cfg: ResNetConfig | None = None) -> ResNet:
        """A standalone ``ResNet`` holding subnet ``cfg``'s sliced weights and BN stats."""
        previous = self.active_config
        self.set_active(cfg or previous)
        try:
            c0, c1, skip = self._stem_channels(self.active_config)
            stem = [self.input_stem[0].extract(3, c0)]
            if not skip:
                stem.append(Residual(self.input_stem[1].extract(c0, c0)))
            stem.append(self.input_stem[2].extract(c0, c1))
            blocks, in_ch = [], c1
            for i in self.space.active_blocks(self.active_config):
                blocks.append(self.blocks[i].extract(in_ch))
                in_ch = self.blocks[i].active_out_channels
            classifier = nn.Sequential()
            classifier.add_module("dropout", copy.deepcopy(self.classifier.dropout))
            classifier.add_module("linear", self.classifier.linear.extract(in_ch))
            net = ResNet(stem, blocks, classifier)
        finally:
            self.set_active(previous)
        return net.train(self.training)

    # --- shapes and costs ---------------------------------------------------------------------------
    def profile_layers(self, cfg: ResNetConfig, resolution: int | None = None) -> list[ProfiledLayer]:
        """Every conv and the linear of subnet ``cfg`` with its non-weight parameter count."""
        self.space.validate(cfg)
        c0, c1, skip = self._stem_channels(cfg)
        size = conv_out_size(resolution or cfg.r, 3, 2)
        layers = [conv_layer("input_stem.0", 3, c0, 3, 2, size)]
        if not skip:
            layers.append(conv_layer("input_stem.1", c0, c0, 3, 1, size))
        layers.append(conv_layer("input_stem.2", c0, c1, 3, 1, size))
        size = pool_out_size(size, 3, 2, 1)
        previous = self.active_config
        self.set_active(cfg)
        try:
            in_ch = c1
            for i in self.space.active_blocks(cfg):
                block_layers, size = self.blocks[i].profile_layers(f"blocks.{i}", in_ch, size)
                layers += block_layers
                in_ch = self.blocks[i].active_out_channels
        finally:
            self.set_active(previous)
        layers.append(linear_layer("classifier", in_ch, self.num_classes))
        return layers

    def layer_shapes(self, cfg: ResNetConfig, resolution: int | None = None) -> list[Layer]:
        """``hwmodel.Layer`` of every conv and the linear (count 1 each; merge with ``merge_layers``)."""
        return [layer for layer, _ in self.profile_layers(cfg, resolution)]

    # --- training utilities -------------------------------------------------------------------------
    def sort_channels(self, keep: int = 0) -> ChannelPermutations:
        """Importance-sort every bottleneck's middle channels in place; returns the permutations applied.

        ``keep = k`` keeps the channel sets of the ``k`` largest-but-one middle widths (over all width and
        expand choices); a ``keep`` of at least the number of such widths preserves every subnet's function.
        """
        perms: ChannelPermutations = {}
        for i, block in enumerate(self.blocks):
            perms.update({f"blocks.{i}.{n}": steps for n, steps in block.sort_channels(keep).items()})
        return perms

    def load_ofa_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True):
        """Load a checkpoint in the reference ``ofa`` package's ``OFAResNets`` layout."""
        from .ofa_interop import convert_ofa_state_dict

        return self.load_state_dict(convert_ofa_state_dict(state_dict), strict=strict)
