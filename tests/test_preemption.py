"""Preemption: SIGUSR1 mid-fit -> ``hpc_ckpt_<step>.ckpt`` saved at the next batch end (not in the signal handler),
the run stops with :class:`Preempted` (requeue asked on SLURM), and ``fit(ckpt_path="last")`` resumes from the
newest checkpoint to weights bitwise equal to an uninterrupted run. Plus :func:`newest_checkpoint`'s choice."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn

import supernet
from naas_train.data import SyntheticData
from naas_train.finetune import FinetuneExportMixin
from naas_train.module import SupernetModule
from naas_train.phases import Phase
from naas_train.preemption import EX_TEMPFAIL, Preempted, PreemptionCheckpoint, newest_checkpoint
from naas_train.trainer import NaasTrainer
from torch_helpers import one_thread, restore_determinism  # noqa: F401 (autouse fixtures)

STEPS_PER_EPOCH = 4
SIGNAL_AT_STEP = 6  # the signal arrives during the batch that makes step 7 (epoch 1, mid-epoch)


class SignalAt(pl.Callback):
    """Sends SIGUSR1 to this process at the start of the batch after ``step``; records what the handler did."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.flag_after_signal: bool | None = None
        self.files_after_signal: list[str] | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)  # Python runs the handler before the next line
            preemption = next(c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint))
            self.flag_after_signal = preemption.received
            self.files_after_signal = sorted(p.name for p in Path(trainer.default_root_dir).glob("hpc_ckpt_*"))


class Hooks(pl.Callback):
    """Records hooks that must not run after a preemption (the co-search runs at ``on_fit_end``)."""

    def __init__(self) -> None:
        self.batches = 0
        self.fit_ended = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches += 1

    def on_fit_end(self, trainer, pl_module):
        self.fit_ended = True


def run(root: Path, *callbacks: pl.Callback, ckpt_path: str | None = None, init_seed: int = 0):
    pl.seed_everything(init_seed)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=4, dropout=0.3)
    phases = [Phase("full", epochs=1, lr=0.05), Phase("kernel", epochs=1, lr=0.02, ks_list=[3, 5, 7]),
              Phase("expand", epochs=1, lr=0.02, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
                    subnets_per_step=2, sort_channels=0)]
    module = SupernetModule(net, phases, val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 20, 24], batch_size=8, train_size=8 * STEPS_PER_EPOCH, val_size=16,
                         bn_samples=16)
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", every_n_train_steps=3, save_top_k=0, save_last=True)
    trainer = NaasTrainer(accelerator="cpu", deterministic=True, max_epochs=len(phases), logger=False,
                          enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                          callbacks=[checkpoints, *callbacks])
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return module, trainer


