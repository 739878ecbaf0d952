"""Key mapping from the reference ``ofa`` package's state dicts to this package's module layout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["convert_ofa_state_dict", "is_ofa_state_dict"]

#: Ordered (pattern, replacement) rules. The ``ofa`` package wraps each torch layer once more
#: (``DynamicConv2d.conv``, ``DynamicBatchNorm2d.bn``, ``DynamicLinear.linear``), puts MBConv blocks under
#: ``blocks.N.conv`` (older checkpoints: ``blocks.N.mobile_inverted_conv``), SE under
#: ``depth_conv.se.fc`` and names kernel transforms ``7to5_matrix``.
_RULES: tuple[tuple[str, str], ...] = (
    (r"^blocks\.(\d+)\.(conv|mobile_inverted_conv)\.", r"blocks.\1."),
    (r"^input_stem\.1\.conv\.", "input_stem.1."),
    (r"\.depth_conv\.se\.fc\.", ".se."),
    (r"\.conv\.conv\.weight$", ".conv.weight"),
    (r"\.bn\.bn\.", ".bn."),
    (r"\.linear\.linear\.", ".linear."),
    (r"\.(\d+to\d+)_matrix$", r".transforms.\1"),
)

#: Key fragments only the ``ofa`` package's layout has (its MBConv wrapper, its doubly wrapped conv / BN /
#: linear, its kernel transforms); none occurs in this package's supernets or in the plain nets they extract.
_OFA_ONLY = re.compile(r"^blocks\.\d+\.(conv|mobile_inverted_conv)\.|\.conv\.conv\.|\.bn\.bn\.|\.linear\.linear\.|_matrix$")


def is_ofa_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """Whether ``state_dict``'s keys are in the ``ofa`` package's layout (so need :func:`convert_ofa_state_dict`)."""
    return any(_OFA_ONLY.search(key) for key in state_dict)


def convert_ofa_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an ``ofa`` supernet state dict (OFAMobileNetV3 or OFAResNets) to our key layout."""
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in _RULES:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out
