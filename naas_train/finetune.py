"""Fine-tune the co-searched subnet: extract it from the supernet, recalibrate BN, train with KD from the supernet.

:class:`FinetuneModule` is a LightningModule over the *extracted* plain subnet (``self.net``) with the supernet's
largest subnet as a frozen teacher; :func:`run_finetune` is what ``naas-train finetune`` runs on the recipe's
trainer, data module and loggers (checkpoints go to ``<default_root_dir>/finetune/``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2

from naas_train.checkpoints import load_net_state
from naas_train.data import resize
from naas_train.distributed import on_rank_zero
from naas_train.module import check_data_classes
from supernet import build_supernet, recalibrate_bn, supernet_spec
from supernet.quant import calibrate, quantize_subnet

#: Where :func:`run_finetune` writes the final fine-tuned checkpoint, under ``default_root_dir``.
FINETUNED_CKPT = Path("finetune") / "finetuned.ckpt"


class FinetuneModule(pl.LightningModule):
    """Fine-tunes one subnet, extracted from a supernet, with knowledge distillation (OFA, Cai et al., ICLR 2020,
    Sec. 3.2: label-smoothed CE plus ``kd_ratio`` x soft-target CE against the teacher's softmax).

    The teacher is the supernet's largest subnet at the same resolution, extracted and frozen. At ``fit`` setup
    both networks' BN statistics are recalibrated on the data module's BN batches (exact, as the co-search
    measured). Every batch is resized to the subnet's resolution. Logs ``finetune/loss``, ``finetune/lr`` and
    ``finetune/val_acc`` (top-1 over all ranks' validation shards), ``finetune/val_loss``.

    The hyper-parameters hold ``supernet_spec`` and ``subnet`` as plain data, so a checkpoint rebuilds the module
    (``FinetuneModule.load_from_checkpoint``) and the export reads the subnet's weights (keys ``net.*``).
    """

    def __init__(
        self,
        supernet_spec: dict[str, Any],
        subnet: dict[str, Any],
        epochs: int = 10,
        lr: float = 0.01,
        warmup_epochs: float = 0.0,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 3e-5,
        kd_ratio: float = 1.0,
        label_smoothing: float = 0.1,
        recalibrate: bool = True,
        resolution: int | None = None,
        scale_lr: bool = True,
        precision: dict[str, Any] | None = None,
        calibration_batches: int = 8,
        supernet: nn.Module | None = None,
    ) -> None:
        """
        Args:
            supernet_spec: ``{"class_path", "init_args"}`` of the supernet (:func:`supernet.supernet_spec`).
            subnet: the subnet config in OFA's format (``result.json``'s ``subnet``).
            epochs: fine-tuning epochs (the cosine schedule's length).
            lr: peak learning rate per process (per step cosine decay to 0 after ``warmup_epochs`` of linear
                warm-up); multiplied by the world size when ``scale_lr``, like the supernet phases' lrs.
            warmup_epochs: linear warm-up, in epochs (may be fractional).
            optimizer / momentum / weight_decay: timm ``create_optimizer_v2`` arguments.
            kd_ratio: weight of the distillation loss (0: no teacher).
            label_smoothing: of the hard-label cross entropy.
            recalibrate: recalibrate BN of subnet and teacher at fit setup.
            resolution: input size to train and validate at (default: the config's ``r``; the co-search's
                ``deploy_resolution`` when it set one).
            scale_lr: multiply ``lr`` by the world size (the batch grows with it), as ``SupernetModule`` does.
            precision: ``{layer: {"weights": bits, "inputs": bits}}`` (``result.json``'s ``precision``): fine-tune
                quantization-aware. At fit setup the subnet's BN is recalibrated, folded, the layers fake-quantized
                (:func:`supernet.quant.quantize_subnet`) and the input ranges calibrated on
                ``calibration_batches`` BN batches; every scale then stays fixed while the float weights train through the
                quantizers' straight-through estimator.
            calibration_batches: BN batches that calibrate the input ranges (with ``precision``).
            supernet: the trained supernet to extract from (default: built from ``supernet_spec`` with random
                weights, which a checkpoint then overwrites).
        """
        super().__init__()
        if epochs < 1 or lr <= 0 or kd_ratio < 0:
            raise ValueError(f"finetune needs epochs >= 1, lr > 0 and kd_ratio >= 0 (got {epochs}, {lr}, {kd_ratio})")
        self.save_hyperparameters(ignore=["supernet"])
        net = supernet if supernet is not None else build_supernet(supernet_spec)
        config_cls = type(net.space.max_config())
        self.config = net.space.validate(config_cls.from_dict(subnet))
        self.resolution = int(resolution or self.config.r)
        self.net = net.extract(self.config).train()
        self.layers = net.layer_shapes(self.config, self.resolution) if precision else None
        if precision:  # the quantized structure now (a checkpoint restores into it); its numbers at fit setup
            self._float = (self.net,)  # (a tuple: not a submodule) recalibrated, then folded and quantized in setup
            self.net = self._quantize(self.net)
        self.teacher = None
        if kd_ratio > 0:
            self.teacher = net.extract(net.space.max_config(self.resolution)).eval().requires_grad_(False)
        self.hard_loss = LabelSmoothingCrossEntropy(label_smoothing) if label_smoothing > 0 else nn.CrossEntropyLoss()
        self.soft_loss = SoftTargetCrossEntropy()
        self._val: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(resize(x, self.resolution))

    # --- setup -----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Exact BN recalibration of the extracted subnet and the teacher (before any checkpoint is restored)."""
        check_data_classes(self)
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or not self.hparams.recalibrate or datamodule is None or not hasattr(datamodule, "bn_dataloader"):
            return
        device = self.trainer.strategy.root_device  # setup runs before the strategy moves the module
        batches = [resize(x.to(device), self.resolution) for x, _ in datamodule.bn_dataloader()]
        nets = (self.net if self.layers is None else self._float[0], self.teacher)
        for net in nets:
            if net is not None:
                recalibrate_bn(net.to(device), batches)
        if self.layers is not None:
            self.net = calibrate(self._quantize(self._float[0]), batches, self.hparams.calibration_batches)
            self.net.train()  # calibrate froze every observer: scales fixed, weights train through the STE

    def _quantize(self, subnet: nn.Module) -> nn.Module:
        from supernet.precision_space import policy_from_dict

        return quantize_subnet(subnet.eval(), self.layers, policy_from_dict(self.hparams.precision)).train()

    def configure_optimizers(self) -> dict[str, Any]:
        peak = self.hparams.lr * (self.trainer.world_size if self.hparams.scale_lr else 1)
        opt = create_optimizer_v2(self.net, opt=self.hparams.optimizer, lr=peak,
                                  weight_decay=self.hparams.weight_decay, momentum=self.hparams.momentum)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(round(self.hparams.warmup_epochs * total / self.hparams.epochs))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * t))

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- training --------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        images = resize(images, self.resolution)
        logits = self.net(images)
        loss = self.hard_loss(logits, targets)
        if self.teacher is not None:
            self.teacher.eval()
            with torch.no_grad():
                soft = self.teacher(images).float().softmax(-1)
            loss = loss + self.hparams.kd_ratio * self.soft_loss(logits, soft)
        self.log("finetune/loss", loss, prog_bar=True)
        self.log("finetune/lr", self.optimizers().optimizer.param_groups[0]["lr"])
        return loss

    # --- validation ------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val = {k: torch.zeros((), device=self.device) for k in ("correct", "count", "loss")}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, targets = batch
        logits = self.net(resize(images, self.resolution))
        self._val["correct"] += (logits.argmax(-1) == targets).sum()
        self._val["count"] += targets.numel()
        self._val["loss"] += nn.functional.cross_entropy(logits.float(), targets, reduction="sum")

    def on_validation_epoch_end(self) -> None:
        reduce = self.trainer.strategy.reduce
        count = reduce(self._val["count"], reduce_op="sum").clamp(min=1)
        self.log("finetune/val_acc", reduce(self._val["correct"], reduce_op="sum") / count, prog_bar=True)
        self.log("finetune/val_loss", reduce(self._val["loss"], reduce_op="sum") / count)
        self._val = {}


# --- entry point ----------------------------------------------------------------------------------------
def read_subnet(result: str | os.PathLike[str] | None = None,
                subnet: str | MappingABC[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(subnet config dict, result dict or None)`` from a ``result.json`` or a config (dict, JSON text or a
    JSON file); exactly one of the two."""
    if (result is None) == (subnet is None):
        raise ValueError("give either result (a co-search result.json) or subnet (a config), not both or neither")
    if result is not None:
        try:
            data = json.loads(Path(result).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read co-search result {result}: {exc}") from None
        if "subnet" not in data:
            raise ValueError(f"{result} has no 'subnet' (not a co-search result.json)")
        return dict(data["subnet"]), data
    if isinstance(subnet, MappingABC):
        return dict(subnet), None
    text = str(subnet)
    if os.path.isfile(text):
        text = Path(text).read_text()
    try:
        return dict(json.loads(text)), None
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"subnet must be a JSON config (or a file holding one), got {subnet!r}: {exc}") from None


def _prepare_trainer(trainer: pl.Trainer, epochs: int) -> None:
    """Point the trainer at fine-tuning: no co-search callback, checkpoints under ``<root>/finetune/checkpoints``
    (monitoring ``finetune/val_acc`` where the recipe monitored an accuracy), ``max_epochs = epochs``."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from naas_train.cosearch_callback import CoSearchCallback

    root = Path(trainer.default_root_dir) / "finetune"
    trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, CoSearchCallback)]
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(root / "checkpoints")
            if cb.monitor is not None:  # the recipe's monitor is a supernet metric: watch the subnet's
                cb.monitor, cb.mode = ("finetune/val_loss", "min") if "loss" in cb.monitor else ("finetune/val_acc", "max")
                cb.kth_value = torch.tensor(torch.inf if cb.mode == "min" else -torch.inf)
    trainer.fit_loop.max_epochs = epochs


def run_finetune(
    trainer: pl.Trainer,
    model: pl.LightningModule | nn.Module,
    datamodule: pl.LightningDataModule,
    ckpt_path: str | os.PathLike[str] | None = None,
    result: str | os.PathLike[str] | None = None,
    subnet: str | MappingABC[str, Any] | None = None,
    epochs: int = 10,
    lr: float = 0.01,
    warmup_epochs: float = 0.0,
    kd_ratio: float = 1.0,
    label_smoothing: float = 0.1,
    weight_decay: float = 3e-5,
    resume: str | os.PathLike[str] | None = None,
) -> Path:
    """Fine-tune the subnet of ``result`` (or ``subnet``) of the supernet in ``model`` (a SupernetModule, or the
    supernet itself) on ``trainer`` / ``datamodule``; returns the fine-tuned checkpoint
    (``<default_root_dir>/finetune/finetuned.ckpt``, what ``naas-train export --checkpoint`` reads).

    Supernet weights come from ``ckpt_path`` (any :mod:`naas_train.checkpoints` format: a SupernetModule
    checkpoint, a plain state dict, an OFA checkpoint), else from the checkpoint ``result.json`` names, else
    ``model`` as given. ``resume``: a fine-tuning checkpoint to continue (Lightning's ``ckpt_path`` of ``fit``).
    The trainer should be fresh (not fitted before).
    """
    config, res = read_subnet(result, subnet)
    net = getattr(model, "net", model)
    if not hasattr(net, "extract") or not hasattr(net, "space"):
        raise ValueError(f"finetune needs a supernet (a module with space and extract), got {type(net).__name__}")
    source = ckpt_path or (res or {}).get("supernet_checkpoint")
    if source is not None:
        if not Path(source).is_file():
            raise ValueError(f"supernet checkpoint {source} does not exist")
        try:
            net.load_state_dict(load_net_state(source))
        except Exception as exc:  # noqa: BLE001 - unreadable or mismatched: one clear message
            raise ValueError(f"cannot load supernet checkpoint {source} into {type(net).__name__}: {exc}") from None
    deploy = ((res or {}).get("settings") or {}).get("deploy_resolution")
    module = FinetuneModule(supernet_spec(net), config, epochs=epochs, lr=lr, warmup_epochs=warmup_epochs,
                            kd_ratio=kd_ratio, label_smoothing=label_smoothing, weight_decay=weight_decay,
                            resolution=deploy, precision=(res or {}).get("precision"), supernet=net.cpu())
    _prepare_trainer(trainer, epochs)
    trainer.fit(module, datamodule=datamodule, ckpt_path=None if resume is None else str(resume))
    final = Path(trainer.default_root_dir) / FINETUNED_CKPT
    trainer.save_checkpoint(str(final), weights_only=False)  # full state: fit(ckpt_path=...) can resume it
    return final


class FinetuneExportMixin:
    """``finetune`` and ``export`` entry points for :class:`naas_train.trainer.NaasTrainer`
    (``class NaasTrainer(FinetuneExportMixin, pl.Trainer)``); LightningCLI turns their arguments into the
    ``naas-train finetune`` / ``naas-train export`` options (``model`` and ``datamodule`` come from the recipe)."""

    def finetune(
        self,
        model: pl.LightningModule | None = None,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        result: str | None = None,
        subnet: str | None = None,
        epochs: int = 10,
        lr: float = 0.01,
        warmup_epochs: float = 0.0,
        kd_ratio: float = 1.0,
        label_smoothing: float = 0.1,
        weight_decay: float = 3e-5,
        resume: str | None = None,
    ) -> str:
        """Fine-tune the co-searched subnet with KD from the supernet; prints and returns the checkpoint path.

        Args:
            model: the recipe's SupernetModule (its ``net`` is the supernet).
            datamodule: the recipe's data module.
            ckpt_path: supernet checkpoint (default: the one result.json names).
            result: co-search result (default ``<default_root_dir>/cosearch/result.json`` unless ``subnet``).
            subnet: a subnet config (JSON text or file) instead of the result's.
            epochs: fine-tuning epochs.
            lr: peak learning rate per process (cosine schedule per step), multiplied by the world size.
            warmup_epochs: linear warm-up epochs.
            kd_ratio: weight of the distillation loss (0 disables the teacher).
            label_smoothing: label smoothing of the hard-label loss.
            weight_decay: weight decay.
            resume: a fine-tuning checkpoint to continue from.
        """
        if result is None and subnet is None:
            result = str(Path(self.default_root_dir) / "cosearch" / "result.json")  # type: ignore[attr-defined]
        path = run_finetune(self, model, datamodule, ckpt_path=ckpt_path, result=result, subnet=subnet,  # type: ignore[arg-type]
                            epochs=epochs, lr=lr, warmup_epochs=warmup_epochs, kd_ratio=kd_ratio,
                            label_smoothing=label_smoothing, weight_decay=weight_decay, resume=resume)
        if self.is_global_zero:  # type: ignore[attr-defined]
            print(f"fine-tuned checkpoint: {path}")
        return str(path)

    def export(
        self,
        model: pl.LightningModule | None = None,
        datamodule: pl.LightningDataModule | None = None,
        result: str | None = None,
        out: str | None = None,
        checkpoint: str | None = None,
        ckpt_path: str | None = None,
        overwrite: bool = False,
    ) -> str:
        """Write the export bundle (model, accelerator, mapping, metrics, report); prints and returns its path.
        Under several processes rank 0 alone builds and writes it; the others wait for it, and raise when it failed.

        Args:
            model: the recipe's SupernetModule (the supernet's architecture).
            datamodule: the recipe's data module (BN recalibration, accuracy of model.onnx on its validation split).
            result: co-search result (default ``<default_root_dir>/cosearch/result.json``).
            out: bundle folder (default ``<default_root_dir>/bundle``).
            checkpoint: fine-tuned checkpoint (``naas-train finetune``); default: the subnet extracted from the supernet.
            ckpt_path: supernet checkpoint (default: the one result.json names).
            overwrite: replace an existing bundle folder.
        """
        from naas_train.export import export_bundle

        root = Path(self.default_root_dir)  # type: ignore[attr-defined]
        path = Path(out or root / "bundle")

        def write() -> None:
            export_bundle(result or root / "cosearch" / "result.json", path, checkpoint=checkpoint,
                          supernet_checkpoint=ckpt_path, datamodule=datamodule,
                          supernet=getattr(model, "net", None), overwrite=overwrite)
            print(f"bundle: {path}")

        on_rank_zero(write)  # a failure on rank 0 is raised on every rank (no rank left waiting)
        return str(path)
