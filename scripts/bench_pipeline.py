#!/usr/bin/env python
"""Benchmark: the whole ``naas-train pipeline`` (supernet fit with progressive shrinking, co-search, fine-tune,
export) on a recipe, as a user runs it: wall time per step and the exported model's numbers.

    python scripts/bench_pipeline.py                                  # recipes/digits_naas.yaml, torch's threads
    python scripts/bench_pipeline.py --threads 1 --seed 1 --root /tmp/bench_pipeline
    python scripts/bench_pipeline.py --busy 0 1                       # quiet, then next to a busy process
    python scripts/bench_pipeline.py --busy 1 --env OMP_WAIT_POLICY=ACTIVE   # naas-train's default overridden
    python scripts/bench_pipeline.py --args "--trainer.devices 2 --trainer.strategy ddp_find_unused_parameters_true"

Each run goes to its own folder (``--root``/<recipe>-t<threads>-s<seed>-b<busy>, passed as
``--trainer.default_root_dir``); ``--busy N`` runs N single-threaded busy-loop processes beside the pipeline
(stopped when it ends). Prints one Markdown table row per run (for BENCHMARKS.md) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HEADER = ("| recipe | machine | threads | env | busy processes | seed | wall | fit | co-search | finetune | export "
          "| accuracy (onnxruntime) | EDP vs largest subnet on the preset |\n"
          "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
#: A single-threaded process that keeps one core busy (the competing job of the busy-machine measurements).
BUSY_LOOP = "while True: pass"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(recipe: Path, root: Path, threads: int | None, seed: int, busy: int, extra_env: dict[str, str],
        extra_args: list[str]) -> dict:
    name = f"{recipe.stem}-t{threads or 'default'}-s{seed}-b{busy}" + ("-" + "_".join(extra_env) if extra_env else "")
    out = (root / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **extra_env}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    exe = Path(sys.executable).with_name("naas-train")
    cmd = [str(exe), "pipeline", "--config", str(recipe), "--seed_everything", str(seed),
           "--trainer.default_root_dir", str(out), *extra_args]
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        started = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    steps = json.loads((out / "pipeline.json").read_text())["seconds"]
    metrics = json.loads((out / "bundle" / "metrics.json").read_text())
    return {"recipe": recipe.name, "machine": f"{cpu_name()} ({os.cpu_count()} CPUs)", "threads": threads or "default",
            "env": " ".join([*(f"{k}={v}" for k, v in extra_env.items()), *extra_args]) or "-", "busy": busy,
            "seed": seed, "wall_s": wall, **{f"{k}_s": v for k, v in steps.items()}, "accuracy": metrics["accuracy"],
            "edp_ratio": metrics["baselines"]["largest_subnet_on_budget"]["edp_ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/digits_naas.yaml"))
    parser.add_argument("--root", type=Path, default=Path("runs/bench_pipeline"))
    parser.add_argument("--threads", type=int, nargs="*", default=[0], help="OMP_NUM_THREADS per run (0: torch's default)")
    parser.add_argument("--seed", type=int, nargs="*", default=[0])
    parser.add_argument("--busy", type=int, nargs="*", default=[0], help="busy single-threaded processes beside it")
    parser.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment of every run")
    parser.add_argument("--args", default="", help="extra naas-train pipeline arguments, one string (e.g. "
                        "'--trainer.devices 2 --trainer.strategy ddp_find_unused_parameters_true')")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    rows = [run(args.recipe, args.root, t or None, s, b, extra, args.args.split()) for b in args.busy
            for t in args.threads for s in args.seed]
    print(HEADER)
    for r in rows:
        print(f"| {r['recipe']} | {r['machine']} | {r['threads']} | {r['env']} | {r['busy']} | {r['seed']} "
              f"| {r['wall_s'] / 60:.1f} min "
              f"| {r['fit_s']:.0f} s | {r['cosearch_s']:.0f} s | {r['finetune_s']:.0f} s | {r['export_s']:.0f} s "
              f"| {r['accuracy']:.4f} | {r['edp_ratio']:.1f}x |")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
