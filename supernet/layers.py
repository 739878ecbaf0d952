"""Conv-BN-activation units, elastic and plain, and the profiling record they share."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from hwmodel import Layer

from .elastic_ops import ElasticBatchNorm2d, ElasticConv2d, ElasticDepthwiseConv2d

__all__ = ["ElasticConvBnAct", "ElasticDwConvBnAct", "conv_bn_act", "ProfiledLayer", "conv_layer", "linear_layer"]

#: A layer shape plus the parameters it owns besides its weight (bias, BN affine).
ProfiledLayer = tuple[Layer, int]


def conv_bn_act(conv: nn.Module, bn: nn.Module | None, act: nn.Module | None) -> nn.Sequential:
    """``Sequential(conv, [bn], [act])`` with OFA's child names ``conv``/``bn``/``act``."""
    parts: list[tuple[str, nn.Module]] = [("conv", conv)]
    if bn is not None:
        parts.append(("bn", bn))
    if act is not None:
        parts.append(("act", act))
    return nn.Sequential(OrderedDict(parts))


class ElasticConvBnAct(nn.Module):
    """Dense conv with elastic in/out channels, optional elastic BN, optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        act_layer: type[nn.Module] | None = nn.ReLU,
        use_bn: bool = True,
    ):
        super().__init__()
        self.conv = ElasticConv2d(in_channels, out_channels, kernel_size, stride)
        self.bn = ElasticBatchNorm2d(out_channels) if use_bn else None
        self.act = act_layer(inplace=True) if act_layer is not None else None

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        x = self.conv(x, out_channels)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x) if self.act is not None else x

    def extract(self, in_channels: int, out_channels: int) -> nn.Sequential:
        bn = self.bn.extract(out_channels) if self.bn is not None else None
        act = type(self.act)(inplace=True) if self.act is not None else None
        return conv_bn_act(self.conv.extract(in_channels, out_channels), bn, act)


class ElasticDwConvBnAct(nn.Module):
    """Depthwise conv with elastic channels and kernel, elastic BN, activation."""

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...], stride: int, act_layer: type[nn.Module]):
        super().__init__()
        self.conv = ElasticDepthwiseConv2d(channels, kernel_sizes, stride)
        self.bn = ElasticBatchNorm2d(channels)
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor, kernel_size: int | None = None) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, kernel_size)))

    def extract(self, channels: int, kernel_size: int) -> nn.Sequential:
        return conv_bn_act(
            self.conv.extract(channels, kernel_size), self.bn.extract(channels), type(self.act)(inplace=True)
        )


def conv_layer(
    name: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int,
    out_size: int,
    depthwise: bool = False,
    bias: bool = False,
    bn: bool = True,
) -> ProfiledLayer:
    """Shape of a (depthwise) conv with ``out_size x out_size`` outputs, and its non-weight parameters."""
    extra = (out_channels if bias else 0) + (2 * out_channels if bn else 0)
    layer = Layer(
        K=1 if depthwise else out_channels,
        C=1 if depthwise else in_channels,
        G=in_channels if depthwise else 1,
        P=out_size,
        Q=out_size,
        R=kernel_size,
        S=kernel_size,
        stride=stride,
        name=name,
        op="depthwise" if depthwise else "conv",
    )
    return layer, extra


def linear_layer(name: str, in_features: int, out_features: int, bias: bool = True) -> ProfiledLayer:
    return Layer(K=out_features, C=in_features, name=name, op="linear"), (out_features if bias else 0)
