"""Loggers whose folder is the run folder: CSV, and Weights & Biases that needs no account or network and resumes
into the same run. ``save_dir=None`` (the recipes' default) is filled in by ``naas-train`` with the trainer's
``default_root_dir``, so ``--trainer.default_root_dir DIR`` moves the logs with the run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from hwmodel.atomic import atomic_write_text

RUN_ID_FILE = "wandb_run_id"


def stored_run_id(save_dir: str | Path) -> str:
    """The wandb run id kept in ``save_dir/wandb_run_id`` (next to ``checkpoints/``), created on first use."""
    path = Path(save_dir) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, run_id + "\n")
    return run_id


def _folder(save_dir: str | None, logger: str) -> str:
    if save_dir is None:
        raise ValueError(f"{logger}: save_dir is not set; give save_dir, or run through naas-train, which sets it "
                         "to trainer.default_root_dir")
    return save_dir


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` writing ``metrics.csv`` and ``hparams.yaml`` straight into ``save_dir`` (no name/version
    subfolders), so a resumed run appends to the same file."""

    def __init__(self, save_dir: str | None = None, flush_logs_every_n_steps: int = 100) -> None:
        super().__init__(_folder(save_dir, "RunCSVLogger"), name="", version="",
                         flush_logs_every_n_steps=flush_logs_every_n_steps)


class OfflineWandbLogger(WandbLogger):
    """``WandbLogger`` offline by default (``WANDB_MODE=offline`` unless the user set ``WANDB_MODE``) whose run id
    is stored in ``save_dir`` and reused, so a resumed run logs into the same run and ``wandb sync`` yields one."""

    def __init__(
        self,
        save_dir: str | None = None,
        project: str = "naas-trainer",
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        os.environ.setdefault("WANDB_MODE", "offline")
        folder = _folder(save_dir, "OfflineWandbLogger")
        super().__init__(save_dir=folder, project=project, name=name, id=stored_run_id(folder), group=group, tags=tags)
