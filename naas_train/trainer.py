"""``NaasTrainer``: a Lightning Trainer with a ``search`` entry point (``naas-train search``)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from naas_train.cosearch_callback import CoSearchCallback
from naas_train.finetune import FinetuneExportMixin


class NaasTrainer(FinetuneExportMixin, pl.Trainer):
    """``pl.Trainer`` plus :meth:`search`, ``finetune`` and ``export``."""

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
        self.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        return callback.last_result
