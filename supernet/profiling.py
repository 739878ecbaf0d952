"""Parameter and MAC counts of a subnet, and the ``python -m supernet.profile`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["profile", "build_network", "main"]


def profile(net: Any, cfg: Any, resolution: int | None = None) -> dict[str, int]:
    """``{"params", "macs"}`` of subnet ``cfg`` at ``resolution`` (default ``cfg.r``).

    Params are those of ``net.extract(cfg)`` (weights, biases, BN affine); MACs are the exact conv and
    linear multiply-accumulates of one image, counted from ``net.layer_shapes``.
    """
    layers = net.profile_layers(cfg, resolution)
    params = sum(layer.G * layer.K * layer.C * layer.R * layer.S + extra for layer, extra in layers)
    return {"params": int(params), "macs": int(sum(layer.macs for layer, _ in layers))}


def build_network(space: str, width_mult: float = 1.0, num_classes: int = 1000, device: str | torch.device = "cpu"):
    """The supernet of a space by name (``mbv3`` or ``resnet50``); ``device="meta"`` allocates nothing."""
    from .mbv3 import OFAMobileNetV3
    from .resnet import OFAResNet50

    with torch.device(device):
        if space == "mbv3":
            return OFAMobileNetV3(width_mult=width_mult, num_classes=num_classes)
        if space == "resnet50":
            if width_mult != 1.0:
                raise ValueError("--width-mult applies to mbv3 only; resnet50 widths are part of its config (w)")
            return OFAResNet50(num_classes=num_classes)
    raise ValueError(f"space must be one of ['mbv3', 'resnet50'], got {space!r}")


def _parse_config(net: Any, spec: str, resolution: int | None):
    if spec in ("max", "min"):
        return getattr(net.space, f"{spec}_config")(resolution or 224)
    try:
        data = json.loads(spec)
    except json.JSONDecodeError as err:
        raise ValueError(f"--config must be 'max', 'min' or a JSON config, got {spec!r} ({err})") from None
    cfg = type(net.space.max_config()).from_dict(data)
    if resolution is not None:
        cfg.r = resolution
    return net.space.validate(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m supernet.profile", description="Params, MACs and layer shapes of an OFA subnet."
    )
    parser.add_argument("--space", choices=["mbv3", "resnet50"], default="mbv3")
    parser.add_argument("--width-mult", type=float, default=1.0, help="mbv3 supernet width (1.0 or 1.2)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--config", default="max", help="'max', 'min' or a JSON config in OFA's format")
    parser.add_argument("--resolution", type=int, default=None, help="input size (default: the config's r, else 224)")
    parser.add_argument("--json", action="store_true", help="print {params, macs, layers} as JSON")
    args = parser.parse_args(argv)
    try:
        net = build_network(args.space, args.width_mult, args.num_classes, device="meta")
        cfg = _parse_config(net, args.config, args.resolution)
        stats = profile(net, cfg)
    except ValueError as err:
        parser.error(str(err))
    layers = net.layer_shapes(cfg)
    if args.json:
        print(json.dumps({**stats, "config": cfg.to_dict(), "layers": [layer.to_dict() for layer in layers]}))
    else:
        for layer in layers:
            print(
                f"{layer.name:32s} {layer.op:9s} G={layer.G:<5d} K={layer.K:<5d} C={layer.C:<5d} P={layer.P:<4d} "
                f"R={layer.R} stride={layer.stride[0]} MACs={layer.macs:,}"
            )
        print(f"params {stats['params']:,}  MACs {stats['macs']:,}  (resolution {cfg.r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
