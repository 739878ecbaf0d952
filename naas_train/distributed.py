"""Rank and barrier that work before, during and after a Lightning launch (with or without a process group)."""

from __future__ import annotations

import os

import torch.distributed as dist

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
