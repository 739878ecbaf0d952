"""DDP with 2 CPU processes (gloo): both ranks train the same subnets on different data, all-reduce gradients once
per step whatever the number of subnets, and stay identical."""

from __future__ import annotations

from collections import defaultdict

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase

STEPS_PER_EPOCH = 3  # 24 training images, 2 ranks, batch 4
SUBNETS = [1, 4]  # subnets per step of the two phases


class RecordRank(pl.Callback):
    """Records, on every rank, the subnets each training step activates, the targets it saw, every DDP bucket
    all-reduce (through a counting comm hook, with the bucket's local gradients before the reduction), the
    gradients after every backward and the synced gradients the optimizer steps on; saves them and the final
    supernet parameters (BN running statistics stay per rank, as in DDP) to ``out_dir/rank<r>.pt``."""

    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir
        self.subnets: list[tuple[int, dict]] = []
        self.targets: list[list[int]] = []
        self.reduced: dict[int, list[int]] = defaultdict(list)  # step -> bucket indices all-reduced
        self.local: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)  # step -> local gradients, by name
        self.backwards: dict[int, list[dict[str, torch.Tensor | None]]] = defaultdict(list)
        self.synced: dict[int, dict[str, torch.Tensor | None]] = {}
        self.step = 0

    def setup(self, trainer, pl_module, stage):
        activate = pl_module.net.set_active

        def recording(cfg):
            if trainer.training:
                self.subnets.append((trainer.global_step, cfg.to_dict()))
            activate(cfg)

        pl_module.net.set_active = recording

    def on_train_start(self, trainer, pl_module):
        names = {param: f"net.{name}" for name, param in pl_module.net.named_parameters()}

        def counting_allreduce(state, bucket):
            self.reduced[self.step].append(bucket.index())
            for param, grad in zip(bucket.parameters(), bucket.gradients()):
                if param in names:
                    self.local[self.step][names[param]] = grad.detach().clone()
            return allreduce_hook(state, bucket)

        trainer.strategy.model.register_comm_hook(None, counting_allreduce)

    def grads(self, pl_module) -> dict[str, torch.Tensor | None]:
        return {f"net.{name}": None if p.grad is None else p.grad.detach().clone()
                for name, p in pl_module.net.named_parameters()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = trainer.global_step
        self.targets.append(batch[1].tolist())

    def on_after_backward(self, trainer, pl_module):
        self.backwards[self.step].append(self.grads(pl_module))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.synced[self.step] = self.grads(pl_module)

    def on_train_end(self, trainer, pl_module):
        params = {k: v.detach().cpu() for k, v in pl_module.net.named_parameters()}
        torch.save({"subnets": self.subnets, "targets": self.targets, "params": params, "reduced": dict(self.reduced),
                    "local": dict(self.local), "backwards": dict(self.backwards), "synced": self.synced},
                   self.out_dir / f"rank{trainer.global_rank}.pt")


def test_two_rank_ddp_reduces_once_per_step_and_keeps_weights_identical(tmp_path):
    pl.seed_everything(0)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=4, dropout=0.2)
    phases = [
        Phase("full", epochs=1, lr=0.05, subnets_per_step=SUBNETS[0]),
        Phase("expand", epochs=1, lr=0.02, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
              subnets_per_step=SUBNETS[1], sort_channels=0),
    ]
    module = SupernetModule(net, phases, val_resolutions=[16])
    data = SyntheticData(resolutions=[16, 24], batch_size=4, train_size=24, val_size=8, bn_samples=8)
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", find_unused_parameters=True)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=len(phases), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path, callbacks=[RecordRank(tmp_path)])
    trainer.fit(module, data)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    steps = range(STEPS_PER_EPOCH * len(phases))
    # every step activates its sampled subnets, then resets to the full network
    assert len(ranks[0]["subnets"]) == sum(STEPS_PER_EPOCH * (n + 1) for n in SUBNETS)
    assert ranks[0]["subnets"] == ranks[1]["subnets"]
    assert ranks[0]["targets"] != ranks[1]["targets"]  # each rank reads its own shard
    buckets = 1 + max(i for rank in ranks for indices in rank["reduced"].values() for i in indices)
    for step in steps:
        assert len(ranks[0]["backwards"][step]) == SUBNETS[step // STEPS_PER_EPOCH]
        # one all-reduce round per step: every DDP bucket exactly once, whatever the number of subnets
        for rank in ranks:
            assert sorted(rank["reduced"][step]) == list(range(buckets)), (step, rank["reduced"])

    # the optimizer steps on the mean over ranks of each rank's locally accumulated gradients, including those of
    # parameters that only an earlier subnet of the step used (DDP no_sync + find_unused_parameters)
    earlier_only = set()
    for step in steps:
        local = [rank["local"][step] for rank in ranks]
        for name, synced in ranks[0]["synced"][step].items():
            assert (synced is None) == (ranks[1]["synced"][step][name] is None), name
            if synced is None:  # no subnet of the step used it, on any rank
                assert all(not g[name].any() for g in local), (step, name)
                continue
            assert torch.equal(synced, ranks[1]["synced"][step][name]), (step, name)
            assert torch.equal(synced, (local[0][name] + local[1][name]) / 2), (step, name)
            if len(ranks[0]["backwards"][step]) > 1:
                before_last = ranks[0]["backwards"][step][-2][name]
                if before_last is not None and before_last.any() and torch.equal(before_last, local[0][name]):
                    earlier_only.add(name)
    assert earlier_only, "no step left a parameter unused by its last subnet: the test does not cover that case"
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