@pytest.fixture
def fake_scontrol(tmp_path, monkeypatch) -> Path:
    """A SLURM job id and an ``scontrol`` on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    script = bin_dir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    return calls


def test_preempted_run_saves_at_batch_end_requeues_stops_and_resumes_bitwise_equal(tmp_path, fake_scontrol):
    reference, ref_trainer = run(tmp_path / "reference")

    root = tmp_path / "preempted"
    root.mkdir()
    torch.save({"global_step": 2}, root / "hpc_ckpt_2.ckpt")  # an older preemption's checkpoint: pruned
    handler_before = signal.getsignal(signal.SIGUSR1)
    sender, hooks = SignalAt(SIGNAL_AT_STEP), Hooks()
    with pytest.raises(Preempted) as stopped:
        run(root, sender, hooks)
    hpc = root / f"hpc_ckpt_{SIGNAL_AT_STEP + 1}.ckpt"
    assert sender.flag_after_signal is True and sender.files_after_signal == ["hpc_ckpt_2.ckpt"]  # handler: flag only
    assert (stopped.value.checkpoint, stopped.value.step, stopped.value.requeued) == (hpc, SIGNAL_AT_STEP + 1, True)
    assert stopped.value.code == 0  # requeued
    assert fake_scontrol.read_text().split("\n") == ["requeue 4242", ""]
    assert sorted(p.name for p in root.glob("hpc_ckpt_*")) == [hpc.name]
    assert torch.load(hpc, weights_only=False)["global_step"] == SIGNAL_AT_STEP + 1
    assert hooks.batches == SIGNAL_AT_STEP + 1 and not hooks.fit_ended  # stopped there; no fit-end hooks
    assert signal.getsignal(signal.SIGUSR1) == handler_before
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert last == SIGNAL_AT_STEP  # older than the hpc checkpoint: "last" must pick the hpc one

    counter = Hooks()
    resumed, trainer = run(root, counter, ckpt_path="last", init_seed=1)
    assert trainer.ckpt_path == str(hpc)
    assert counter.batches == 3 * STEPS_PER_EPOCH - (SIGNAL_AT_STEP + 1) and counter.fit_ended
    assert trainer.global_step == ref_trainer.global_step == 3 * STEPS_PER_EPOCH
    for name, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    ref_state = ref_trainer.optimizers[0].state_dict()["state"]
    new_state = trainer.optimizers[0].state_dict()["state"]
    assert all(torch.equal(ref_state[i]["momentum_buffer"], new_state[i]["momentum_buffer"]) for i in ref_state)
    assert resumed.choice_counts == reference.choice_counts


def test_preempted_off_slurm_exits_75_without_requeue(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    with pytest.raises(Preempted) as stopped:
        run(tmp_path, SignalAt(1))
    assert stopped.value.code == EX_TEMPFAIL and not stopped.value.requeued
    assert sorted(p.name for p in tmp_path.glob("hpc_ckpt_*")) == ["hpc_ckpt_2.ckpt"]


def test_naas_trainer_adds_one_preemption_callback_and_disables_lightning_requeue(tmp_path, monkeypatch):
    for key, value in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_ID": "7", "SLURM_JOB_NAME": "t"}.items():
        monkeypatch.setenv(key, value)
    environment = SLURMEnvironment(auto_requeue=True)
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, plugins=[environment],
                          default_root_dir=tmp_path)
    assert environment.auto_requeue is False
    assert [type(c) for c in trainer.callbacks].count(PreemptionCheckpoint) == 1
    # Lightning alone would resume fit(ckpt_path=None) on SLURM from any hpc checkpoint of default_root_dir
    _ckpt(tmp_path / "hpc_ckpt_5.ckpt", 5, mtime=100)
    connector = trainer._checkpoint_connector
    assert connector._parse_ckpt_path(TrainerFn.FITTING, None, model_provided=True, model_connected=False) is None
    assert connector._parse_ckpt_path(TrainerFn.FITTING, "last", model_provided=True,
                                      model_connected=False) == str(tmp_path / "hpc_ckpt_5.ckpt")
    own = PreemptionCheckpoint(signal="SIGUSR2")
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, callbacks=[own])
    assert [c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)] == [own]
    with pytest.raises(ValueError, match="unknown signal"):
        PreemptionCheckpoint(signal="USR1")


def test_finetune_keeps_its_preemption_checkpoints_apart(tmp_path, monkeypatch):
    """While NaasTrainer fine-tunes, preemption checkpoints (and fit's ``ckpt_path="last"``) use
    ``<root>/finetune``, so a fine-tuning checkpoint never shadows the supernet's."""
    seen = []
    monkeypatch.setattr(FinetuneExportMixin, "finetune",
                        lambda self, *args, **kwargs: seen.append(self.preemption.directory(self)) or "done")
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path)
    assert trainer.finetune(epochs=1) == "done"
    assert seen == [tmp_path / "finetune"] and trainer.preemption.directory(trainer) == tmp_path


def _ckpt(path: Path, step: int, mtime: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {"w": torch.zeros(2)}}, path)
    os.utime(path, (mtime, mtime))
    return path


def test_newest_checkpoint_picks_the_highest_recorded_step(tmp_path):
    assert newest_checkpoint(tmp_path) is None
    ckpts = tmp_path / "checkpoints"
    best = _ckpt(ckpts / "best-epoch=0.ckpt", 4, mtime=100)
    assert newest_checkpoint(tmp_path) == best
    last = _ckpt(ckpts / "last.ckpt", 10, mtime=200)
    hpc = _ckpt(tmp_path / "hpc_ckpt_8.ckpt", 8, mtime=300)  # written later, but an older step
    assert newest_checkpoint(tmp_path) == last
    hpc = _ckpt(tmp_path / "hpc_ckpt_12.ckpt", 12, mtime=50)
    assert newest_checkpoint(tmp_path) == hpc
    tie = _ckpt(ckpts / "last-v1.ckpt", 12, mtime=400)  # same step: the hpc checkpoint wins the tie
    assert newest_checkpoint(tmp_path) == hpc
    (tmp_path / "hpc_ckpt_99.ckpt").write_bytes(b"half-written")  # unreadable: skipped
    (ckpts / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "other.ckpt").write_bytes(b"")  # not one of the searched names
    assert newest_checkpoint(tmp_path) == hpc
    hpc.unlink()
    assert newest_checkpoint(tmp_path) == tie
