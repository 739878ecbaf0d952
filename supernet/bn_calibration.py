"""Exact BatchNorm recalibration for a (sub)network."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["recalibrate_bn"]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable) -> nn.Module:
    """Set every BN's running stats to the exact average of its per-batch statistics over ``batches``.

    Batches are input tensors or ``(x, y, ...)`` tuples. Each BN normalises with the batch statistics
    (as in training) while the per-channel mean and unbiased variance of its input are averaged with equal
    weight per batch (OFA's "BN calibration", Cai et al., ICLR 2020, Sec. 3.3). Only the channels a BN
    sees are written, so an elastic supernet keeps the stats of its inactive channels. Works on the
    supernet's active subnet and on extracted subnets. Returns ``model``.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    sums: dict[nn.Module, list] = {bn: [0.0, 0.0, 0] for bn in bns}

    def accumulate(bn: nn.Module, args: tuple) -> None:
        x = args[0].float()
        dims = [d for d in range(x.dim()) if d != 1]
        acc = sums[bn]
        acc[0] = acc[0] + x.mean(dims)
        acc[1] = acc[1] + x.var(dims, unbiased=True)
        acc[2] += 1

    was_training = model.training
    tracking = {bn: bn.track_running_stats for bn in bns}
    hooks = [bn.register_forward_pre_hook(accumulate) for bn in bns]
    device = next(model.parameters()).device
    n_batches = 0
    try:
        model.eval()
        for bn in bns:
            bn.train()
            bn.track_running_stats = False
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x.to(device))
            n_batches += 1
    finally:
        for h in hooks:
            h.remove()
        for bn, track in tracking.items():
            bn.track_running_stats = track
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("batches must yield at least one batch")
    for bn, (mean_sum, var_sum, n) in sums.items():
        if n == 0:
            continue
        channels = mean_sum.numel()
        bn.running_mean[:channels] = (mean_sum / n).to(bn.running_mean.dtype)
        bn.running_var[:channels] = (var_sum / n).to(bn.running_var.dtype)
    return model
