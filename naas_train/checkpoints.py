"""The one checkpoint reader of every ``naas-train`` subcommand (fit's teacher, finetune, export).

Accepted files (all read with ``torch.load(weights_only=True)``):

- a Lightning checkpoint of :class:`naas_train.module.SupernetModule` or :class:`naas_train.finetune.FinetuneModule`
  (``state_dict`` with the network under ``net.*``; other modules such as ``teacher.*`` are left out);
- a plain ``state_dict`` of the network, bare or as ``{"state_dict": ...}``;
- the reference ``ofa`` package's checkpoints (its published ``.pth`` files hold ``{"state_dict": ...}`` in its
  key layout, or the bare state dict), recognised by their key names and renamed with
  :func:`supernet.convert_ofa_state_dict`.

Lightning's own saving and loading (``fit``'s checkpoints, ``--ckpt_path``) go through :class:`AtomicCheckpointIO`,
which :class:`naas_train.trainer.NaasTrainer` installs: a checkpoint is written to a temporary file in its own
folder and renamed, so a full disk or a kill leaves the previous ``last.ckpt`` intact; an unreadable file is a
one-line ``ValueError`` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import _is_local_file_protocol

from hwmodel.atomic import atomic_open, clean_stale_temps
from supernet.ofa_interop import convert_ofa_state_dict, is_ofa_state_dict

__all__ = ["AtomicCheckpointIO", "check_checkpoint_file", "load_net_state", "net_state", "read_checkpoint",
           "unreadable_checkpoint"]


def unreadable_checkpoint(path: Path, exc: BaseException) -> ValueError:
    """The one-line error for a checkpoint file that does not load (truncated, corrupt, not a torch file)."""
    detail = (str(exc).strip().splitlines() or [""])[0]
    if len(detail) > 120 and ". " in detail:  # torch's zip reader appends a paragraph of advice
        detail = detail.split(". ")[0]
    return ValueError(f"cannot read checkpoint {path} (truncated, corrupt or not a checkpoint): "
                      f"{type(exc).__name__}{': ' + detail if detail else ''}")


def check_checkpoint_file(path: Path) -> None:
    """``ValueError`` naming ``path`` unless it is a non-empty regular file."""
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist" if not os.path.lexists(path)
                         else f"checkpoint {path} is not a regular file")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes)")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict a checkpoint file holds (on CPU); ``ValueError`` naming ``path`` when the file is missing, empty,
    unreadable (truncated, not a torch file) or holds something other than a non-empty dict."""
    path = Path(path)
    check_checkpoint_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling / zip error: the file is not a usable checkpoint
        raise unreadable_checkpoint(path, exc) from None
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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` that writes local checkpoints atomically in their own folder
    (:func:`hwmodel.atomic.atomic_open`: temporary file, ``fsync``, ``os.replace``; Lightning's default goes
    through fsspec, whose local transaction writes to the system temporary folder and copies across filesystems,
    so a full disk truncated ``last.ckpt``) and turns a checkpoint that does not load into a one-line
    ``ValueError`` naming the file. Remote paths (``s3://`` ...) are left to ``TorchCheckpointIO``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path.parent, path.name)  # what a killed save of this file left
        with atomic_open(path) as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        if not _is_local_file_protocol(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        path = Path(path)
        check_checkpoint_file(path)
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        except Exception as exc:  # noqa: BLE001 - any unpickling / zip error: the file is not a usable checkpoint
            raise unreadable_checkpoint(path, exc) from None
