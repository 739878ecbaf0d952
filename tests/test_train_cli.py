"""``naas-train fit`` end to end in a subprocess: CSV + offline wandb logs, checkpoints, ``--ckpt_path last``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from naas_train.cli import main

RECIPE = {
    "seed_everything": 0,
    "model": {
        "class_path": "naas_train.module.SupernetModule",
        "init_args": {
            "net": {"class_path": "supernet.OFAMobileNetV3",
                    "init_args": {"width_mult": 0.25, "num_classes": 4, "dropout": 0.1}},
            "phases": [{"name": "full", "epochs": 1, "lr": 0.05},
                       {"name": "kernel", "epochs": 1, "lr": 0.02, "ks_list": [3, 5, 7]}],
            "val_resolutions": [16],
        },
    },
    "data": {"class_path": "naas_train.data.SyntheticData",
             "init_args": {"resolutions": [16, 24], "batch_size": 8, "train_size": 32, "val_size": 16,
                           "bn_samples": 16}},
    "trainer": {
        "accelerator": "cpu",
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "enable_progress_bar": False,
        "logger": [
            {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "run", "name": "", "version": ""}},
            {"class_path": "naas_train.loggers.OfflineWandbLogger", "init_args": {"save_dir": "run", "name": "cli"}},
        ],
        "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                       "init_args": {"dirpath": "run/checkpoints", "every_n_train_steps": 1, "save_top_k": 0,
                                     "save_last": True}}],
    },
}


def naas_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}  # the offline default must kick in
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "naas_train.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_fit_then_resume_from_last_logs_into_one_offline_wandb_run(tmp_path):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    first = naas_train(tmp_path, "fit", "--config", "recipe.yaml", "--trainer.max_steps", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    run_id = (tmp_path / "run" / "wandb_run_id").read_text().strip()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()

    second = naas_train(tmp_path, "fit", "--config", "recipe.yaml", "--ckpt_path", "last")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint" in second.stdout + second.stderr
    assert (tmp_path / "run" / "wandb_run_id").read_text().strip() == run_id
    wandb_runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2 and all(d.name.endswith(run_id) for d in wandb_runs)

    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    steps = {int(r["step"]) for r in rows if r.get("train/loss")}
    assert max(steps) == 7  # 2 epochs × 4 steps, logged at steps 0..7 across both processes
    assert any(r.get("val/acc_max") for r in rows) and any(r.get("train/loss_subnet0") for r in rows)
    assert any(r.get("choices/kernel/ks=3") for r in rows)


def test_missing_dataset_path_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["naas-train"])
    args = ["fit", "--config", "recipe.yaml", "--trainer.logger", "false", "--trainer.callbacks", "[]",
            "--data", "naas_train.data.ImageFolderData", "--data.root", str(tmp_path / "nowhere")]
    with pytest.raises(FileNotFoundError) as err:
        main(args)
    assert str(tmp_path / "nowhere" / "train") in str(err.value) and "root/train/<class>/*" in str(err.value)
