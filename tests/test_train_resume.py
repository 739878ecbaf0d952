"""Exact resume: a run killed mid-epoch (mid-phase) and resumed from ``last.ckpt`` ends bitwise equal to an
uninterrupted run (CPU, deterministic mode, dropout, augmentation and random resolution on)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase
from torch_helpers import one_thread, restore_determinism  # noqa: F401 (autouse fixtures)

STEPS_PER_EPOCH = 4
KILL_AT_STEP = 6  # epoch 1 (kernel phase), after its second batch; the expand phase (with channel sort) follows


class Killed(Exception):
    """Stands in for the process dying."""


class KillAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed


class CountBatches(pl.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1


def run(root, *callbacks, ckpt_path=None, init_seed=0):
    pl.seed_everything(init_seed)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=4, dropout=0.3)
    phases = [
        Phase("full", epochs=1, lr=0.05),
        Phase("kernel", epochs=1, lr=0.02, ks_list=[3, 5, 7]),
        Phase("expand", epochs=1, lr=0.02, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
              subnets_per_step=2, sort_channels=0),
    ]
    module = SupernetModule(net, phases, val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 20, 24], batch_size=8, train_size=8 * STEPS_PER_EPOCH, val_size=16,
                         bn_samples=16)
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=1, save_top_k=0, save_last=True)
    trainer = pl.Trainer(accelerator="cpu", deterministic=True, max_epochs=len(phases), logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                         callbacks=[checkpoints, *callbacks])
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return module, trainer


def test_killed_and_resumed_run_is_bitwise_equal_to_uninterrupted(tmp_path):
    reference, ref_trainer = run(tmp_path / "reference")

    with pytest.raises(Killed):
        run(tmp_path / "killed", KillAt(KILL_AT_STEP))
    counter = CountBatches()
    resumed, trainer = run(tmp_path / "killed", counter, ckpt_path="last", init_seed=1)

    assert counter.batches == 3 * STEPS_PER_EPOCH - KILL_AT_STEP  # continued mid-epoch, nothing replayed
    assert trainer.global_step == ref_trainer.global_step == 3 * STEPS_PER_EPOCH
    for name, value in reference.state_dict().items():  # supernet, teacher, BN statistics
        assert torch.equal(value, resumed.state_dict()[name]), name
    ref_state = ref_trainer.optimizers[0].state_dict()["state"]
    new_state = trainer.optimizers[0].state_dict()["state"]
    assert all(torch.equal(ref_state[i]["momentum_buffer"], new_state[i]["momentum_buffer"]) for i in ref_state)
    assert resumed.choice_counts == reference.choice_counts
