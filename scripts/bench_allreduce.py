#!/usr/bin/env python
"""Benchmark: gradient all-reduces per training step under DDP, by subnets per step (2 CPU ranks, gloo).

    python scripts/bench_allreduce.py                       # subnets per step 1, 2, 4; 6 steps each
    python scripts/bench_allreduce.py --subnets 4 --steps 10 --width 0.5

A counting DDP comm hook records every bucket all-reduce (count and bytes) on rank 0. ``ours``: SupernetModule as
shipped (``no_sync`` for all but the last subnet of a step: one round of bucket all-reduces per step);
``per-subnet``: the same run with ``block_backward_sync`` disabled, i.e. one round per subnet backward (what the
module did before). Prints a Markdown table and a JSON line per row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase


class CountReductions(pl.Callback):
    """Registers a counting all-reduce comm hook; rank 0 writes counts, bytes and step times to ``out``."""

    def __init__(self, out: Path, per_subnet: bool) -> None:
        self.out, self.per_subnet = out, per_subnet
        self.calls = self.bytes = 0
        self.step_times: list[float] = []
        self._started = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        def hook(state, bucket):  # noqa: ANN001, ANN202 - DDP checks these annotations literally: none given
            self.calls += 1
            self.bytes += bucket.buffer().numel() * bucket.buffer().element_size()
            tensor = bucket.buffer().div_(dist.get_world_size())
            return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])

        trainer.strategy.model.register_comm_hook(None, hook)
        if self.per_subnet:  # the behaviour before: every backward synchronises
            trainer.strategy.block_backward_sync = contextlib.nullcontext

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.step_times.append(time.perf_counter() - self._started)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 0:
            steps = trainer.global_step
            times = sorted(self.step_times[1:]) or self.step_times
            self.out.write_text(json.dumps({"steps": steps, "allreduce_calls": self.calls, "bytes": self.bytes,
                                            "median_step_s": times[len(times) // 2]}))


def measure(subnets: int, steps: int, width: float, per_subnet: bool) -> dict:
    out = Path(tempfile.mkdtemp()) / "counts.json"
    pl.seed_everything(0, verbose=False)
    net = supernet.OFAMobileNetV3(width_mult=width, num_classes=10)
    phase = Phase("expand", epochs=1, lr=0.02, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
                  subnets_per_step=subnets)
    module = SupernetModule(net, [phase], val_resolutions=[32], kd_ratio=0.0)
    data = SyntheticData(resolutions=[32], batch_size=16, train_size=16 * 2 * steps, val_size=8, bn_samples=8,
                         num_classes=10)
    strategy = DDPStrategy(start_method="spawn", process_group_backend="gloo", find_unused_parameters=True)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[CountReductions(out, per_subnet)])
    trainer.fit(module, data)
    counts = json.loads(out.read_text())
    return {"mode": "per-subnet" if per_subnet else "ours", "subnets_per_step": subnets, "width": width,
            "steps": counts["steps"], "allreduce_per_step": counts["allreduce_calls"] / counts["steps"],
            "mb_per_step": counts["bytes"] / counts["steps"] / 2**20, "median_step_s": counts["median_step_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnets", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--width", type=float, default=0.5)
    args = parser.parse_args()
    rows = [measure(k, args.steps, args.width, per_subnet) for k in args.subnets for per_subnet in (True, False)]
    print("| mode | subnets / step | steps | bucket all-reduces / step | MiB all-reduced / step | median step (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['subnets_per_step']} | {r['steps']} | {r['allreduce_per_step']:.1f} "
              f"| {r['mb_per_step']:.2f} | {r['median_step_s']:.3f} |")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
