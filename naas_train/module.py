"""SupernetModule: OFA progressive shrinking with knowledge distillation as one LightningModule."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.strategies import ParallelStrategy
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.nn.modules.batchnorm import _BatchNorm

from naas_train.checkpoints import load_net_state
from naas_train.data import resize
from naas_train.phases import Phase, phase_at, phase_scheduler
from naas_train.rng import Stream, derive_seed, generator, seeded
from supernet import recalibrate_bn
from supernet.sorting import ChannelPermutations

GRID = ("min", "mid", "max")


def bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the running statistics of every BatchNorm in ``module``."""
    return {
        f"{name}.{key}": buf.clone()
        for name, m in module.named_modules()
        if isinstance(m, _BatchNorm)
        for key, buf in m.named_buffers(recurse=False)
    }


def load_bn_buffers(module: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Write back statistics taken by :func:`bn_buffers`."""
    buffers = dict(module.named_buffers())
    with torch.no_grad():
        for name, value in saved.items():
            buffers[name].copy_(value)


def permute_optimizer_state(optimizer: torch.optim.Optimizer, module: nn.Module, perms: ChannelPermutations) -> None:
    """Apply the channel permutations that ``module.sort_channels()`` applied to its weights to the optimizer state
    (momentum and any other per-parameter tensor of the parameter's shape)."""
    params = dict(module.named_parameters())
    for name, steps in perms.items():
        state = optimizer.state.get(params[name]) if name in params else None
        for key, value in (state or {}).items():
            if torch.is_tensor(value) and value.shape == params[name].shape:
                for dim, index in steps:
                    value = value.index_select(dim, index.to(value.device))
                state[key] = value


def head_outputs(net: nn.Module) -> int | None:
    """Number of logits ``net`` produces: its ``num_classes``, else the last ``nn.Linear``'s outputs."""
    classes = getattr(net, "num_classes", None)
    if isinstance(classes, int):
        return classes
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def check_data_classes(module: pl.LightningModule) -> None:
    """The trainer's data module may not have more classes than ``module.net``'s head (checked after the data
    module's ``setup``, which Lightning runs before the module's)."""
    trainer = module._trainer
    data = getattr(trainer, "datamodule", None) if trainer is not None else None
    outputs = head_outputs(module.net)
    if outputs is not None and hasattr(data, "check_head") and getattr(data, "train_set", None) is not None:
        data.check_head(outputs, f"the network's classifier ({type(module.net).__name__})")


def frozen_teacher(net: nn.Module) -> nn.Module:
    """A copy of ``net`` without gradients or dropout, to run in train mode (BN on batch statistics) as the
    distillation teacher, like OFA's ``teacher_model.train()`` under ``no_grad``."""
    teacher = copy.deepcopy(net).requires_grad_(False)
    for module in teacher.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return teacher


def mid_config(space: Any, resolution: int) -> Any:
    """The subnet taking the middle choice of every gene (e.g. kernel 5, expand 4, depth 3 in OFA's space)."""
    genes = {name: [c[len(c) // 2] for c in per_position] for name, per_position in space.gene_choices().items()}
    return space.make_config(genes, resolution)


class SupernetModule(pl.LightningModule):
    """Trains an elastic supernet through progressive-shrinking phases (OFA; Cai et al., ICLR 2020).

    Each step samples ``phase.subnets_per_step`` subnets from a generator seeded by ``(seed, global step)`` (the
    same on every rank), accumulates their gradients and steps the optimizer once; under DDP the gradients are
    all-reduced once per step (the backward passes of all but the last subnet run under ``no_sync``). Elastic
    phases distil from the full network as trained by the phases before them (or from ``teacher_ckpt``, or
    ``init_ckpt``'s largest subnet when the schedule starts elastic): label-smoothed CE plus
    ``kd_ratio`` × soft-target CE against the teacher's softmax. Validation recalibrates BN for the min / mid / max
    subnets at every ``val_resolutions`` entry and logs ``val/acc_{min,mid,max}`` (top-1, mean over resolutions).
    """

    def __init__(
        self,
        net: nn.Module,
        phases: list[Phase],
        resolutions: list[int] = [224],  # noqa: B006 (jsonargparse reads the default)
        val_resolutions: list[int] | None = None,
        kd_ratio: float = 1.0,
        label_smoothing: float = 0.1,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 3e-5,
        scale_lr: bool = True,
        teacher_ckpt: str | None = None,
        init_ckpt: str | None = None,
        channels_last: bool = False,
        seed: int = 0,
    ) -> None:
        """
        Args:
            net: the supernet (e.g. ``supernet.OFAMobileNetV3``): ``space``, ``set_active``, ``sort_channels``.
            phases: the progressive-shrinking schedule, in order.
            resolutions: training resolutions (linked from the data module by the CLI).
            val_resolutions: resolutions of the validation grid (default: ``resolutions``).
            kd_ratio: weight of the distillation loss in elastic phases (0 disables the teacher).
            label_smoothing: label smoothing of the hard-label cross entropy.
            optimizer: timm ``create_optimizer_v2`` name ("sgd" is SGD with Nesterov momentum).
            momentum: optimizer momentum.
            weight_decay: weight decay (not applied to BN and bias parameters).
            scale_lr: multiply every phase lr by the world size (OFA's lrs are per GPU).
            teacher_ckpt: checkpoint (Lightning or plain ``state_dict`` of ``net``) of a trained full network;
                it initialises both the supernet and the teacher (OFA starts shrinking from the teacher).
            init_ckpt: checkpoint (any format ``load_net_state`` reads) the supernet starts from, e.g. OFA's
                published supernet; loaded at the first ``setup`` after ``teacher_ckpt``, so it wins for the
                supernet. A resumed fit restores its own checkpoint after ``setup``, replacing these weights.
                Without ``teacher_ckpt``, a schedule starting elastic distils from this network's largest subnet.
            channels_last: keep the supernet, the teacher and the input batches in ``torch.channels_last``
                (faster convolutions on GPUs, with ``precision: bf16-mixed``).
            seed: seed of subnet sampling and dropout masks.
        """
        super().__init__()
        if not phases:
            raise ValueError("phases must list at least one phase")
        elastic = [i for i, p in enumerate(phases) if p.elastic]
        if kd_ratio > 0 and elastic and teacher_ckpt is None and init_ckpt is None and elastic[0] == 0:
            raise ValueError("kd_ratio > 0 needs a full-network phase before the first elastic phase, teacher_ckpt "
                             "or init_ckpt")
        self.save_hyperparameters(ignore=["net"])
        self.hparams["phases"] = [asdict(p) for p in phases]  # plain data: checkpoints load with weights_only
        self.automatic_optimization = False
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(memory_format=self.memory_format)
        self.teacher = frozen_teacher(net) if kd_ratio > 0 and elastic else None
        self.phases = list(phases)
        self.resolutions = list(resolutions)
        self.val_resolutions = list(val_resolutions or resolutions)
        self.kd_ratio = kd_ratio
        self.seed = seed
        self.first_elastic = elastic[0] if elastic else None
        self.hard_loss = LabelSmoothingCrossEntropy(label_smoothing) if label_smoothing > 0 else nn.CrossEntropyLoss()
        self.soft_loss = SoftTargetCrossEntropy()
        self.choice_counts: dict[str, Counter] = {}
        self._scheduler: tuple[int, CosineLRScheduler] | None = None
        self._step_started: float | None = None
        self._val: dict[str, Any] = {}
        self._initialised = False

    # --- setup -----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Load ``teacher_ckpt`` and ``init_ckpt`` once per module (a later fit/validate on the same module keeps
        its trained weights). Lightning restores a ``ckpt_path`` after this hook, so a resumed run's checkpoint wins."""
        check_data_classes(self)
        if self._initialised:
            return
        self._initialised = True
        if self.hparams.teacher_ckpt is not None:
            state = load_net_state(self.hparams.teacher_ckpt)
            self.net.load_state_dict(state)
            if self.teacher is not None:
                self.teacher.load_state_dict(state)
        if self.hparams.init_ckpt is not None:
            self.net.load_state_dict(load_net_state(self.hparams.init_ckpt))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return create_optimizer_v2(
            self.net,
            opt=self.hparams.optimizer,
            lr=self.phases[0].lr,
            weight_decay=self.hparams.weight_decay,
            momentum=self.hparams.momentum,
        )

    @property
    def phase_index(self) -> int:
        return phase_at(self.phases, self.current_epoch)[0]

    # --- training --------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        """At a phase's first epoch: snapshot the teacher, and sort channels (with their optimizer state)."""
        index, start = phase_at(self.phases, self.current_epoch)
        if self.current_epoch != start:
            return
        phase = self.phases[index]
        if index == self.first_elastic and self.teacher is not None and self.hparams.teacher_ckpt is None:
            self.teacher.load_state_dict(self.net.state_dict())
        if phase.sort_channels is not None:
            perms = self.net.sort_channels(phase.sort_channels)
            permute_optimizer_state(self.optimizers().optimizer, self.net, perms)
            self.net.to(memory_format=self.memory_format)  # index_select returns contiguous tensors

    def sample_subnets(self, phase: Phase, step: int, resolution: int) -> list[Any]:
        """The subnets of global step ``step``: a pure function of ``(seed, step)``, identical on every rank."""
        space = self.net.space
        rng = generator(self.seed, Stream.SUBNETS, step)
        choices = {
            "ks_list": phase.ks_list or space.ks_list[-1:],
            "expand_list": phase.expand_list or space.expand_list[-1:],
            "depth_list": phase.depth_list or space.depth_list[-1:],
        }
        return [space.sample(rng, resolutions=(resolution,), **choices) for _ in range(phase.subnets_per_step)]

    def _set_lr(self, index: int, step: int) -> float:
        steps_per_epoch = int(self.trainer.num_training_batches)
        if self._scheduler is None or self._scheduler[0] != index:
            scale = self.trainer.world_size if self.hparams.scale_lr else 1
            self._scheduler = index, phase_scheduler(self.optimizers().optimizer, self.phases[index], steps_per_epoch, scale)
        start_epoch = phase_at(self.phases, self.current_epoch)[1]
        self._scheduler[1].step_update(step - start_epoch * steps_per_epoch)
        return self.optimizers().optimizer.param_groups[0]["lr"]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        images = images.contiguous(memory_format=self.memory_format)
        index, step = self.phase_index, self.global_step
        phase = self.phases[index]
        lr = self._set_lr(index, step)
        configs = self.sample_subnets(phase, step, images.shape[-1])
        self._count_choices(phase.name, configs)
        soft = None
        if phase.elastic and self.teacher is not None:
            self.teacher.train()  # batch statistics (OFA); the running ones lag a fast-moving supernet
            with torch.no_grad():
                soft = self.teacher(images).float().softmax(-1)
        optimizer = self.optimizers()
        optimizer.zero_grad()
        losses = []
        for i, cfg in enumerate(configs):
            self.net.set_active(cfg)
            with seeded(derive_seed(self.seed, Stream.DROPOUT, step, i, self.global_rank), [self.device]):
                logits = self.net(images)
            loss = self.hard_loss(logits, targets)
            if soft is not None:
                loss = loss + self.kd_ratio * self.soft_loss(logits, soft)
            self._backward(loss, sync=i == len(configs) - 1)
            losses.append(loss.detach())
        optimizer.step()
        self.net.set_active(self.net.space.max_config(images.shape[-1]))
        self._log_step(losses, lr, index, images.shape[0])
        return torch.stack(losses).mean()

    def _backward(self, loss: torch.Tensor, sync: bool) -> None:
        """``manual_backward``; with ``sync=False`` under a parallel strategy, without the gradient all-reduce
        (DDP ``no_sync``: gradients accumulate locally and the reducer marks the parameters this backward used,
        so the next synced backward averages them even where its own subnet leaves them unused)."""
        strategy = self.trainer.strategy
        if sync or not isinstance(strategy, ParallelStrategy):
            self.manual_backward(loss)
            return
        with strategy.block_backward_sync():
            self.manual_backward(loss)

    def _count_choices(self, phase: str, configs: Sequence[Any]) -> None:
        counts = self.choice_counts.setdefault(phase, Counter())
        for cfg in configs:
            for gene in self.net.space.gene_fields:
                counts.update(f"{gene}={v}" for v in getattr(cfg, gene))
            counts[f"r={cfg.r}"] += 1

    def _log_step(self, losses: list[torch.Tensor], lr: float, phase: int, batch_size: int) -> None:
        now = time.perf_counter()
        if self._step_started is not None:
            rate = batch_size * self.trainer.world_size / (now - self._step_started)
            self.log("train/img_per_s", rate, prog_bar=True)
        self._step_started = now
        for i, loss in enumerate(losses):
            self.log(f"train/loss_subnet{i}", loss)
        self.log("train/loss", torch.stack(losses).mean(), prog_bar=True)
        self.log("train/lr", lr)
        self.log("train/phase", float(phase), prog_bar=True)

    def on_train_epoch_end(self) -> None:
        """Log the current phase's histogram of sampled choices (counts so far)."""
        name = self.phases[self.phase_index].name
        counts = self.choice_counts.get(name, Counter())
        self.log_dict({f"choices/{name}/{c}": float(n) for c, n in sorted(counts.items())}, sync_dist=True)
        for logger in self.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                log_choice_histograms(logger, name, counts, self.global_step)

    # --- validation ------------------------------------------------------------------------------
    def val_grid(self) -> list[tuple[str, Any]]:
        """``(name, config)`` for min / mid / max at every validation resolution."""
        space = self.net.space
        grid = []
        for r in self.val_resolutions:
            grid += [("min", space.min_config(r)), ("mid", mid_config(space, r)), ("max", space.max_config(r))]
        return grid

    def on_validation_epoch_start(self) -> None:
        """Recalibrate BN for every grid subnet on the data module's BN batches; keep each one's statistics."""
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "bn_dataloader"):
            raise TypeError("SupernetModule validation needs a data module with bn_dataloader() (e.g. SupernetData)")
        grid = self.val_grid()
        saved = bn_buffers(self.net)
        bn_batches = [x for x, _ in datamodule.bn_dataloader()]
        precision = self.trainer.precision_plugin  # the input dtype and autocast validation_step gets
        stats = []
        with precision.forward_context():
            for _, cfg in grid:
                self.net.set_active(cfg)
                recalibrate_bn(self.net, (self._resize(precision.convert_input(x.to(self.device)), cfg.r)
                                          for x in bn_batches))
                stats.append(bn_buffers(self.net))
        load_bn_buffers(self.net, saved)
        self._val = {"grid": grid, "stats": stats, "saved": saved,
                     "correct": torch.zeros(len(grid), device=self.device), "count": torch.zeros((), device=self.device)}

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, targets = batch
        val = self._val
        for j, ((_, cfg), stats) in enumerate(zip(val["grid"], val["stats"])):
            load_bn_buffers(self.net, stats)
            self.net.set_active(cfg)
            logits = self.net(self._resize(images, cfg.r))
            val["correct"][j] += (logits.argmax(-1) == targets).sum()
        val["count"] += targets.numel()

    def _resize(self, images: torch.Tensor, resolution: int) -> torch.Tensor:
        """``images`` at ``resolution`` in the module's memory format."""
        return resize(images, resolution).contiguous(memory_format=self.memory_format)

    def on_validation_epoch_end(self) -> None:
        val = self._val
        load_bn_buffers(self.net, val["saved"])
        self.net.set_active(self.net.space.max_config(max(self.resolutions)))
        correct = self.trainer.strategy.reduce(val["correct"], reduce_op="sum")
        count = self.trainer.strategy.reduce(val["count"], reduce_op="sum")
        accuracy = correct / count.clamp(min=1)
        for name in GRID:
            picked = [(cfg.r, a) for (n, cfg), a in zip(val["grid"], accuracy) if n == name]
            self.log(f"val/acc_{name}", torch.stack([a for _, a in picked]).mean(), prog_bar=True, sync_dist=True)
            if len(picked) > 1:
                for r, a in picked:
                    self.log(f"val/acc_{name}_r{r}", a, sync_dist=True)
        self.log("val/acc", accuracy.mean(), sync_dist=True)
        self._val = {}

    # --- checkpoint ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["choice_counts"] = {phase: dict(c) for phase, c in self.choice_counts.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.choice_counts = {phase: Counter(c) for phase, c in checkpoint.get("choice_counts", {}).items()}


def log_choice_histograms(logger: pl.loggers.WandbLogger, phase: str, counts: Counter, step: int) -> None:
    """One wandb bar chart per gene (``ks``, ``e``, ``d``, ``r``) of the sampled choice counts."""
    import wandb

    genes = sorted({choice.split("=")[0] for choice in counts})
    charts = {}
    for gene in genes:
        rows = [[choice.split("=")[1], count] for choice, count in sorted(counts.items()) if choice.startswith(f"{gene}=")]
        table = wandb.Table(data=rows, columns=["choice", "count"])
        charts[f"choices/{phase}/{gene}"] = wandb.plot.bar(table, "choice", "count", title=f"{phase}: {gene}")
    logger.experiment.log({**charts, "trainer/global_step": step})
