#!/usr/bin/env python
"""One-GPU benchmark of supernet training: train-step img/s per progressive-shrinking phase, ours vs the reference
``ofa`` package, plus the data loader and the co-search's subnet accuracy measurement.

    python scripts/bench_gpu.py                                          # one GPU (H100 defaults); minutes
    python scripts/bench_gpu.py --loader --data-root /datasets/imagenet   # + the recipe's ImageFolder loader row
    python scripts/bench_gpu.py --device cpu --batch 8 --steps 3 --resolution 64   # CPU smoke run (minutes)

Train steps (the phases of recipes/ofa_mbv3_imagenet.yaml, OFA MobileNetV3 w1.0, 1000 classes, the recipe's
batch of 64 per GPU at 224 px): ``full`` (1 subnet, no KD), ``kernel`` (1 subnet + KD), ``depth`` (2 + KD),
``expand`` (4 + KD). Columns:

- ours fp32: ``SupernetModule.training_step`` through a Lightning ``Trainer`` (sampling, KD from the frozen
  teacher, accumulated backward passes, one optimizer step, lr schedule, logging);
- ofa fp32: the reference package's ``train_one_epoch`` body on its ``OFAMobileNetV3`` built with the phase's
  choice lists (as ``train_ofa_net.py`` does): teacher ``MobileNetV3Large`` soft targets, per subnet
  ``random.seed`` + ``sample_active_subnet`` + label-smoothed CE + soft-target CE + backward, one SGD step;
- ours, one column per ``--settings`` entry: fp32 (above), ``bf16`` = ``precision="bf16-mixed"``, ``cl`` =
  ``SupernetModule(channels_last=True)`` (``bf16-cl`` is what the GPU recipes run), ``compile`` = ``torch.compile``
  of the phase's static network: the supernet in ``full`` (it always runs the largest subnet), the teacher in
  elastic phases (the student changes subnet every step, and TorchDynamo guards on the active subnet: it would
  recompile per sampled subnet);
- best: the fastest of our columns, and its ratio to the ``ofa`` reference.

A step is timed from Lightning's ``on_train_batch_start`` (after the host-to-device copy) to ``on_train_batch_end``
(ofa: around its step), with ``torch.cuda.synchronize`` at both ends; ``--warmup`` steps are dropped and img/s is
batch / median step time. ``--loader`` adds the data loader's img/s (batches ready on the device: workers,
host-to-device copy, on-device decode / normalisation; the recipe's data module with ``--data-root``, else
synthetic images). The co-search rows time ``CoSearchCallback``'s subnet accuracy measurement (BN recalibration
on the BN images + evaluation of the search split, per subnet), one row per ``--cosearch-settings`` entry (the
GPU recipes run ``bf16-cl``: bf16 autocast, channels_last supernet). Everything is also written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import supernet
from naas_train.cosearch_callback import CoSearchCallback
from naas_train.data import SupernetData, SyntheticData
from naas_train.module import SupernetModule
from naas_train.phases import Phase

NUM_CLASSES = 1000
KERNEL, DEPTH, EXPAND = [3, 5, 7], [2, 3, 4], [3, 4, 6]
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ofa_mbv3_imagenet.yaml"


@dataclass(frozen=True)
class PhaseSpec:
    """A progressive-shrinking phase as benchmarked: its open choice lists and subnets per step."""

    name: str
    subnets: int
    ks_list: list[int] | None = None
    depth_list: list[int] | None = None
    expand_list: list[int] | None = None

    def phase(self) -> Phase:
        return Phase(self.name, epochs=1, lr=0.01, ks_list=self.ks_list, depth_list=self.depth_list,
                     expand_list=self.expand_list, subnets_per_step=self.subnets)


PHASES = [
    PhaseSpec("full", 1),
    PhaseSpec("kernel", 1, KERNEL),
    PhaseSpec("depth", 2, KERNEL, DEPTH),
    PhaseSpec("expand", 4, KERNEL, DEPTH, EXPAND),
]


@dataclass(frozen=True)
class Setting:
    """How our side runs: autocast precision, memory format, ``torch.compile`` of the phase's static network."""

    label: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


