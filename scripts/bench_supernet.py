#!/usr/bin/env python
"""Train-step throughput of the largest OFA MobileNetV3 subnet: our supernet vs its extracted subnet vs ``ofa``.

Models run in alternating rounds in one process (so drift hits all equally); each round times ``--steps``
SGD steps (forward, cross-entropy, backward, momentum update) after warm-up. Eager mode on every row;
``--compile`` adds labelled ``torch.compile`` rows. ``--device cuda`` uses bf16 autocast and channels_last.
"img per CPU-s" (images / process CPU time) is the contention-robust figure on a shared CPU box.

    python scripts/bench_supernet.py                      # CPU: batch 32, 128 px, 2 threads
    python scripts/bench_supernet.py --device cuda --batch-size 256 --resolution 224
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn as nn

import supernet


def load_reference() -> type | None:
    """The reference ``ofa`` package's OFAMobileNetV3, pip-installed if missing (None if that fails)."""
    try:
        return importlib.import_module("ofa.imagenet_classification.elastic_nn.networks").OFAMobileNetV3
    except ImportError:
        print("ofa not installed; installing it for the reference row", file=sys.stderr)
        if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "ofa"]).returncode != 0:
            return None
        importlib.invalidate_caches()
        return importlib.import_module("ofa.imagenet_classification.elastic_nn.networks").OFAMobileNetV3


def build_models(num_classes: int, with_reference: bool) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    ours = supernet.OFAMobileNetV3(num_classes=num_classes)
    cfg = ours.space.max_config()
    ours.set_active(cfg)
    models = {"ours: supernet (max subnet)": ours, "ours: extracted max subnet": ours.extract(cfg)}
    if with_reference:
        ref_cls = load_reference()
        if ref_cls is None:
            print("could not install ofa: reference row skipped", file=sys.stderr)
        else:
            ref = ref_cls(n_classes=num_classes, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
            ref.set_max_net()
            models["ofa package: supernet (max subnet)"] = ref
    return models


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last inputs and weights (always on for cuda)"
    )
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (labelled)")
    parser.add_argument("--no-reference", action="store_true", help="skip the ofa package row")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    fmt = torch.channels_last if gpu or args.channels_last else torch.contiguous_format
    models = build_models(args.num_classes, not args.no_reference)
    if args.compile:
        models.update({f"{name} [torch.compile]": torch.compile(m) for name, m in list(models.items())[:2]})
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device=device).to(memory_format=fmt)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    steps = {}
    for name, model in models.items():
        model.to(device, memory_format=fmt).train()
        steps[name] = make_step(model, x, y, amp=gpu)
        for _ in range(args.warmup):
            steps[name]()
    sync(device)

    rates: dict[str, list[float]] = {name: [] for name in models}
    cpu_rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, step in steps.items():
            sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step()
            sync(device)
            images = args.steps * args.batch_size
            rates[name].append(images / (time.perf_counter() - start))
            cpu_rates[name].append(images / (time.process_time() - cpu_start))

    hw = (
        torch.cuda.get_device_name(device)
        if gpu
        else f"{platform.processor() or platform.machine()}, {args.threads} threads"
    )
    print(
        f"# train step, OFA MobileNetV3 w1.0 largest subnet (k7 e6 d4), batch {args.batch_size}, {args.resolution} px, "
        f"{'bf16 autocast' if gpu else 'fp32'}{' + channels_last' if fmt == torch.channels_last else ''}, "
        f"{device.type} ({hw}), torch {torch.__version__}, "
        f"{args.rounds} alternating rounds x {args.steps} steps"
    )
    base = statistics.median(rates["ours: extracted max subnet"])
    ref = (
        statistics.median(rates["ofa package: supernet (max subnet)"])
        if "ofa package: supernet (max subnet)" in rates
        else None
    )
    print(f"| {'model':44s} | img/s (median) | min..max        | vs extracted | vs ofa supernet | img per CPU-s |")
    print(f"|{'-' * 46}|---------------:|----------------:|-------------:|----------------:|--------------:|")
    for name, r in rates.items():
        med = statistics.median(r)
        vs_ref = f"{med / ref:.2f}x" if ref else "n/a"
        print(
            f"| {name:44s} | {med:14.1f} | {min(r):6.1f}..{max(r):<7.1f} | {med / base:11.3f}x | {vs_ref:>15s} "
            f"| {statistics.median(cpu_rates[name]):13.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
