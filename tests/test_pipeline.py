"""``naas-train pipeline`` end to end on the embedded digits data (tiny epochs), killed during the co-search and
resumed: the bundle's files, reload equivalence, ``naas-hw`` reproducing its numbers, and the resumed co-search
giving the uninterrupted one's result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from naas_train import load_bundle
from naas_train.export import BUNDLE_FILES

RES = 16
EXE = Path(sys.executable).parent


def recipe(root: Path) -> dict:
    """Two progressive-shrinking phases of a quarter-width MobileNetV3 supernet, three co-search generations."""
    return {
        "seed_everything": 0,
        "model": {"class_path": "naas_train.module.SupernetModule", "init_args": {
            "net": {"class_path": "supernet.OFAMobileNetV3",
                    "init_args": {"width_mult": 0.25, "num_classes": 10, "dropout": 0.0}},
            "phases": [{"name": "full", "epochs": 1, "lr": 0.1},
                       {"name": "kernel", "epochs": 1, "lr": 0.03, "ks_list": [3, 5, 7]}],
            "val_resolutions": [RES], "kd_ratio": 1.0}},
        "data": {"class_path": "naas_train.data.DigitsData",
                 "init_args": {"resolutions": [RES], "source_size": RES, "batch_size": 64, "bn_samples": 64,
                               "num_workers": 0, "seed": 0}},
        "trainer": {
            "accelerator": "cpu", "devices": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "limit_train_batches": 6, "default_root_dir": str(root),
            "logger": [{"class_path": "naas_train.loggers.RunCSVLogger"},  # paths: under default_root_dir
                       {"class_path": "naas_train.loggers.OfflineWandbLogger",
                        "init_args": {"project": "naas-trainer", "name": "e2e"}}],
            "callbacks": [
                {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                 "init_args": {"save_last": True, "save_top_k": 0}},
                {"class_path": "naas_train.cosearch_callback.CoSearchCallback",
                 "init_args": {"run_at": ["fit_end"], "settings": {
                     "budget": "eyeriss", "resolutions": [RES], "accel_generations": 3, "accel_popsize": 3,
                     "population": 4, "generations": 1, "predictor_samples": 10, "predictor_epochs": 50,
                     "mapping_budget": 40, "final_mapping_budget": 120, "min_accuracy": 0.1, "seed": 0}}}]},
    }


def command(name: str, *args: str) -> list[str]:
    return [str(EXE / name), *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}  # one thread: bitwise-repeatable runs


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> tuple[Path, str]:
    """Pipeline killed (SIGKILL) right after the co-search's first generation is saved, then ``--resume``d."""
    root = tmp_path_factory.mktemp("pipeline")
    config = root / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(root / "run")))
    pipe = command("naas-train", "pipeline", "--config", str(config), "--finetune_epochs", "1")
    state = root / "run" / "cosearch" / "state-final.json"
    proc = subprocess.Popen(pipe, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert state.exists(), f"the co-search never saved its state:\n{err[-3000:]}"
    assert proc.returncode == -signal.SIGKILL
    generations = len(json.loads(state.read_text())["search"]["history"])
    assert generations < 3, "killed too late: the search had finished"
    assert not (root / "run" / "cosearch" / "result.json").exists()
    done = subprocess.run([*pipe, "--resume"], env=ENV, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Restoring states from the checkpoint" in done.stderr  # fit resumed from last.ckpt, not retrained
    assert f"resuming the co-search 'final' after generation {generations}" in done.stderr
    return root, done.stdout


def test_pipeline_prints_a_complete_bundle(resumed):
    root, stdout = resumed
    bundle = root / "run" / "bundle"
    assert f"bundle written to {bundle}" in stdout
    assert " s, co-search " in stdout and "validation images" in stdout and "this EDP" in stdout
    assert sorted(p.name for p in bundle.iterdir()) == sorted(BUNDLE_FILES)
    assert not [p for p in bundle.parent.iterdir() if ".tmp-" in p.name]
    assert (root / "run" / "finetune" / "finetuned.ckpt").is_file()

    x = torch.randn(1, 3, RES, RES, generator=torch.Generator().manual_seed(0))  # the bundle's input: batch 1
    model = load_bundle(bundle)
    with torch.no_grad():
        ref = model(x)
        pt2 = torch.export.load(str(bundle / "model.pt2")).module()(x)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - ref.numpy()).max() <= 1e-4
    assert torch.allclose(pt2, ref, rtol=0, atol=1e-5)

    metrics = json.loads((bundle / "metrics.json").read_text())
    result = json.loads((root / "run" / "cosearch" / "result.json").read_text())
    assert metrics["edp"] == result["metrics"]["edp"] and metrics["accuracy_detail"]["images"] == 360
    assert metrics["provenance"]["weights"]["kind"] == "finetuned"


def test_naas_hw_reproduces_the_pipeline_bundle(resumed):
    bundle = resumed[0] / "run" / "bundle"
    out = subprocess.run(command("naas-hw", "evaluate", "--accelerator", str(bundle / "accelerator.json"),
                                 "--mapping", str(bundle / "mapping.json"), "--onnx", str(bundle / "model.onnx"),
                                 "--json"), env=ENV, capture_output=True, text=True, timeout=300, check=True)
    total = json.loads(out.stdout)["total"]
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert (total["cycles"], total["energy_pj"], total["macs"]) == (metrics["cycles"], metrics["energy_pj"],
                                                                    metrics["macs"])


def test_resumed_cosearch_equals_uninterrupted(resumed):
    """``naas-train search`` on the same trained supernet, never killed, chooses the same design."""
    root, _ = resumed
    fresh = root / "uninterrupted"
    out = subprocess.run(command("naas-train", "search", "--config", str(root / "recipe.yaml"), "--ckpt_path",
                                 str(root / "run" / "checkpoints" / "last.ckpt"),
                                 "--trainer.default_root_dir", str(fresh)),
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    a = json.loads((root / "run" / "cosearch" / "result.json").read_text())
    b = json.loads((fresh / "cosearch" / "result.json").read_text())
    for key in ("subnet", "accuracy", "accelerator", "metrics", "pareto", "history", "baselines"):
        assert a[key] == b[key], key


def test_pipeline_help_lists_its_own_options():
    out = subprocess.run(command("naas-train", "pipeline", "--help"), env=ENV, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    assert all(o in out.stdout for o in ("--resume", "--finetune_epochs", "--finetune_lr", "--out", "naas-train fit"))
