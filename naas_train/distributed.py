"""Rank and barrier that work before, during and after a Lightning launch (with or without a process group)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")

#: Environment variables that name a process's rank under the launchers naas-train supports: torchrun /
#: torchelastic (``RANK``), SLURM ``srun`` (``SLURM_PROCID``), Lightning's own launcher (``NODE_RANK`` and
#: ``LOCAL_RANK`` of each process it starts).
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK")


def is_global_zero() -> bool:
    """Whether this process is global rank 0: from the process group once one exists, else from the launcher's
    environment (a process is rank 0 only when every rank variable that is set says 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in RANK_VARIABLES)


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def on_rank_zero(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)`` on global rank 0 while the other ranks wait (instead of a bare :func:`barrier`,
    where they would wait forever for a rank 0 that failed): rank 0 shares its outcome, and when ``fn`` raised,
    every rank raises (rank 0 its own exception; the others a ``ValueError`` for a ``ValueError``/``OSError``,
    else a ``RuntimeError``, with rank 0's message). Returns ``fn``'s result on rank 0, ``None`` elsewhere."""
    result, error = None, None
    if is_global_zero():
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - shared with the other ranks, then raised again
            error = exc
    if dist.is_available() and dist.is_initialized():
        box: list[Any] = [None if error is None else (isinstance(error, (ValueError, OSError)), str(error))]
        dist.broadcast_object_list(box, src=0)
        if error is None and box[0] is not None:
            known, message = box[0]
            raise (ValueError if known else RuntimeError)(f"rank 0 failed: {message}")
    if error is not None:
        raise error
    return result
