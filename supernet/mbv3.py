"""OFA MobileNetV3: the elastic supernet, its MBConv blocks and the plain network a config extracts to."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import torch
import torch.nn as nn

from hwmodel import Layer

from ._utils import conv_out_size, make_divisible
from .elastic_ops import ElasticSqueezeExcite, SqueezeExcite
from .layers import ElasticConvBnAct, ElasticDwConvBnAct, ProfiledLayer, conv_bn_act, conv_layer, linear_layer
from .mbv3_space import MBV3Config, MBV3Space
from .registry import register_supernet
from .sorting import ChannelPermutations, apply_permutations, importance_order

__all__ = ["MBConv", "ElasticMBConv", "MobileNetV3", "OFAMobileNetV3"]

#: Widths at width 1.0: stem, fixed first block, 5 elastic stages, final expand, feature mix
#: (Howard et al., "Searching for MobileNetV3", ICCV 2019, Table 1; OFA repo ``ofa_mbv3.py``).
BASE_WIDTHS: tuple[int, ...] = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
#: Per elastic stage: first-block stride, activation, squeeze-excite (MobileNetV3-Large, Table 1).
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2)
STAGE_ACTS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU, nn.Hardswish, nn.Hardswish, nn.Hardswish)
STAGE_SE: tuple[bool, ...] = (False, True, False, True, True)


class MBConv(nn.Module):
    """Plain inverted-residual block: [1x1 expand] -> depthwise -> [SE] -> 1x1 project (+ identity)."""

    def __init__(
        self,
        inverted_bottleneck: nn.Sequential | None,
        depth_conv: nn.Sequential,
        se: SqueezeExcite | None,
        point_linear: nn.Sequential,
        has_residual: bool,
    ):
        super().__init__()
        self.inverted_bottleneck = inverted_bottleneck
        self.depth_conv = depth_conv
        self.se = se
        self.point_linear = point_linear
        self.has_residual = has_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inverted_bottleneck(x) if self.inverted_bottleneck is not None else x
        y = self.depth_conv(y)
        if self.se is not None:
            y = self.se(y)
        y = self.point_linear(y)
        return x + y if self.has_residual else y


class ElasticMBConv(nn.Module):
    """MBConv with elastic kernel and expand ratio; middle width ``make_divisible(round(C_in * e), 8)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: tuple[int, ...],
        expand_ratios: tuple[int, ...],
        stride: int,
        act_layer: type[nn.Module],
        use_se: bool,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes, self.expand_ratios = tuple(sorted(kernel_sizes)), tuple(sorted(expand_ratios))
        max_mid = self.mid_channels(in_channels, self.expand_ratios[-1])
        self.inverted_bottleneck = (
            ElasticConvBnAct(in_channels, max_mid, 1, act_layer=act_layer) if self.expand_ratios[-1] != 1 else None
        )
        self.depth_conv = ElasticDwConvBnAct(max_mid, self.kernel_sizes, stride, act_layer)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.point_linear = ElasticConvBnAct(max_mid, out_channels, 1, act_layer=None)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.active_kernel_size = self.kernel_sizes[-1]
        self.active_expand_ratio = self.expand_ratios[-1]

    @staticmethod
    def mid_channels(in_channels: int, expand_ratio: float) -> int:
        return make_divisible(round(in_channels * expand_ratio), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.inverted_bottleneck is not None:
            y = self.inverted_bottleneck(x, self.mid_channels(x.shape[1], self.active_expand_ratio))
        y = self.depth_conv(y, self.active_kernel_size)
        if self.se is not None:
            y = self.se(y)
        y = self.point_linear(y, self.out_channels)
        return x + y if self.has_residual else y

    def extract(self, in_channels: int) -> MBConv:
        mid = self.mid_channels(in_channels, self.active_expand_ratio)
        return MBConv(
            self.inverted_bottleneck.extract(in_channels, mid) if self.inverted_bottleneck is not None else None,
            self.depth_conv.extract(mid, self.active_kernel_size),
            self.se.extract(mid) if self.se is not None else None,
            self.point_linear.extract(mid, self.out_channels),
            self.has_residual,
        )

    def profile_layers(self, name: str, in_channels: int, in_size: int) -> tuple[list[ProfiledLayer], int]:
        mid = self.mid_channels(in_channels, self.active_expand_ratio)
        k, out_size = self.active_kernel_size, conv_out_size(in_size, self.active_kernel_size, self.stride)
        layers = []
        if self.inverted_bottleneck is not None:
            layers.append(conv_layer(f"{name}.expand", in_channels, mid, 1, 1, in_size))
        layers.append(conv_layer(f"{name}.dw", mid, mid, k, self.stride, out_size, depthwise=True))
        if self.se is not None:
            se_mid = self.se.mid_channels(mid)
            layers.append(conv_layer(f"{name}.se_reduce", mid, se_mid, 1, 1, 1, bias=True, bn=False))
            layers.append(conv_layer(f"{name}.se_expand", se_mid, mid, 1, 1, 1, bias=True, bn=False))
        layers.append(conv_layer(f"{name}.project", mid, self.out_channels, 1, 1, out_size))
        return layers, out_size

    def sort_channels(self, keep: int = 0) -> ChannelPermutations:
        """Sort middle (and SE-reduced) channels by the L1 norm of the weights reading them (``importance_order``)."""
        ratios = self.expand_ratios[::-1]
        widths = [self.mid_channels(self.in_channels, e) for e in ratios]
        idx = importance_order(self.point_linear.conv.weight.abs().sum((0, 2, 3)), widths, keep)
        perms: ChannelPermutations = defaultdict(list)
        out_dim0 = ["depth_conv.conv.weight"] + [
            f"depth_conv.bn.{n}" for n in ("weight", "bias", "running_mean", "running_var")
        ]
        if self.inverted_bottleneck is not None:
            out_dim0 += ["inverted_bottleneck.conv.weight"]
            out_dim0 += [f"inverted_bottleneck.bn.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        for n in out_dim0:
            perms[n].append((0, idx))
        perms["point_linear.conv.weight"].append((1, idx))
        if self.se is not None:
            perms["se.reduce.weight"].append((1, idx))
            perms["se.expand.weight"].append((0, idx))
            perms["se.expand.bias"].append((0, idx))
        apply_permutations(self, perms)
        if self.se is not None:
            se_widths = [self.se.mid_channels(w) for w in widths]
            se_idx = importance_order(self.se.expand.weight.abs().sum((0, 2, 3)), se_widths, keep)
            se_perms = {
                "se.expand.weight": [(1, se_idx)],
                "se.reduce.weight": [(0, se_idx)],
                "se.reduce.bias": [(0, se_idx)],
            }
            apply_permutations(self, se_perms)
            for n, steps in se_perms.items():
                perms[n] += steps
        return dict(perms)


class MobileNetV3(nn.Module):
    """A plain MobileNetV3 (what ``OFAMobileNetV3.extract`` returns): only standard torch layers."""

    def __init__(
        self,
        first_conv: nn.Module,
        blocks: list[nn.Module],
        final_expand_layer: nn.Module,
        feature_mix_layer: nn.Module,
        classifier: nn.Module,
    ):
        super().__init__()
        self.first_conv = first_conv
        self.blocks = nn.Sequential(*blocks)
        self.final_expand_layer = final_expand_layer
        self.feature_mix_layer = feature_mix_layer
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(self.blocks(self.first_conv(x)))
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))


