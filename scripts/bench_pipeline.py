#!/usr/bin/env python
"""Benchmark: the whole ``naas-train pipeline`` (supernet fit with progressive shrinking, co-search, fine-tune,
export) on a recipe, as a user runs it: wall time per step and the exported model's numbers.

    python scripts/bench_pipeline.py                                  # recipes/digits_naas.yaml, torch's threads
    python scripts/bench_pipeline.py --threads 1 --seed 1 --root /tmp/bench_pipeline

Each run goes to its own folder (``--root``/<recipe>-t<threads>-s<seed>, the recipe's ``runs/<recipe>`` paths
rewritten to it); prints one Markdown table row per run
(for BENCHMARKS.md) and a JSON line.
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

HEADER = ("| recipe | machine | threads | seed | wall | fit (incl. co-search) | co-search | finetune | export "
          "| accuracy (onnxruntime) | EDP vs largest subnet on the preset |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(recipe: Path, root: Path, threads: int | None, seed: int) -> dict:
    name = f"{recipe.stem}-t{threads or 'default'}-s{seed}"
    out = (root / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = out / "recipe.yaml"  # the recipe with its run folder (loggers, checkpoints) moved to `out`
    config.write_text(recipe.read_text().replace(f"runs/{recipe.stem}", str(out)))
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    exe = Path(sys.executable).with_name("naas-train")
    cmd = [str(exe), "pipeline", "--config", str(config), "--seed_everything", str(seed)]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    steps = json.loads((out / "pipeline.json").read_text())["seconds"]
    metrics = json.loads((out / "bundle" / "metrics.json").read_text())
    return {"recipe": recipe.name, "machine": f"{cpu_name()} ({os.cpu_count()} CPUs)", "threads": threads or "default",
            "seed": seed, "wall_s": wall, **{f"{k}_s": v for k, v in steps.items()}, "accuracy": metrics["accuracy"],
            "edp_ratio": metrics["baselines"]["largest_subnet_on_budget"]["edp_ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path("recipes/digits_naas.yaml"))
    parser.add_argument("--root", type=Path, default=Path("runs/bench_pipeline"))
    parser.add_argument("--threads", type=int, nargs="*", default=[0], help="OMP_NUM_THREADS per run (0: torch's default)")
    parser.add_argument("--seed", type=int, nargs="*", default=[0])
    args = parser.parse_args()
    rows = [run(args.recipe, args.root, t or None, s) for t in args.threads for s in args.seed]
    print(HEADER)
    for r in rows:
        print(f"| {r['recipe']} | {r['machine']} | {r['threads']} | {r['seed']} | {r['wall_s'] / 60:.1f} min "
              f"| {r['fit_s']:.0f} s | {r['cosearch_s']:.0f} s | {r['finetune_s']:.0f} s | {r['export_s']:.0f} s "
              f"| {r['accuracy']:.4f} | {r['edp_ratio']:.1f}x |")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
