"""Mixed precision through fine-tune and export (issue 14 item 4): QAT checkpoint, QDQ model.onnx, bits recorded
per layer and tensor, and ``naas-hw evaluate`` on the bundle reproducing the hardware numbers with those bits."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import pytorch_lightning as pl
import torch
from cosearch_result import RES, digits, write_result

import supernet
from hwmodel.workloads import from_onnx
from naas_train.export import export_bundle, load_bundle
from naas_train.finetune import FinetuneModule, run_finetune
from naas_train.onnx_eval import onnx_accuracy
from naas_train.subnet_io import load_subnet
from supernet.quant import QuantLayer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A supernet checkpoint (random weights) and a mixed-precision co-search ``result.json``."""
    return write_result(tmp_path_factory.mktemp("mprun"), generations=1, bits=(4, 6, 8), mac="bitfusion")


@pytest.fixture(scope="module")
def finetuned(run_dir, tmp_path_factory) -> Path:
    pl.seed_everything(0)
    out = tmp_path_factory.mktemp("ft")
    trainer = pl.Trainer(accelerator="cpu", devices=1, default_root_dir=str(out), logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_train_batches=3, limit_val_batches=1)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10)
    return run_finetune(trainer, net, digits(), result=run_dir / "cosearch" / "result.json", epochs=1, lr=0.02)


@pytest.fixture(scope="module")
def bundle(run_dir, finetuned) -> Path:
    return export_bundle(run_dir / "cosearch" / "result.json", run_dir / "bundle", checkpoint=finetuned,
                         datamodule=digits())


def test_finetune_is_quantization_aware(run_dir, finetuned):
    result = json.loads((run_dir / "cosearch" / "result.json").read_text())
    module = FinetuneModule.load_from_checkpoint(finetuned, map_location="cpu", weights_only=False).eval()
    layers = {m.layer_name: (m.weight_bits, m.input_bits) for m in module.net.modules() if isinstance(m, QuantLayer)}
    assert layers == {k: (v["weights"], v["inputs"]) for k, v in result["precision"].items()}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.net.modules())  # folded before QAT
    model, _, source = load_subnet(result, checkpoint=finetuned)
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        assert torch.equal(model(x), module.net(x))  # the checkpoint's scales, frozen
    assert source["kind"] == "finetuned"
    other = dict(result, precision={k: {"weights": 8, "inputs": 8} for k in result["precision"]})
    with pytest.raises(ValueError, match="fine-tuned with precision"):
        load_subnet(other, checkpoint=finetuned)


def test_bundle_carries_the_bits(run_dir, bundle):
    result = json.loads((run_dir / "cosearch" / "result.json").read_text())
    model_proto = onnx.load(str(bundle / "model.onnx"))
    ops = [n.op_type for n in model_proto.graph.node]
    n_layers = len(result["precision"])
    assert ops.count("QuantizeLinear") >= 1 and ops.count("DequantizeLinear") >= n_layers
    meta = {p.key: p.value for p in model_proto.metadata_props}
    assert json.loads(meta["naas.precision"]) == result["precision"]
    # hwmodel reads every layer's bits back from the QDQ graph
    mapping = json.loads((bundle / "mapping.json").read_text())
    for layer in from_onnx(bundle / "model.onnx"):
        entry = next(e for e in mapping["layers"] if e["name"] == layer.name)
        assert (layer.weight_bits, layer.input_bits) == (entry["precision"]["weights"], entry["precision"]["inputs"])
        want = result["precision"][entry["source_layer"]]
        assert (layer.weight_bits, layer.input_bits) == (want["weights"], want["inputs"])
    rows = list(csv.DictReader((bundle / "mapping.csv").read_text().splitlines()))
    assert all(r["weight_bits"] in ("4", "6", "8") and r["input_bits"] in ("4", "6", "8") for r in rows)
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["precision"] == result["precision"] and metrics["onnx"]["format"] == "QDQ"
    assert {"uniform_int16", "uniform_int8", "bits_only"} <= set(metrics["baselines"])
    assert "Precision (bits per layer)" in (bundle / "report.md").read_text()
    assert "weights" in (bundle / "timeloop" / "README.txt").read_text()
    problems = sorted((bundle / "timeloop").glob("*.problem.yaml"))
    assert problems and all("naas-trainer precision of this layer" in p.read_text() for p in problems)


def test_bundle_reproduces_hardware_numbers_and_accuracy(bundle):
    metrics = json.loads((bundle / "metrics.json").read_text())
    out = subprocess.run([sys.executable, "-m", "hwmodel.cli", "evaluate", "--accelerator",
                          str(bundle / "accelerator.json"), "--mapping", str(bundle / "mapping.json"), "--onnx",
                          str(bundle / "model.onnx"), "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    total = json.loads(out.stdout)["total"]
    assert total["cycles"] == pytest.approx(metrics["cycles"], rel=1e-12)
    assert total["energy_pj"] == pytest.approx(metrics["energy_pj"], rel=1e-12)
    # the accuracy in metrics.json is onnxruntime's on model.onnx
    again = onnx_accuracy(bundle / "model.onnx", digits(), RES)
    assert again["top1"] == metrics["accuracy"]


def test_bundle_reloads_as_the_quantized_model(bundle):
    model = load_bundle(bundle)
    assert any(isinstance(m, QuantLayer) for m in model.modules())
    x = torch.randn(1, 3, RES, RES, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        pt2 = torch.export.load(str(bundle / "model.pt2")).module()(x)
    assert torch.allclose(pt2, ref, rtol=0, atol=1e-5)
    assert np.isfinite(ref.numpy()).all()
