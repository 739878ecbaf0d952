"""The embedded default: ``naas-train fit --config recipes/digits_smoke.yaml`` reaches the issue's accuracy bar."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "digits_smoke.yaml"


@pytest.mark.slow
def test_digits_smoke_reaches_the_accuracy_bar(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run([sys.executable, "-m", "naas_train.cli", "fit", "--config", str(RECIPE)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "runs" / "digits_smoke" / "metrics.csv").open()))
    final = [r for r in rows if r.get("val/acc_max")][-1]
    assert float(final["val/acc_max"]) >= 0.90
    assert float(final["val/acc_min"]) >= 0.85
    assert (tmp_path / "runs" / "digits_smoke" / "checkpoints" / "last.ckpt").is_file()
