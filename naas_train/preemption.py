"""Preemption-safe training: save a checkpoint when the scheduler warns, requeue, stop; resume from the newest.

SLURM sends a signal some time before it ends a job (``#SBATCH --signal=USR1@120``, or ``scancel --signal=USR1``).
:class:`PreemptionCheckpoint`'s handler only raises a flag; at the next training batch end all ranks agree on it
(one all-reduce), save ``<dir>/hpc_ckpt_<global_step>.ckpt`` (Lightning's file name for these checkpoints), rank 0
runs ``scontrol requeue $SLURM_JOB_ID`` when on SLURM, and every rank raises :class:`Preempted`, so nothing after
the training loop runs (no co-search at fit end, no later pipeline step). The requeued job resumes with
``--ckpt_path last``, which :class:`naas_train.trainer.NaasTrainer` resolves with :func:`newest_checkpoint`.
"""

from __future__ import annotations

import logging
import os
import signal as signals
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch

from naas_train.checkpoints import unreadable_checkpoint

log = logging.getLogger(__name__)

HPC_PREFIX = "hpc_ckpt_"
#: Exit code of a preempted run that was *not* requeued (sysexits' EX_TEMPFAIL: stopped early, run it again).
EX_TEMPFAIL = 75


class Preempted(SystemExit):
    """The run stopped at a preemption checkpoint; raised on every rank after the checkpoint is saved.

    ``code`` (the process exit status if nothing catches it): 0 when the SLURM job was requeued (rank 0: ``scontrol
    requeue`` succeeded; other ranks: rank 0 was on SLURM and asked for it), else :data:`EX_TEMPFAIL` (75): off SLURM,
    or the requeue failed. Resume with ``ckpt_path="last"`` (:func:`newest_checkpoint`).
    """

    def __init__(self, checkpoint: Path, step: int, requeued: bool) -> None:
        super().__init__(0 if requeued else EX_TEMPFAIL)
        self.checkpoint = checkpoint
        self.step = step
        self.requeued = requeued

    def __str__(self) -> str:
        return (f"preempted at step {self.step}: saved {self.checkpoint}; "
                f"{'job requeued' if self.requeued else 'not requeued'}")


class PreemptionCheckpoint(pl.Callback):
    """On ``signal`` (a name such as ``"SIGUSR1"``): save ``<dirpath>/hpc_ckpt_<global_step>.ckpt`` at the next
    training batch end on all ranks together, requeue the SLURM job (rank 0, when ``SLURM_JOB_ID`` is set), drop
    older ``hpc_ckpt_*`` files, and raise :class:`Preempted` on every rank.

    Args:
        signal: the signal the scheduler sends before ending the job (``--signal=USR1@120``).
        dirpath: where the checkpoints go (default: ``trainer.default_root_dir``).

    The handler is installed for the training loop only (``on_train_start`` to ``on_train_end``/``on_exception``)
    and does nothing but set a flag: the checkpoint is written from the training loop, never inside the handler.
    """

    def __init__(self, signal: str = "SIGUSR1", dirpath: str | None = None) -> None:
        if not signal.startswith("SIG") or not hasattr(signals.Signals, signal):
            raise ValueError(f"PreemptionCheckpoint: unknown signal {signal!r}; use a name such as 'SIGUSR1'")
        self.signal = signal
        self.dirpath = dirpath
        self.received = False
        self._previous: Any = None

    def directory(self, trainer: pl.Trainer) -> Path:
        return Path(self.dirpath or trainer.default_root_dir)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.received = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signals.signal(signals.Signals[self.signal], self._handle)
        else:
            log.warning("PreemptionCheckpoint: not in the main thread, cannot handle %s", self.signal)

    def _restore(self) -> None:
        if self._previous is not None:
            signals.signal(signals.Signals[self.signal], self._previous)
            self._previous = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.received, all=False):
            return
        step = trainer.global_step
        path = self.directory(trainer) / f"{HPC_PREFIX}{step}.ckpt"
        trainer.save_checkpoint(path)  # every rank (the strategy may gather); rank 0 writes, atomically
        requeued = False
        if trainer.is_global_zero:
            for old in self.directory(trainer).glob(f"{HPC_PREFIX}*.ckpt"):
                old_step = _hpc_step(old)
                if old_step is not None and old_step < step:  # keep the newest only
                    old.unlink(missing_ok=True)
            log.warning("PreemptionCheckpoint: %s received; saved %s at step %d", self.signal, path, step)
        job = slurm_job_id()
        if job is not None:
            requeued = requeue(job) if trainer.is_global_zero else True
        raise Preempted(path, step, requeued)


def slurm_job_id() -> str | None:
    """The job to requeue: ``<array job>_<task>`` for an array task, else ``$SLURM_JOB_ID``; ``None`` off SLURM."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue(job: str) -> bool:
    """``scontrol requeue <job>``; logs the outcome and returns whether it worked."""
    cmd = ["scontrol", "requeue", job]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.error("PreemptionCheckpoint: `%s` failed: %s", " ".join(cmd), exc)
        return False
    if done.returncode != 0:
        log.error("PreemptionCheckpoint: `%s` exited %d: %s", " ".join(cmd), done.returncode,
                  (done.stderr or done.stdout).strip())
        return False
    log.warning("PreemptionCheckpoint: requeued SLURM job %s (`%s`)", job, " ".join(cmd))
    return True


def _hpc_step(path: Path) -> int | None:
    digits = path.stem.removeprefix(HPC_PREFIX)
    return int(digits) if path.stem.startswith(HPC_PREFIX) and digits.isdigit() else None


def checkpoint_step(path: Path) -> int | None:
    """The ``global_step`` a Lightning checkpoint records (memory-mapped load: the tensors are not read);
    ``None`` when the file cannot be read as one."""
    try:
        obj = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped with the reason
        log.warning("newest_checkpoint: skipping %s: %s", path, unreadable_checkpoint(path, exc))
        return None
    step = obj.get("global_step") if isinstance(obj, dict) else None
    return step if isinstance(step, int) else None


def newest_checkpoint(root: Path) -> Path | None:
    """The newest of ``root/checkpoints/*.ckpt`` (``last*.ckpt`` included) and ``root/hpc_ckpt_*.ckpt``: the one
    with the highest ``global_step`` recorded inside it; ties go to the hpc checkpoint, then to ``last*``, then to
    the newer file (mtime). Files that do not load as checkpoints are skipped. ``None`` when there is none."""
    root = Path(root)
    candidates = [*root.glob("checkpoints/*.ckpt"), *root.glob(f"{HPC_PREFIX}*.ckpt")]
    ranked = []
    for path in candidates:
        step = checkpoint_step(path)
        if step is not None:
            ranked.append(((step, path.name.startswith(HPC_PREFIX), path.name.startswith("last"),
                            path.stat().st_mtime_ns), path))
    return max(ranked)[1] if ranked else None
