"""Fine-tune and export bundle: files, ONNX checks, reload equivalence, reproducible hardware numbers and accuracy,
atomic writes; ``naas-train finetune`` / ``export`` through LightningCLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import pytorch_lightning as pl
import torch
from cosearch_result import RES, digits, write_result

import naas_train
import supernet
from hwmodel.timeloop_yaml import read_timeloop_yaml
from naas_train.data import resize
from naas_train.export import BUNDLE_FILES, export_bundle, load_bundle
from naas_train.finetune import FINETUNED_CKPT, FinetuneModule, run_finetune
from naas_train.subnet_io import load_subnet
from supernet import supernet_spec


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A supernet checkpoint (random weights) and a co-search ``result.json`` built the way the callback does."""
    return write_result(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def bundle(run_dir) -> Path:
    return export_bundle(run_dir / "cosearch" / "result.json", run_dir / "bundle", datamodule=digits())


def test_bundle_files_and_onnx(bundle, run_dir):
    assert sorted(p.name for p in bundle.iterdir()) == sorted(BUNDLE_FILES)
    assert not [p for p in run_dir.iterdir() if ".tmp-" in p.name]
    onnx.checker.check_model(str(bundle / "model.onnx"), full_check=True)
    x = torch.randn(1, 3, RES, RES, generator=torch.Generator().manual_seed(5))
    model = load_bundle(bundle)
    assert isinstance(model, supernet.MobileNetV3) and not model.training
    with torch.no_grad():
        ref = model(x)
        pt2 = torch.export.load(str(bundle / "model.pt2")).module()(x)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - ref.numpy()).max() <= 1e-4
    assert torch.allclose(pt2, ref, rtol=0, atol=1e-5)  # same graph, decomposed ops: equal to rounding
    assert torch.equal(naas_train.load_bundle(bundle)(x), ref)

    metrics = json.loads((bundle / "metrics.json").read_text())
    result = json.loads((run_dir / "cosearch" / "result.json").read_text())
    for key in ("cycles", "energy_pj", "edp", "macs", "params"):
        assert metrics[key] == result["metrics"][key], key
    assert set(metrics["baselines"]) == set(result["baselines"])
    for b in metrics["baselines"].values():
        assert b["edp_ratio"] == pytest.approx(b["edp"] / metrics["edp"])
    assert metrics["provenance"]["search"] == result["provenance"]
    assert json.loads((bundle / "subnet.json").read_text())["subnet"] == result["subnet"]

    nodes = read_timeloop_yaml(bundle / "accelerator.yaml")["architecture"]["nodes"]
    assert [n["name"] for n in nodes] == ["system", "DRAM", "L2", "PE_axis0", "PE_axis1", "L1", "MAC"][: len(nodes)]
    assert nodes[2]["attributes"]["naas_size_bytes"] == result["accelerator"]["l2_bytes"]
    mapping = json.loads((bundle / "mapping.json").read_text())
    rows = (bundle / "mapping.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(mapping["layers"]) == 1 + len(result["mappings"])
    assert all(e["loop_nest"] and e["source_layer"] for e in mapping["layers"])
    # timeloop/: every layer re-runs from Timeloop files with the same compute cycles as mapping.json
    from hwmodel.nestmodel import evaluate_nest_mapping
    from hwmodel.timeloop_import import load_timeloop

    tl = bundle / "timeloop"
    maps = sorted(tl.glob("*.map.yaml"))
    assert (tl / "arch.yaml").is_file() and (tl / "ERT_summary.yaml").is_file() and (tl / "README.txt").is_file()
    assert len(maps) + (tl / "README.txt").read_text().count("no Timeloop split form") == len(mapping["layers"])
    by_stem = {e["name"].replace(".", "_").replace("/", "_"): e for e in mapping["layers"]}
    for m in maps:
        stem = m.name[: -len(".map.yaml")]
        hier, layer, nest = load_timeloop(tl / "arch.yaml", tl / f"{stem}.problem.yaml", m, tl / "ERT_summary.yaml")
        cost = evaluate_nest_mapping(layer, hier, nest)
        assert cost.valid and cost.macs == by_stem[stem]["macs"]
        assert cost.compute_cycles <= by_stem[stem]["compute_cycles"]  # systolic fold skew is not in the format
    report = (bundle / "report.md").read_text()
    assert "![Pareto front](pareto.png)" in report and "breakdown.png" in report


def test_load_subnet_from_recipe_or_inferred(run_dir):
    """The supernet's architecture from the recipe's module or inferred from the checkpoint gives the same subnet."""
    result = json.loads((run_dir / "cosearch" / "result.json").read_text())
    inferred, spec, source = load_subnet(result)
    assert source == {"kind": "supernet", "checkpoint": str(run_dir / "supernet.ckpt"), "bn_recalibrated": False}
    given, spec2, _ = load_subnet(result, supernet=supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10))
    assert spec == spec2 and spec["init_args"]["width_mult"] == 0.25
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        assert torch.equal(inferred(x), given(x))
    with pytest.raises(ValueError, match="does not fit"):
        load_subnet(result, supernet=supernet.OFAMobileNetV3(width_mult=0.5, num_classes=10))
    no_ckpt = {**result, "supernet_checkpoint": None}
    with pytest.raises(ValueError, match="no checkpoint"):
        load_subnet(no_ckpt)
    in_memory, _, source = load_subnet(no_ckpt, supernet=given_net(run_dir))
    assert source["checkpoint"] is None
    with torch.no_grad():
        assert torch.equal(in_memory(x), given(x))


