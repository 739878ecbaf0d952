#!/usr/bin/env python
"""Benchmark: training-loader throughput of ImageFolderData per worker core, for three data paths:

* ``float``  — workers decode (PIL), augment, convert to float and normalise (the default);
* ``uint8``  — workers decode and augment, hand uint8 batches; normalisation runs after transfer;
* ``device`` — workers read JPEG bytes and draw the augmentation parameters; decode (``decode_jpeg``), crop,
  resize, flip, colour jitter and normalisation run after transfer, on ``--device`` (the CPU here).

Images are generated JPEGs of ImageNet's average size (500×375, quality 90, smooth content plus noise) in an
ImageNet-layout temporary folder. For every path and worker count it times one epoch of the train loader alone
(the worker-side rate; after ``--warmup`` batches), then one epoch that also runs ``on_after_batch_transfer`` (the
"device stage", in the main process) on every batch: its cost per image and the end-to-end rate.

    python scripts/bench_data.py                       # 224 px, workers 0/1/2, all three paths
    python scripts/bench_data.py --workers 0 2 --paths float device --json

Prints a Markdown table and, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from naas_train.data import Batch, ImageFolderData, ResumableLoader


@dataclass
class Result:
    path: str
    workers: int
    images: int  # per epoch
    loader_img_per_s: float  # wall-clock rate of the loader alone (median epoch, after the warmup batches)
    worker_cpu_ms_per_img: float  # CPU time of the loading processes (workers, or the main one with 0) per image
    img_per_s_per_worker_core: float  # 1000 / worker_cpu_ms_per_img
    device_stage_ms_per_img: float  # CPU time of on_after_batch_transfer per image (main thread)
    end_to_end_img_per_s: float  # wall-clock rate of loader + device stage


def write_jpegs(root: Path, classes: int, per_class: int, width: int = 500, height: int = 375) -> float:
    """ImageNet-layout ``root/train/<class>/*.JPEG`` (and one ``root/val/<class>/*.JPEG`` each); returns the mean
    file size in KiB."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    sizes = []
    for c, (split, count) in itertools.product(range(classes), [("train", per_class), ("val", 1)]):
        folder = root / split / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(count):
            a, b, phase = rng.uniform(2, 12, 3)
            base = np.stack([np.sin(a * xx + phase), np.cos(b * yy - phase), np.sin(a * xx + b * yy)], -1)
            coarse = rng.normal(0, 1, (height // 25 + 1, width // 25 + 1, 3)).repeat(25, 0).repeat(25, 1)
            image = 128 + 60 * base + 25 * coarse[:height, :width] + rng.normal(0, 12, (height, width, 3))
            path = folder / f"{i:04d}.JPEG"
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path, quality=90)
            sizes.append(path.stat().st_size)
    return float(np.mean(sizes)) / 1024


def _cpu_s(children: bool) -> float:
    """CPU seconds used so far by this process, or by its finished (joined) child processes."""
    t = os.times()
    return t.children_user + t.children_system if children else t.user + t.system


def _epoch(loader: ResumableLoader, warmup: int, stage: Callable[[Batch], None] | None) -> tuple[float, float]:
    """One epoch: (wall-clock images/s after ``warmup`` batches, CPU seconds of the main thread in ``stage``)."""
    batches = iter(loader)
    started, staged, images = 0.0, 0.0, 0
    for i in range(len(loader)):
        if i == warmup:
            started = time.perf_counter()
        batch = next(batches)
        if stage is not None:
            cpu = time.thread_time()
            stage(batch)
            staged += time.thread_time() - cpu
        images += len(batch[1]) if i >= warmup else 0
    return images / (time.perf_counter() - started), staged


def measure(root: Path, path: str, workers: int, resolution: int, batch_size: int, warmup: int, repeats: int,
            device: torch.device) -> Result:
    """``repeats`` epochs of the train loader alone (fresh workers each, so their CPU time is counted once they are
    joined), then one epoch that also runs ``on_after_batch_transfer`` on ``device``."""
    data = ImageFolderData(root=root, resolutions=[resolution], batch_size=batch_size, num_workers=workers,
                           search_per_class=0, uint8_batches=path == "uint8",
                           decode="device" if path == "device" else "cpu")
    data.setup("fit")
    rates, cpu_ms = [], []
    for epoch in range(repeats + 1):
        loader = data.train_dataloader()
        if len(loader) <= warmup:
            raise SystemExit(f"{len(loader)} batches per epoch leave none to time after --warmup {warmup}: "
                             "raise --images or lower --batch-size")
        loader.sampler.set_epoch(epoch)
        images = len(loader) * batch_size
        if epoch < repeats:
            cpu = _cpu_s(children=workers > 0)
            rate, _ = _epoch(loader, warmup, None)
            del loader  # shuts the persistent workers down and joins them: their CPU time is now the children's
            gc.collect()
            rates.append(rate)
            cpu_ms.append(1000 * (_cpu_s(children=workers > 0) - cpu) / images)
            continue

        def stage(batch: Batch) -> None:
            out, _ = data.on_after_batch_transfer((batch[0], batch[1].to(device)), 0)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            assert out.dtype == torch.float32 and out.shape[-1] == resolution

        end_to_end, staged = _epoch(loader, warmup, stage)
    worker_ms = statistics.median(cpu_ms)
    return Result(path, workers, images, statistics.median(rates), worker_ms, 1000 / worker_ms,
                  1000 * staged / images, end_to_end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", nargs="+", choices=["float", "uint8", "device"], default=["float", "uint8", "device"])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=384, help="generated JPEGs (8 classes)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches at the start of each epoch")
    parser.add_argument("--repeats", type=int, default=3, help="loader-only epochs per setting (median reported)")
    parser.add_argument("--device", default="cpu", help="where the device stage runs (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (device stage)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kib = write_jpegs(root, classes=8, per_class=args.images // 8)
        results = [measure(root, p, w, args.resolution, args.batch_size, args.warmup, args.repeats, device)
                   for p in args.paths for w in args.workers]
    load_after = os.getloadavg()
    print(f"{args.images} JPEGs 500x375 (mean {kib:.0f} KiB), {args.resolution} px, batch {args.batch_size}, "
          f"device stage on {device} with {args.threads} thread(s); {os.cpu_count()} CPUs, "
          f"load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    print("| path | workers | loader img/s (wall) | worker CPU ms/img | img/s per worker core | device stage CPU ms/img "
          "| end-to-end img/s (wall) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.path} | {r.workers} | {r.loader_img_per_s:.0f} | {r.worker_cpu_ms_per_img:.2f} | "
              f"{r.img_per_s_per_worker_core:.0f} | {r.device_stage_ms_per_img:.2f} | {r.end_to_end_img_per_s:.0f} |")
    if args.json:
        print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "device": str(device), "resolution": args.resolution,
                          "batch_size": args.batch_size, "images": args.images, "jpeg_kib": kib,
                          "load_before": load_before, "load_after": load_after,
                          "results": [asdict(r) for r in results]}))


if __name__ == "__main__":
    main()
