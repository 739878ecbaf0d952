"""Importance ordering of elastic channels (OFA's channel sorting) as explicit index permutations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["ChannelPermutations", "importance_order", "apply_permutations"]

#: ``{param_or_buffer_name: [(dim, index), ...]}``; apply the entries in order with ``index_select``.
ChannelPermutations = dict[str, list[tuple[int, torch.Tensor]]]


def importance_order(importance: torch.Tensor, widths: Sequence[int], keep: int = 0) -> torch.Tensor:
    """Channel order by descending importance, keeping the channel sets of ``keep`` smaller widths.

    ``widths`` are the nested active widths, largest first. With ``keep = k`` the channels of
    ``[widths[i+1], widths[i])`` for ``i < k`` stay in that range (sorted only inside it), so subnets of
    the ``k + 1`` largest widths, already trained in earlier shrinking phases, see the same channel sets
    (OFA ``re_organize_middle_weights(expand_ratio_stage=k)``).
    """
    n = importance.numel()
    bounds = sorted(set(w for w in widths[1 : keep + 1] if 0 < w < n))
    bucket = torch.zeros(n, dtype=torch.long, device=importance.device)
    for b in bounds:
        bucket[b:] += 1
    order = torch.sort(importance, descending=True, stable=True).indices
    return order[torch.sort(bucket[order], stable=True).indices]


def apply_permutations(module: nn.Module, perms: ChannelPermutations) -> None:
    """Permute ``module``'s parameters and buffers in place (Parameter objects are kept)."""
    tensors = dict(module.named_parameters())
    tensors.update(module.named_buffers())
    with torch.no_grad():
        for name, steps in perms.items():
            t = tensors[name]
            for dim, index in steps:
                t.data = t.data.index_select(dim, index.to(t.device))
