"""Elastic ops: layers whose active width (and kernel) is a prefix (or transform) of their full weights.

Each op owns its full-size parameters and takes the active size as a forward argument, so the choice
lives with the module that holds it (the block) and there is no global mode flag. ``extract`` returns
the plain ``torch.nn`` layer holding the active slice.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._utils import make_divisible

__all__ = [
    "ElasticConv2d",
    "ElasticDepthwiseConv2d",
    "ElasticBatchNorm2d",
    "ElasticSqueezeExcite",
    "ElasticLinear",
    "SqueezeExcite",
]


class ElasticConv2d(nn.Conv2d):
    """Dense conv (groups=1, 'same' padding) running on the first ``in``/``out`` channels of its weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)

    def active_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        return self.weight[:out_channels, :in_channels]

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        out_channels = self.out_channels if out_channels is None else out_channels
        weight = self.active_weight(x.shape[1], out_channels)
        bias = None if self.bias is None else self.bias[:out_channels]
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def extract(self, in_channels: int, out_channels: int) -> nn.Conv2d:
        conv = nn.Conv2d(
            in_channels, out_channels, self.kernel_size, self.stride, self.padding, bias=self.bias is not None
        )
        conv = conv.to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(in_channels, out_channels))
            if self.bias is not None:
                conv.bias.copy_(self.bias[:out_channels])
        return conv


class ElasticDepthwiseConv2d(nn.Conv2d):
    """Depthwise conv with elastic channels and elastic kernel size.

    A smaller kernel is the centre crop of the next larger one passed through a learned
    ``k*k x k*k`` transform (identity-initialised, shared by all channels), chained from the largest
    kernel down: 7x7 -> crop 5x5 -> T(7to5) -> crop 3x3 -> T(5to3). This is OFA's "kernel
    transformation matrices" (Cai et al., "Once-for-All", ICLR 2020, Sec. 3.2 and Fig. 3).
    """

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...], stride: int = 1):
        kernel_sizes = tuple(sorted(set(kernel_sizes)))
        for k in kernel_sizes:
            if k < 1 or k % 2 == 0:
                raise ValueError(f"kernel sizes must be odd positive integers, got {kernel_sizes}")
        max_k = kernel_sizes[-1]
        super().__init__(channels, channels, max_k, stride, max_k // 2, groups=channels, bias=False)
        self.kernel_sizes = kernel_sizes
        self.transforms = nn.ParameterDict(
            {
                f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                for small, big in zip(kernel_sizes, kernel_sizes[1:])
            }
        )

    def active_weight(self, channels: int, kernel_size: int) -> torch.Tensor:
        """The ``(channels, 1, k, k)`` filter for kernel ``k``: crop + transform chained from the largest."""
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel_size must be one of {list(self.kernel_sizes)}, got {kernel_size}")
        weight = self.weight[:channels]
        for big, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1]):
            if big <= kernel_size:
                break
            start = (big - small) // 2
            crop = weight[:, :, start : start + small, start : start + small].reshape(channels, small * small)
            weight = F.linear(crop, self.transforms[f"{big}to{small}"]).view(channels, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor, kernel_size: int | None = None) -> torch.Tensor:
        kernel_size = self.kernel_sizes[-1] if kernel_size is None else kernel_size
        channels = x.shape[1]
        return F.conv2d(x, self.active_weight(channels, kernel_size), None, self.stride, kernel_size // 2, 1, channels)

    def extract(self, channels: int, kernel_size: int) -> nn.Conv2d:
        conv = nn.Conv2d(channels, channels, kernel_size, self.stride, kernel_size // 2, groups=channels, bias=False)
        conv = conv.to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(channels, kernel_size))
        return conv


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of the input; the running-stat slices update in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or not self.track_running_stats
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:channels] if track else None,
            self.running_var[:channels] if track else None,
            self.weight[:channels],
            self.bias[:channels],
            use_batch_stats,
            factor,
            self.eps,
        )

    def extract(self, channels: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(channels, self.eps, self.momentum).to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            bn.weight.copy_(self.weight[:channels])
            bn.bias.copy_(self.bias[:channels])
            bn.running_mean.copy_(self.running_mean[:channels])
            bn.running_var.copy_(self.running_var[:channels])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class SqueezeExcite(nn.Module):
    """Squeeze-excite of MobileNetV3: pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard-sigmoid gate."""

    def __init__(self, channels: int, mid_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid_channels, 1, bias=True)
        self.expand = nn.Conv2d(mid_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(gate)


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite with elastic channels; the reduced width follows the active width.

    Reduced width = ``make_divisible(C // 4, 8)``: MobileNetV3's reduction 4 (Howard et al., "Searching for
    MobileNetV3", ICCV 2019, Sec. 5.3), computed from the active ``C`` as in OFA (``DynamicSE``).
    """

    reduction: int = 4

    def __init__(self, channels: int):
        super().__init__()
        self.reduce = ElasticConv2d(channels, self.mid_channels(channels), 1, bias=True)
        self.expand = ElasticConv2d(self.mid_channels(channels), channels, 1, bias=True)

    def mid_channels(self, channels: int) -> int:
        return make_divisible(channels // self.reduction, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        gate = F.relu(self.reduce(x.mean((2, 3), keepdim=True), self.mid_channels(channels)))
        return x * F.hardsigmoid(self.expand(gate, channels))

    def extract(self, channels: int) -> SqueezeExcite:
        se = SqueezeExcite(channels, self.mid_channels(channels))
        se.reduce = self.reduce.extract(channels, self.mid_channels(channels))
        se.expand = self.expand.extract(self.mid_channels(channels), channels)
        return se


class ElasticLinear(nn.Linear):
    """Linear layer running on the first ``in_features`` of its input dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)

    def extract(self, in_features: int) -> nn.Linear:
        linear = nn.Linear(in_features, self.out_features, self.bias is not None)
        linear = linear.to(self.weight.device, self.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight[:, :in_features])
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear
