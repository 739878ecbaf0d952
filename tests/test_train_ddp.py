"""DDP with 2 CPU processes (gloo): both ranks train the same subnets on different data and stay identical."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase


class RecordRank(pl.Callback):
    """Records, on every rank, the subnets each training step activates and the targets it saw; saves them and the
    final supernet parameters (BN running statistics stay per rank, as in DDP) to ``out_dir/rank<r>.pt``."""

    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir
        self.subnets: list[tuple[int, dict]] = []
        self.targets: list[list[int]] = []

    def setup(self, trainer, pl_module, stage):
        activate = pl_module.net.set_active

        def recording(cfg):
            if trainer.training:
                self.subnets.append((trainer.global_step, cfg.to_dict()))
            activate(cfg)

        pl_module.net.set_active = recording

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.targets.append(batch[1].tolist())

    def on_train_end(self, trainer, pl_module):
        params = {k: v.detach().cpu() for k, v in pl_module.net.named_parameters()}
        torch.save({"subnets": self.subnets, "targets": self.targets, "params": params},
                   self.out_dir / f"rank{trainer.global_rank}.pt")


def test_two_rank_ddp_samples_identical_subnets_and_keeps_weights_identical(tmp_path):
    pl.seed_everything(0)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=4, dropout=0.2)
    phases = [
        Phase("full", epochs=1, lr=0.05),
        Phase("expand", epochs=1, lr=0.02, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
              subnets_per_step=2, sort_channels=0),
    ]
    module = SupernetModule(net, phases, val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 24], batch_size=4, train_size=24, val_size=8, bn_samples=8)
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", find_unused_parameters=True)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=len(phases), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path, callbacks=[RecordRank(tmp_path)])
    trainer.fit(module, data)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # 3 steps per epoch and rank; 1 then 2 sampled subnets per step, plus the reset to the full network after each
    assert len(ranks[0]["subnets"]) == 3 * (1 + 1) + 3 * (2 + 1)
    assert ranks[0]["subnets"] == ranks[1]["subnets"]
    assert ranks[0]["targets"] != ranks[1]["targets"]  # each rank reads its own shard
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
