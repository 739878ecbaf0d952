"""Smoke run of scripts/bench_gpu.py on the CPU at toy sizes: every column and row is measured and written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_gpu.py"


def test_bench_gpu_smoke_run_measures_every_row(tmp_path):
    pytest.importorskip("ofa")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    out = tmp_path / "bench.json"
    args = ["--device", "cpu", "--batch", "2", "--steps", "1", "--warmup", "1", "--resolution", "32",
            "--phases", "full", "expand", "--cosearch-subnets", "1", "--eval-batch", "4", "--bn-images", "4",
            "--search-images", "16", "--threads", "1", "--loader", "--data-root", str(tmp_path / "images"),
            "--workers", "0", "--loader-batches", "2", "--out", str(out)]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("| phase | subnets/step | KD | ofa fp32 | ours fp32 | ours bf16 + channels_last | ours fp32 / ofa |"
            in run.stdout)
    result = json.loads(out.read_text())
    assert [(r["phase"], r["subnets_per_step"], r["kd"]) for r in result["train"]] == [("full", 1, False),
                                                                                       ("expand", 4, True)]
    for row in result["train"]:
        assert set(row["ours"]) == {"fp32", "bf16-cl"}  # no compile column on cpu
        assert row["ofa_fp32"] > 0 and all(rate > 0 for rate in row["ours"].values())
        assert row["best"] == max(row["ours"].values()) == row["ours"][row["best_setting"]]
    assert result["loader"]["img_per_s"] > 0 and "ofa_mbv3_imagenet.yaml" in result["loader"]["source"]
    assert [c["setting"] for c in result["cosearch"]] == ["fp32", "bf16 + channels_last"]
    assert all(c["img_per_s"] > 0 and c["search_images"] == 16 for c in result["cosearch"])
