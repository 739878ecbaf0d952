#!/usr/bin/env python
"""Benchmark: images/s of one full progressive-shrinking training step (N sampled subnets + KD from the teacher,
accumulated gradients, one optimizer step) through Lightning, data loading excluded.

    python scripts/bench_train.py                                   # CPU, digits-smoke-sized supernet
    python scripts/bench_train.py --preset imagenet --device cuda --bf16 --channels-last [--compile]

Prints one Markdown table row per run (for BENCHMARKS.md) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch

import supernet
from naas_train.data import SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase

PRESETS = {
    # the digits_smoke recipe's supernet and its expand phase
    "digits": dict(width_mult=0.5, num_classes=10, resolution=24, batch_size=64, subnets=2),
    # OFA MobileNetV3 expand phase on ImageNet (recipes/ofa_mbv3_imagenet.yaml): 224 px, 64 images, 4 subnets
    "imagenet": dict(width_mult=1.0, num_classes=1000, resolution=224, batch_size=64, subnets=4),
}


@dataclass
class Result:
    preset: str
    device: str
    threads: int
    width_mult: float
    resolution: int
    batch_size: int
    subnets: int
    bf16: bool
    channels_last: bool
    compile: bool
    steps: int
    median_step_s: float
    img_per_s: float


class StepTimer(pl.Callback):
    """Wall time of each training step from batch start (after host-to-device transfer) to batch end."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self._start = 0.0

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._sync(pl_module)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)


def run(args: argparse.Namespace) -> Result:
    preset = PRESETS[args.preset]
    resolution = args.resolution or preset["resolution"]
    batch_size = args.batch_size or preset["batch_size"]
    subnets = args.subnets or preset["subnets"]
    pl.seed_everything(0, verbose=False)
    net = supernet.OFAMobileNetV3(width_mult=preset["width_mult"], num_classes=preset["num_classes"])
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.pt"
        torch.save(net.state_dict(), teacher)  # a stand-in teacher: KD cost does not depend on its weights
        phase = Phase("expand", epochs=1, lr=0.01, ks_list=[3, 5, 7], depth_list=[2, 3, 4], expand_list=[3, 4, 6],
                      subnets_per_step=subnets)
        module = SupernetModule(net, [phase], resolutions=[resolution], kd_ratio=1.0, teacher_ckpt=str(teacher),
                                channels_last=args.channels_last)
        if args.compile:
            module.net.compile()  # in place: state_dict keys unchanged
        steps = args.warmup + args.steps
        data = SyntheticData(num_classes=min(preset["num_classes"], 16), resolutions=[resolution],
                             source_size=resolution, batch_size=batch_size, train_size=batch_size * steps,
                             val_size=batch_size, bn_samples=batch_size)
        timer = StepTimer(args.warmup)
        trainer = pl.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, max_epochs=1,
                             precision="bf16-mixed" if args.bf16 else "32-true", limit_val_batches=0,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[timer], default_root_dir=tmp)
        trainer.fit(module, data)
    step = statistics.median(timer.times)
    return Result(args.preset, args.device, torch.get_num_threads(), preset["width_mult"], resolution, batch_size,
                  subnets, args.bf16, args.channels_last, args.compile, len(timer.times), round(step, 4),
                  round(batch_size / step, 1))


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's machine name."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--resolution", type=int, help="override the preset's image size")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--subnets", type=int, help="override the preset's subnets per step")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (precision bf16-mixed)")
    parser.add_argument("--channels-last", action="store_true",
                        help="SupernetModule(channels_last=True): supernet, teacher and batches channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the supernet")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else cpu_name()
    flags = ", ".join(f for f, on in (("bf16", result.bf16), ("channels_last", result.channels_last),
                                      ("compile", result.compile)) if on) or "fp32"
    print(f"| {result.preset} | {machine} ({result.device}, {result.threads} threads) | {result.width_mult} | "
          f"{result.resolution} | {result.batch_size} | {result.subnets} + KD | {flags} | "
          f"{result.median_step_s:.3f} | {result.img_per_s} |")
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