SETTINGS = {
    "fp32": Setting("fp32"),
    "fp32-cl": Setting("fp32 + channels_last", channels_last=True),
    "bf16": Setting("bf16", bf16=True),
    "bf16-cl": Setting("bf16 + channels_last", bf16=True, channels_last=True),  # the GPU recipes
    "bf16-compile": Setting("bf16 + compile", bf16=True, compile=True),
    "bf16-cl-compile": Setting("bf16 + channels_last + compile", bf16=True, channels_last=True, compile=True),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer(pl.Callback):
    """Wall time of each training step after ``warmup`` steps, from batch start (after the host-to-device copy)
    to batch end, synchronised."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(pl_module.device)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)


def fixed_batches(args: argparse.Namespace, device: torch.device) -> DataLoader:
    """``warmup + steps`` batches drawn from one random batch in memory: no decoding in the timed loop."""
    images = torch.randn(args.batch, 3, args.resolution, args.resolution)
    targets = torch.randint(0, NUM_CLASSES, (args.batch,))
    sampler = RandomSampler(range(args.batch), replacement=True, num_samples=args.batch * (args.warmup + args.steps))
    return DataLoader(TensorDataset(images, targets), batch_size=args.batch, sampler=sampler,
                      pin_memory=device.type == "cuda")


def ours_rate(spec: PhaseSpec, args: argparse.Namespace, device: torch.device, teacher: Path,
              setting: Setting) -> float:
    """img/s of ``SupernetModule``'s training step in phase ``spec`` run as ``setting``."""
    torch.manual_seed(0)
    phase = spec.phase()
    module = SupernetModule(supernet.OFAMobileNetV3(num_classes=NUM_CLASSES), [phase], resolutions=[args.resolution],
                            kd_ratio=1.0, teacher_ckpt=str(teacher) if phase.elastic else None,
                            channels_last=setting.channels_last)
    if setting.compile:
        (module.teacher if module.teacher is not None else module.net).compile()  # in place: same state_dict keys
    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=1,
                             precision="bf16-mixed" if setting.bf16 else "32-true", limit_val_batches=0,
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[timer], default_root_dir=tmp)
        trainer.fit(module, train_dataloaders=fixed_batches(args, device))
    return args.batch / statistics.median(timer.times)


