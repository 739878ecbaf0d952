"""``NaasTrainer``: a Lightning Trainer with a ``search`` entry point (``naas-train search``) and preemption-safe
training (:mod:`naas_train.preemption`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector
from pytorch_lightning.trainer.states import TrainerFn
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from naas_train.checkpoints import AtomicCheckpointIO
from naas_train.cosearch_callback import CoSearchCallback
from naas_train.finetune import FinetuneExportMixin
from naas_train.preemption import PreemptionCheckpoint, newest_checkpoint


#: Validation batches of the pass that carries ``naas-train search`` (its metrics are not the point: the search
#: runs at the pass's end with the processes launched and the checkpoint restored).
SEARCH_VALIDATION_BATCHES = 1


class _NewestCheckpointConnector(_CheckpointConnector):
    """``fit(ckpt_path="last")`` resumes from :func:`newest_checkpoint` of the preemption callback's folder (the
    newer of ``checkpoints/last.ckpt`` and ``hpc_ckpt_<step>.ckpt``; naas-train puts ``ModelCheckpoint`` files in
    ``<default_root_dir>/checkpoints``), falling back to Lightning's own lookup when that folder has none.
    Lightning's implicit resume (``ckpt_path=None`` on SLURM loads any ``hpc_ckpt_*`` of ``default_root_dir``, even
    into the fine-tuning run) is off: a run resumes only when asked."""

    trainer: NaasTrainer

    @property
    def _hpc_resume_path(self) -> str | None:
        return None

    def _parse_ckpt_path(self, state_fn: TrainerFn, ckpt_path: _PATH | None, model_provided: bool,
                         model_connected: bool) -> _PATH | None:
        if ckpt_path == "last" and state_fn == TrainerFn.FITTING:
            newest = newest_checkpoint(self.trainer.preemption.directory(self.trainer))
            if newest is not None:
                rank_zero_info(f"ckpt_path='last': resuming from the newest checkpoint, {newest}")
                return str(newest)
        return super()._parse_ckpt_path(state_fn, ckpt_path, model_provided, model_connected)


def install_atomic_checkpoint_io(strategy: Any) -> None:
    """Replace the strategy's default ``TorchCheckpointIO`` by :class:`AtomicCheckpointIO`; any other checkpoint
    IO (the user's ``plugins``, a strategy's own, a wrapper such as ``AsyncCheckpointIO``) stays."""
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()


class NaasTrainer(FinetuneExportMixin, pl.Trainer):
    """``pl.Trainer`` plus :meth:`search`, ``finetune`` and ``export``, preemption-safe: a
    :class:`PreemptionCheckpoint` is added unless the recipe has one, Lightning's own SLURM auto-requeue (which saves
    inside its signal handler) is switched off, ``fit(ckpt_path="last")`` resumes from the newest checkpoint, and
    checkpoints are saved atomically in their own folder (:class:`AtomicCheckpointIO` replaces Lightning's default
    ``TorchCheckpointIO``; a ``CheckpointIO`` of the user's ``plugins`` or of the strategy is kept)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        environment = self._accelerator_connector.cluster_environment
        if isinstance(environment, SLURMEnvironment):
            environment.auto_requeue = False  # PreemptionCheckpoint saves and requeues instead
        preemption = next((c for c in self.callbacks if isinstance(c, PreemptionCheckpoint)), None)
        if preemption is None:
            signal = environment.requeue_signal if isinstance(environment, SLURMEnvironment) else None
            preemption = PreemptionCheckpoint(signal=signal.name if signal is not None else "SIGUSR1")
            self.callbacks.append(preemption)
        self.preemption = preemption
        self._checkpoint_connector = _NewestCheckpointConnector(self)
        install_atomic_checkpoint_io(self.strategy)

    def finetune(self, *args: Any, **kwargs: Any) -> str:
        """:meth:`FinetuneExportMixin.finetune`, with preemption checkpoints under ``<default_root_dir>/finetune``
        (beside its ``checkpoints/``), so they never shadow the supernet's."""
        dirpath = self.preemption.dirpath
        self.preemption.dirpath = str(Path(self.default_root_dir) / "finetune")
        try:
            return super().finetune(*args, **kwargs)
        finally:
            self.preemption.dirpath = dirpath

    def search(
        self,
        model: pl.LightningModule | None = None,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
    ) -> dict[str, Any]:
        """Co-search accelerator, mapping and subnet of a trained supernet (``ckpt_path``: a checkpoint, or
        ``"last"``/``"best"``). Uses the recipe's :class:`CoSearchCallback` (or a default one); the search
        runs at the end of one validation pass, inside the launched (possibly DDP) processes."""
        callback = next((c for c in self.callbacks if isinstance(c, CoSearchCallback)), None)
        if callback is None:
            callback = CoSearchCallback()
            self.callbacks.append(callback)
        callback.request_search()
        limit = self.limit_val_batches
        self.limit_val_batches = SEARCH_VALIDATION_BATCHES  # the pass only launches and restores; the search
        try:                                                # measures on its own split
            self.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        finally:
            self.limit_val_batches = limit
        return callback.last_result