def given_net(run_dir: Path) -> supernet.OFAMobileNetV3:
    """The supernet of the run with its trained weights, in memory (as right after ``fit``)."""
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10)
    state = torch.load(run_dir / "supernet.ckpt", weights_only=True)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()})
    return net


def test_naas_hw_reproduces_metrics(bundle):
    exe = Path(sys.executable).with_name("naas-hw")
    cmd = [str(exe), "evaluate", "--accelerator", str(bundle / "accelerator.json"), "--mapping",
           str(bundle / "mapping.json"), "--onnx", str(bundle / "model.onnx"), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    total = json.loads(out.stdout)["total"]
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert total["cycles"] == metrics["cycles"]
    assert total["energy_pj"] == metrics["energy_pj"]
    assert total["macs"] == metrics["macs"]


def test_onnx_accuracy_on_validation_split(bundle):
    dm = digits()
    dm.setup("validate")
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    correct = total = 0
    for x, y in dm.val_dataloader():
        for image, target in zip(resize(x, RES).numpy(), y.tolist()):
            correct += int(session.run(None, {"input": image[None]})[0].argmax() == target)
            total += 1
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert total == len(dm.val_set) == metrics["accuracy_detail"]["images"]
    assert metrics["accuracy"] == correct / total


def test_corrupt_checkpoint_leaves_nothing(run_dir, tmp_path):
    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(b"PK\x03\x04 not a checkpoint")
    out = tmp_path / "out" / "bundle"
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        export_bundle(run_dir / "cosearch" / "result.json", out, supernet_checkpoint=bad)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_failure_midway_is_atomic(run_dir, tmp_path, monkeypatch):
    result = run_dir / "cosearch" / "result.json"
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("old bundle")
    (out / "subnet.json").write_text("{}")  # a bundle of ours: overwrite may replace it
    with pytest.raises(FileExistsError):
        export_bundle(result, out)
    written = []

    def boom(*args, **kwargs):  # fails after subnet.json and weights.safetensors are written
        written.extend(p.name for p in tmp_path.glob(".bundle.tmp-*/*"))
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.export, "export", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_bundle(result, out, overwrite=True)
    assert sorted(written) == ["subnet.json", "weights.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "subnet.json"]


def test_finetune_then_export(run_dir, tmp_path):
    pl.seed_everything(0)
    dm = digits()
    trainer = pl.Trainer(accelerator="cpu", devices=1, default_root_dir=str(tmp_path), logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_train_batches=2, limit_val_batches=1)
    net = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10)
    result = run_dir / "cosearch" / "result.json"
    ckpt = run_finetune(trainer, net, dm, result=result, epochs=1, lr=0.05)
    assert ckpt == tmp_path / FINETUNED_CKPT and ckpt.is_file()
    assert "finetune/val_acc" in trainer.callback_metrics
    module = FinetuneModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False).eval()
    assert module.hparams.supernet_spec == supernet_spec(net)
    model, spec, source = load_subnet(json.loads(result.read_text()), checkpoint=ckpt)  # what export_bundle uses
    assert source["kind"] == "finetuned" and spec == supernet_spec(net)
    x = torch.randn(1, 3, RES, RES)
    with torch.no_grad():
        assert torch.allclose(model(x), module.net(x), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="not a fine-tuned"):
        export_bundle(result, tmp_path / "b2", checkpoint=run_dir / "supernet.ckpt")
    assert not (tmp_path / "b2").exists()


@pytest.mark.parametrize("command, options", [("finetune", ["--epochs", "--result", "--subnet", "--lr", "--resume"]),
                                              ("export", ["--result", "--out", "--checkpoint", "--overwrite"])])
def test_cli_subcommands_parse(command, options, capsys, monkeypatch):
    """The mixin's methods become ``naas-train finetune`` / ``export`` options under LightningCLI."""
    from naas_train.cli import NaasCLI

    monkeypatch.setattr(sys, "argv", ["naas-train"])
    with pytest.raises(SystemExit) as exit_info:
        NaasCLI(args=[command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(option in text for option in options), text