def ofa_rate(spec: PhaseSpec, args: argparse.Namespace, device: torch.device) -> float:
    """img/s of the reference ``ofa`` package's progressive-shrinking step (``train_one_epoch``'s body) in fp32."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.imagenet_classification.networks import MobileNetV3Large
    from ofa.utils import cross_entropy_loss_with_soft_target, cross_entropy_with_label_smoothing

    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=NUM_CLASSES, dropout_rate=0.1, ks_list=spec.ks_list or [7],
                         expand_ratio_list=spec.expand_list or [6], depth_list=spec.depth_list or [4]).to(device)
    teacher = None
    if spec.ks_list or spec.depth_list or spec.expand_list:  # elastic: KD from the full network (kd_ratio 1.0)
        teacher = MobileNetV3Large(n_classes=NUM_CLASSES, bn_param=(0.1, 1e-5), dropout_rate=0, ks=7, expand_ratio=6,
                                   depth_param=4).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=3e-5)
    images = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), device=device)
    net.train()

    def step(iteration: int) -> None:
        soft_label = None
        if teacher is not None:
            teacher.train()
            with torch.no_grad():
                soft_label = F.softmax(teacher(images).detach(), dim=1)
        net.zero_grad()
        for k in range(spec.subnets):
            random.seed(int("%d%.3d%.3d" % (iteration, k, 0)))
            net.sample_active_subnet()
            output = net(images)
            loss = cross_entropy_with_label_smoothing(output, labels, 0.1)
            if soft_label is not None:
                loss = 1.0 * cross_entropy_loss_with_soft_target(output, soft_label) + loss
            loss.backward()
        optimizer.step()

    times = []
    for iteration in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        step(iteration)
        sync(device)
        if iteration >= args.warmup:
            times.append(time.perf_counter() - start)
    return args.batch / statistics.median(times)


def recipe_data(args: argparse.Namespace, device: torch.device) -> SupernetData:
    """The GPU recipe's data module (its class and augmentation) on ``--data-root``, at the benchmark's batch and
    resolution, without the search hold-out."""
    spec = yaml.safe_load(RECIPE.read_text())["data"]
    module_name, class_name = spec["class_path"].rsplit(".", 1)
    kwargs = {**spec.get("init_args", {}), "root": args.data_root, "resolutions": [args.resolution],
              "batch_size": args.batch, "num_workers": args.workers, "pin_memory": device.type == "cuda",
              "search_per_class": 0}
    return getattr(import_module(module_name), class_name)(**kwargs)


def loader_rate(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """img/s of training batches made ready on ``device`` (workers, copy, ``on_after_batch_transfer``)."""
    batches = args.warmup + args.loader_batches
    if args.data_root:
        data, source = recipe_data(args, device), f"{RECIPE.name} data on {args.data_root}"
    else:
        data = SyntheticData(num_classes=16, train_size=args.batch * batches, source_size=args.resolution,
                             resolutions=[args.resolution], batch_size=args.batch, num_workers=args.workers,
                             pin_memory=device.type == "cuda", search_per_class=0)
        source = "SyntheticData (in-memory images, PIL augmentation)"
    data.setup("fit")
    iterator = iter(data.train_dataloader())
    start, images = 0.0, 0
    for i in range(batches):
        if i == args.warmup:
            sync(device)
            start, images = time.perf_counter(), 0
        x, y = next(iterator)
        if torch.is_tensor(x):
            x = x.to(device, non_blocking=True)
        x, y = data.on_after_batch_transfer((x, y.to(device, non_blocking=True)), 0)
        images += len(y)
    sync(device)
    return {"source": source, "workers": args.workers, "batches": args.loader_batches,
            "img_per_s": images / (time.perf_counter() - start)}


def cosearch_rate(args: argparse.Namespace, device: torch.device, setting: Setting) -> dict[str, Any]:
    """Images/s of ``CoSearchCallback``'s subnet accuracy measurement (BN recalibration + search-split top-1)."""
    search_per_class = max(1, args.search_images // 16)
    data = SyntheticData(num_classes=16, train_size=max(args.bn_images, 16), source_size=args.resolution,
                         resolutions=[args.resolution], val_batch_size=args.eval_batch, bn_samples=args.bn_images,
                         num_workers=args.workers, search_per_class=search_per_class)
    data.setup("fit")
    torch.manual_seed(0)
    net = supernet.OFAMobileNetV3(num_classes=NUM_CLASSES).to(device)
    if setting.channels_last:
        net = net.to(memory_format=torch.channels_last)
    precision = MixedPrecision("bf16-mixed", device.type) if setting.bf16 else Precision()
    # the attributes of the trainer the callback's measurement reads
    trainer = SimpleNamespace(datamodule=data, strategy=SimpleNamespace(root_device=device), precision_plugin=precision)
    measure: Callable[[list[Any]], list[float]] = CoSearchCallback()._accuracy_fn(
        trainer, net, torch.channels_last if setting.channels_last else torch.contiguous_format)
    rng = np.random.default_rng(0)
    configs = [net.space.sample(rng, resolutions=(args.resolution,)) for _ in range(args.cosearch_subnets + 1)]
    measure(configs[:1])  # warm-up
    sync(device)
    start = time.perf_counter()
    measure(configs[1:])
    sync(device)
    seconds = time.perf_counter() - start
    per_subnet = min(args.bn_images, len(data.train_set)) + len(data.search_set)
    return {"setting": setting.label,
            "bn_images": min(args.bn_images, len(data.train_set)), "search_images": len(data.search_set),
            "subnets": args.cosearch_subnets, "img_per_s": args.cosearch_subnets * per_subnet / seconds,
            "subnets_per_s": args.cosearch_subnets / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--batch", type=int, default=64, help="images per step (the GPU recipes: 64 per GPU)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--phases", nargs="+", choices=[p.name for p in PHASES], default=[p.name for p in PHASES])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["fp32", "bf16-cl", "bf16-cl-compile"],
                        help="our train-step columns (fp32 | fp32-cl | bf16 | bf16-cl | bf16-compile | "
                             "bf16-cl-compile; cl = channels_last)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="measure the compile columns (default: on cuda only)")
    parser.add_argument("--cosearch-settings", nargs="+", choices=[k for k, v in SETTINGS.items() if not v.compile],
                        default=["fp32", "bf16-cl"], help="co-search measurement rows")
    parser.add_argument("--no-reference", action="store_true", help="skip the ofa package column")
    parser.add_argument("--loader", action="store_true", help="add the data loader row")
    parser.add_argument("--data-root", help="ImageNet-layout root for the loader row (default: synthetic images)")
    parser.add_argument("--workers", type=int, default=8, help="loader workers (the GPU recipes: 8)")
    parser.add_argument("--loader-batches", type=int, default=50, help="timed loader batches")
    parser.add_argument("--bn-images", type=int,
                        help="co-search: BN recalibration images per subnet (default: 1000 on cuda, 8 x batch on cpu)")
    parser.add_argument("--search-images", type=int,
                        help="co-search: evaluated images per subnet (default: 2000 on cuda, 16 x batch on cpu)")
    parser.add_argument("--eval-batch", type=int, default=200, help="co-search batch (the GPU recipes: 200)")
    parser.add_argument("--cosearch-subnets", type=int, default=3, help="co-search: timed subnets")
    parser.add_argument("--threads", type=int, help="torch CPU threads (cpu runs on a busy machine: 1)")
    parser.add_argument("--out", default="runs/bench_gpu.json", help="JSON results")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.bn_images = args.bn_images or (1000 if cuda else 8 * args.batch)
    args.search_images = args.search_images or (2000 if cuda else 16 * args.batch)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_compile = cuda if args.compile is None else args.compile
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    machine = torch.cuda.get_device_name(device) if cuda else f"cpu, {torch.get_num_threads()} threads"

    settings = [key for key in args.settings if use_compile or not SETTINGS[key].compile]

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    def train_row(row: dict[str, Any]) -> str:
        ratio = f"{row['ours']['fp32'] / row['ofa_fp32']:.2f}x" if row["ofa_fp32"] and "fp32" in row["ours"] else "n/a"
        best_ratio = f"{row['best'] / row['ofa_fp32']:.2f}x" if row["ofa_fp32"] else "n/a"
        return (f"| {row['phase']} | {row['subnets_per_step']} | {'yes' if row['kd'] else 'no'} | "
                f"{rate(row['ofa_fp32'])} | " + " | ".join(rate(row["ours"][key]) for key in settings)
                + f" | {ratio} | {rate(row['best'])} ({SETTINGS[row['best_setting']].label}) | {best_ratio} |")

    # the quick rows first and every row printed as it is measured: a run cut short by a time limit keeps them
    loader = loader_rate(args, device) if args.loader else None
    cosearch = [cosearch_rate(args, device, SETTINGS[key]) for key in args.cosearch_settings]
    other = ["| other | img/s | detail |", "|---|---:|---|"]
    if loader is not None:
        other.append(f"| data loader | {loader['img_per_s']:.1f} | {loader['source']}, {loader['workers']} workers, "
                     f"{loader['batches']} batches of {args.batch} |")
    for row in cosearch:
        other.append(f"| co-search accuracy measurement, {row['setting']} | {row['img_per_s']:.1f} | "
                     f"{row['subnets_per_s']:.3f} subnets/s; per subnet BN recalibration on {row['bn_images']} + "
                     f"top-1 on {row['search_images']} images, batch {args.eval_batch} |")
    print("\n".join(other), flush=True)

    phases = [p for p in PHASES if p.name in args.phases]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.pt"  # a stand-in teacher: the KD cost does not depend on its weights
        torch.save(supernet.OFAMobileNetV3(num_classes=NUM_CLASSES).state_dict(), teacher)
        for spec in phases:
            row: dict[str, Any] = {"phase": spec.name, "subnets_per_step": spec.subnets, "kd": spec.phase().elastic}
            row["ofa_fp32"] = None if args.no_reference else ofa_rate(spec, args, device)
            row["ours"] = {key: ours_rate(spec, args, device, teacher, SETTINGS[key]) for key in settings}
            row["best_setting"] = max(row["ours"], key=row["ours"].get)
            row["best"] = row["ours"][row["best_setting"]]
            rows.append(row)
            print(f"measured {train_row(row)}", flush=True)
            if cuda:
                torch.cuda.empty_cache()

    print(f"\n# train step img/s, {machine}, torch {torch.__version__}, OFA MobileNetV3 w1.0 ({NUM_CLASSES} classes), "
          f"batch {args.batch}, {args.resolution} px, median of {args.steps} steps after {args.warmup} warm-up")
    print("| phase | subnets/step | KD | ofa fp32 | " + " | ".join(f"ours {SETTINGS[k].label}" for k in settings)
          + " | ours fp32 / ofa | best (setting) | best / ofa |")
    print("|---|---:|:---:|---:|" + "---:|" * len(settings) + "---:|---|---:|")
    for row in rows:
        print(train_row(row))
    print("\n" + "\n".join(other))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": machine, "torch": torch.__version__, "batch": args.batch,
                               "resolution": args.resolution, "steps": args.steps, "warmup": args.warmup,
                               "train": rows, "loader": loader, "cosearch": cosearch}, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
