"""Progressive-shrinking phases and their per-iteration learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.scheduler import CosineLRScheduler


@dataclass
class Phase:
    """One stage of progressive shrinking (Cai et al., "Once-for-All", ICLR 2020, Sec. 3.2).

    A choice list left as ``None`` keeps that dimension at the space's largest value, so a phase with no lists
    trains the full network (the teacher). The first phase with an open choice starts knowledge distillation.
    """

    name: str
    epochs: int
    lr: float
    warmup_epochs: int = 0
    ks_list: list[int] | None = None
    expand_list: list[int] | None = None
    depth_list: list[int] | None = None
    subnets_per_step: int = 1
    sort_channels: int | None = None
    """At the phase's first epoch, importance-sort the elastic middle channels keeping the channel sets of this
    many smaller expand ratios nested (OFA ``re_organize_middle_weights(expand_ratio_stage=k)``); ``None``: no sort."""

    def __post_init__(self) -> None:
        def refuse(field: str, allowed: str) -> None:
            raise ValueError(f"phase {self.name!r}: {field} must be {allowed}, got {getattr(self, field)!r}")

        if not self.epochs >= 1:
            refuse("epochs", "an integer >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            refuse("lr", "a finite number > 0")
        if not self.subnets_per_step >= 1:
            refuse("subnets_per_step", "an integer >= 1")
        if not 0 <= self.warmup_epochs < self.epochs:
            refuse("warmup_epochs", f"in [0, epochs={self.epochs})")

    @property
    def elastic(self) -> bool:
        """Whether the phase samples anything but the full network."""
        return any(c is not None and len(set(c)) > 1 for c in (self.ks_list, self.expand_list, self.depth_list))


def phase_at(phases: Sequence[Phase], epoch: int) -> tuple[int, int]:
    """``(phase index, first epoch of that phase)`` for ``epoch``; past the schedule, the last phase continues."""
    start = 0
    for index, phase in enumerate(phases):
        if epoch < start + phase.epochs or index == len(phases) - 1:
            return index, start
        start += phase.epochs
    raise ValueError("the schedule has no phases")


def phase_scheduler(optimizer: torch.optim.Optimizer, phase: Phase, steps_per_epoch: int, lr_scale: float) -> CosineLRScheduler:
    """timm cosine schedule with linear warmup for one phase, stepped per iteration via ``step_update``.

    The phase's peak lr is ``phase.lr * lr_scale``; warmup starts at 0 and lasts ``warmup_epochs``, then the lr
    decays to 0 over the remaining epochs.
    """
    peak = phase.lr * lr_scale
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = peak
    warmup = phase.warmup_epochs * steps_per_epoch
    return CosineLRScheduler(
        optimizer,
        t_initial=max(1, (phase.epochs - phase.warmup_epochs) * steps_per_epoch),
        lr_min=0.0,
        warmup_t=warmup,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=False,
    )
