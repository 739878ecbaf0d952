#!/usr/bin/env python
"""Benchmark: a short ``naas-train fit`` quiet and beside busy processes, under thread settings.

    python scripts/bench_threads.py                  # the default matrix below, 1 repeat
    python scripts/bench_threads.py --repeats 2 --steps 60

One run: ``naas-train fit --config recipes/digits_smoke.yaml --trainer.max_steps N --trainer.limit_val_batches 0``
(process start, data and model set-up included), wall time, after one untimed warm-up run. ``busy``: single-threaded busy-loop processes running
beside it, started ``--settle`` seconds before the run. Settings: ``naas-train`` (its own thread defaults, naas_train.threads), ``OMP_WAIT_POLICY=ACTIVE`` /
``PASSIVE`` forced, ``OMP_NUM_THREADS=1`` forced, and libgomp's default spin (``OMP_WAIT_POLICY`` empty and
``OMP_NUM_THREADS`` = all cores, i.e. torch's behaviour before naas-train chose anything). Prints a Markdown table
and a JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY_LOOP = "while True: pass"
#: (label, environment) of the compared settings.
SETTINGS = {
    "naas-train": {},
    "torch default (spin)": {"OMP_WAIT_POLICY": "", "OMP_NUM_THREADS": str(os.cpu_count() or 1)},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(os.cpu_count() or 1)},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}


def run(steps: int, busy: int, env: dict[str, str], settle: float = 0.0) -> float:
    exe = Path(sys.executable).with_name("naas-train")
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        time.sleep(settle if busy else 0.0)  # a machine that is busy, not one that just became busy
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            subprocess.run([str(exe), "fit", "--config", "recipes/digits_smoke.yaml", "--trainer.max_steps", str(steps),
                            "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                            "--trainer.default_root_dir", root],
                           env={**os.environ, "WANDB_MODE": "offline", **env}, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.perf_counter() - started
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--busy", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds the busy processes run before a run")
    args = parser.parse_args()
    run(args.steps, 0, {})  # warm-up (file caches, numba/torch start-up), not timed
    rows = []
    for name in args.settings:
        for busy in args.busy:
            for _ in range(args.repeats):
                rows.append({"setting": name, "busy": busy, "steps": args.steps,
                             "wall_s": run(args.steps, busy, SETTINGS[name], args.settle)})
    quiet: dict[str, float] = {}
    for r in rows:
        if r["busy"] == 0:
            quiet[r["setting"]] = min(r["wall_s"], quiet.get(r["setting"], float("inf")))
    print("| setting | busy processes | wall (s) | busy / quiet (fastest quiet run) |\n|---|---:|---:|---:|")
    for r in rows:
        ratio = r["wall_s"] / quiet[r["setting"]] if r["setting"] in quiet else float("nan")
        print(f"| {r['setting']} | {r['busy']} | {r['wall_s']:.1f} | {ratio:.2f} |")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
