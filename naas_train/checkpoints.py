"""The one checkpoint reader of every ``naas-train`` subcommand (fit's teacher, finetune, export).

Accepted files (all read with ``torch.load(weights_only=True)``):

- a Lightning checkpoint of :class:`naas_train.module.SupernetModule` or :class:`naas_train.finetune.FinetuneModule`
  (``state_dict`` with the network under ``net.*``; other modules such as ``teacher.*`` are left out);
- a plain ``state_dict`` of the network, bare or as ``{"state_dict": ...}``;
- the reference ``ofa`` package's checkpoints (its published ``.pth`` files hold ``{"state_dict": ...}`` in its
  key layout, or the bare state dict), recognised by their key names and renamed with
  :func:`supernet.convert_ofa_state_dict`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from supernet.ofa_interop import convert_ofa_state_dict, is_ofa_state_dict

__all__ = ["load_net_state", "net_state", "read_checkpoint"]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict a checkpoint file holds (on CPU); ``ValueError`` naming ``path`` when the file is missing, empty,
    unreadable (truncated, not a torch file) or holds something other than a non-empty dict."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling / zip error: the file is not a usable checkpoint
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    if not obj:
        raise ValueError(f"checkpoint {path} holds an empty dict")
    return obj


def net_state(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's weights in a checkpoint read by :func:`read_checkpoint` from ``path`` (named in errors),
    in this package's key layout."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint {path}: 'state_dict' holds a {type(state).__name__}, not a state dict")
    if any(k.startswith("net.") for k in state):  # a LightningModule's: the network is its ``net``
        state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if not state:
        raise ValueError(f"checkpoint {path} holds no network weights (no tensors under 'net.*' or a state dict)")
    return convert_ofa_state_dict(state) if is_ofa_state_dict(state) else state


def load_net_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's ``state_dict`` from any checkpoint this module accepts (see the module docstring)."""
    return net_state(read_checkpoint(path), path)
