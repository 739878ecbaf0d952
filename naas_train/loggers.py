"""Weights & Biases logging that needs no account or network and resumes into the same run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

RUN_ID_FILE = "wandb_run_id"


def stored_run_id(save_dir: str | Path) -> str:
    """The wandb run id kept in ``save_dir/wandb_run_id`` (next to ``checkpoints/``), created on first use."""
    path = Path(save_dir) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
    return run_id


class OfflineWandbLogger(WandbLogger):
    """``WandbLogger`` offline by default (``WANDB_MODE=offline`` unless the user set ``WANDB_MODE``) whose run id
    is stored in ``save_dir`` and reused, so a resumed run logs into the same run and ``wandb sync`` yields one."""

    def __init__(
        self,
        save_dir: str = "runs",
        project: str = "naas-trainer",
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        os.environ.setdefault("WANDB_MODE", "offline")
        super().__init__(
            save_dir=save_dir, project=project, name=name, id=stored_run_id(save_dir), group=group, tags=tags
        )