@register_supernet
class OFAMobileNetV3(nn.Module):
    """The OFA MobileNetV3 supernet (Cai et al., "Once-for-All", ICLR 2020), architecture-identical to
    ``ofa.imagenet_classification.elastic_nn.networks.OFAMobileNetV3``.

    Stem 3x3/2 -> fixed MBConv (e1, k3) -> 5 elastic stages -> 1x1 to 960 -> pool -> 1x1 to 1280 ->
    dropout -> linear. ``set_active(cfg)`` selects the subnet the forward runs; ``extract(cfg)`` copies it
    out as a plain ``MobileNetV3``. BN uses momentum 0.1, eps 1e-5 (OFA's ``bn_param``).
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        ks_list: tuple[int, ...] = (3, 5, 7),
        expand_list: tuple[int, ...] = (3, 4, 6),
        depth_list: tuple[int, ...] = (2, 3, 4),
        dropout: float = 0.1,
    ):
        super().__init__()
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
            raise ValueError(f"width_mult must be a positive number (OFA publishes 1.0 and 1.2), got {width_mult!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.space = MBV3Space(ks_list, expand_list, depth_list)
        self.width_mult, self.num_classes = float(width_mult), num_classes
        widths = [make_divisible(w * width_mult, 8) for w in BASE_WIDTHS]
        self.widths = widths
        self.first_conv = conv_bn_act(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.Hardswish(inplace=True)
        )
        first_block = MBConv(
            None,
            conv_bn_act(
                nn.Conv2d(widths[0], widths[0], 3, 1, 1, groups=widths[0], bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
            ),
            None,
            conv_bn_act(nn.Conv2d(widths[0], widths[1], 1, bias=False), nn.BatchNorm2d(widths[1]), None),
            widths[0] == widths[1],
        )
        blocks: list[nn.Module] = [first_block]
        in_ch = widths[1]
        for out_ch, stride, act, se in zip(widths[2:7], STAGE_STRIDES, STAGE_ACTS, STAGE_SE):
            for i in range(self.space.max_depth):
                blocks.append(
                    ElasticMBConv(
                        in_ch, out_ch, self.space.ks_list, self.space.expand_list, stride if i == 0 else 1, act, se
                    )
                )
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = conv_bn_act(
            nn.Conv2d(in_ch, widths[7], 1, bias=False), nn.BatchNorm2d(widths[7]), nn.Hardswish(inplace=True)
        )
        self.feature_mix_layer = conv_bn_act(
            nn.Conv2d(widths[7], widths[8], 1, bias=False), None, nn.Hardswish(inplace=True)
        )
        self.classifier = nn.Sequential()
        self.classifier.add_module("dropout", nn.Dropout(dropout))
        self.classifier.add_module("linear", nn.Linear(widths[8], num_classes))
        self.set_active(self.space.max_config())

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this architecture (its :func:`supernet.supernet_spec`)."""
        space = self.space
        return {"width_mult": self.width_mult, "num_classes": self.num_classes, "ks_list": list(space.ks_list),
                "expand_list": list(space.expand_list), "depth_list": list(space.depth_list),
                "dropout": float(self.classifier.dropout.p)}

    # --- active subnet ------------------------------------------------------------------------------
    def set_active(self, cfg: MBV3Config) -> None:
        """Make the forward run subnet ``cfg`` (its resolution is the caller's business)."""
        self.space.validate(cfg)
        for block, k, e in zip(self.blocks[1:], cfg.ks, cfg.e):
            block.active_kernel_size, block.active_expand_ratio = k, e
        self.active_config = copy.deepcopy(cfg)

    def active_block_ids(self, cfg: MBV3Config | None = None) -> list[int]:
        """Indices into ``self.blocks`` of the elastic blocks a config runs."""
        return [1 + i for i in self.space.active_blocks(cfg or self.active_config)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](self.first_conv(x))
        for i in self.active_block_ids():
            x = self.blocks[i](x)
        x = self.final_expand_layer(x)
        x = self.feature_mix_layer(x.mean((2, 3), keepdim=True))
        return self.classifier(torch.flatten(x, 1))

    def extract(self, cfg: MBV3Config | None = None) -> MobileNetV3:
        """A standalone ``MobileNetV3`` holding subnet ``cfg``'s transformed and sliced weights and BN stats."""
        previous = self.active_config
        self.set_active(cfg or previous)
        try:
            blocks, in_ch = [copy.deepcopy(self.blocks[0])], self.widths[1]
            for i in self.active_block_ids():
                blocks.append(self.blocks[i].extract(in_ch))
                in_ch = self.blocks[i].out_channels
            net = MobileNetV3(
                copy.deepcopy(self.first_conv),
                blocks,
                copy.deepcopy(self.final_expand_layer),
                copy.deepcopy(self.feature_mix_layer),
                copy.deepcopy(self.classifier),
            )
        finally:
            self.set_active(previous)
        return net.train(self.training)

    # --- shapes and costs ---------------------------------------------------------------------------
    def profile_layers(self, cfg: MBV3Config, resolution: int | None = None) -> list[ProfiledLayer]:
        """Every conv, depthwise, SE 1x1 and linear of subnet ``cfg`` with its non-weight parameter count."""
        self.space.validate(cfg)
        size = conv_out_size(resolution or cfg.r, 3, 2)
        w = self.widths
        layers = [
            conv_layer("first_conv", 3, w[0], 3, 2, size),
            conv_layer("blocks.0.dw", w[0], w[0], 3, 1, size, depthwise=True),
            conv_layer("blocks.0.project", w[0], w[1], 1, 1, size),
        ]
        previous = self.active_config
        self.set_active(cfg)
        try:
            in_ch = w[1]
            for i in self.active_block_ids():
                block_layers, size = self.blocks[i].profile_layers(f"blocks.{i}", in_ch, size)
                layers += block_layers
                in_ch = self.blocks[i].out_channels
        finally:
            self.set_active(previous)
        layers.append(conv_layer("final_expand_layer", in_ch, w[7], 1, 1, size))
        layers.append(conv_layer("feature_mix_layer", w[7], w[8], 1, 1, 1, bn=False))
        layers.append(linear_layer("classifier", w[8], self.num_classes))
        return layers

    def layer_shapes(self, cfg: MBV3Config, resolution: int | None = None) -> list[Layer]:
        """``hwmodel.Layer`` of every conv, depthwise, SE 1x1 and linear (count 1 each; merge with ``merge_layers``)."""
        return [layer for layer, _ in self.profile_layers(cfg, resolution)]

    # --- training utilities -------------------------------------------------------------------------
    def sort_channels(self, keep: int = 0) -> ChannelPermutations:
        """Importance-sort every elastic block's middle channels in place; returns the permutations applied.

        ``keep = k`` keeps the channel sets of the ``k`` next-smaller expand ratios (already trained in
        progressive-shrinking phase ``k``) while re-sorting inside them; ``keep >= len(expand_list) - 1``
        preserves every subnet's function. See ``importance_order``.
        """
        perms: ChannelPermutations = {}
        for i, block in enumerate(self.blocks):
            if isinstance(block, ElasticMBConv):
                perms.update({f"blocks.{i}.{n}": steps for n, steps in block.sort_channels(keep).items()})
        return perms

    def load_ofa_state_dict(self, state_dict: dict[str, torch.Tensor], strict: bool = True):
        """Load a checkpoint in the reference ``ofa`` package's layout (both its key generations)."""
        from .ofa_interop import convert_ofa_state_dict

        return self.load_state_dict(convert_ofa_state_dict(state_dict), strict=strict)
