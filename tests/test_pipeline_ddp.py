"""The CLI under multi-process launchers (CPU, gloo): ``naas-train pipeline`` with Lightning's launcher
(``--trainer.devices 2``) equals a one-process search on the same supernet; two "nodes" (two launches with
``NODE_RANK`` 0/1 on localhost) fit, are killed, resume, and end bitwise equal to an uninterrupted 2-process run."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from test_pipeline import ENV, command, recipe

DDP = ["--trainer.strategy", "ddp_find_unused_parameters_true"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The pipeline under Lightning's own launcher with 2 CPU processes; the run folder is moved on the command
    line (the recipe names another one)."""
    root = tmp_path_factory.mktemp("ddp")
    config = root / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(root / "recipe-default")))
    env = {**ENV, "MASTER_PORT": str(free_port())}
    out = subprocess.run(command("naas-train", "pipeline", "--config", str(config), "--finetune_epochs", "1",
                                 "--trainer.devices", "2", *DDP, "--trainer.default_root_dir", str(root / "run")),
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return root, out


def test_two_process_pipeline_writes_one_bundle_under_the_given_root(two_ranks):
    root, out = two_ranks
    run = root / "run"
    assert out.stdout.count("bundle written to") == 1  # rank 0 alone reports (and writes)
    assert f"bundle written to {run / 'bundle'}" in out.stdout
    assert not (root / "recipe-default").exists()  # --trainer.default_root_dir moved every path
    for path in ("checkpoints/last.ckpt", "cosearch/result.json", "finetune/finetuned.ckpt", "metrics.csv",
                 "bundle/metrics.json", "pipeline.json"):
        assert (run / path).is_file(), path
    assert not [p for p in run.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    steps = json.loads((run / "pipeline.json").read_text())["steps"]
    assert list(steps) == ["fit", "search", "finetune", "export"] and steps["search"]["at"] == "fit end"
    result = json.loads((run / "cosearch" / "result.json").read_text())
    assert result["accuracy_split"] == "search"
    assert result["supernet_checkpoint"] == str(run / "checkpoints" / "last.ckpt")  # saved before the search
    splits = result["data_splits"]
    assert splits["search"] == 10 * splits["search_per_class"] and splits["search_source"] == "train holdout"
    metrics = json.loads((run / "bundle" / "metrics.json").read_text())
    assert metrics["edp"] == result["metrics"]["edp"] and metrics["accuracy_detail"]["images"] == splits["val"]


def test_two_process_cosearch_equals_one_process_search(two_ranks):
    """The co-search's result does not depend on the rank count: one process searching the supernet the two
    ranks trained chooses the same design with the same numbers."""
    root, _ = two_ranks
    one = root / "one-process"
    out = subprocess.run(command("naas-train", "search", "--config", str(root / "recipe.yaml"), "--ckpt_path",
                                 str(root / "run" / "checkpoints" / "last.ckpt"), "--trainer.default_root_dir",
                                 str(one)), env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    a = json.loads((root / "run" / "cosearch" / "result.json").read_text())
    b = json.loads((one / "cosearch" / "result.json").read_text())
    for key in ("subnet", "accuracy", "accelerator", "metrics", "pareto", "history", "baselines", "predictor"):
        assert a[key] == b[key], key


def test_resumed_pipeline_skips_finished_steps(two_ranks):
    root, _ = two_ranks
    run = root / "run"
    finetuned = (run / "finetune" / "finetuned.ckpt").stat().st_mtime_ns
    env = {**ENV, "MASTER_PORT": str(free_port())}
    out = subprocess.run(command("naas-train", "pipeline", "--config", str(root / "recipe.yaml"), "--resume",
                                 "--finetune_epochs", "1", "--trainer.devices", "2", *DDP,
                                 "--trainer.default_root_dir", str(run)),
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for step in ("fit", "search", "finetune"):
        assert f"{step} finished before" in out.stdout, step
    assert (run / "finetune" / "finetuned.ckpt").stat().st_mtime_ns == finetuned
    assert "bundle written to" in out.stdout


def fit_recipe(root: Path) -> dict:
    """The pipeline recipe without the co-search, a checkpoint every training step."""
    r = recipe(root)
    r["trainer"]["callbacks"] = [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                                  "init_args": {"save_last": True, "save_top_k": 0, "every_n_train_steps": 1}}]
    return r


def node_launch(config: Path, node: int, port: int, *extra: str) -> subprocess.Popen:
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(node)}
    return subprocess.Popen(command("naas-train", "fit", "--config", str(config), "--trainer.num_nodes", "2",
                                    "--trainer.devices", "1", *DDP, *extra),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_two_nodes_fit_killed_and_resumed_equal_an_uninterrupted_run(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(fit_recipe(tmp_path / "nodes")))
    reference = subprocess.run(command("naas-train", "fit", "--config", str(config), "--trainer.devices", "2", *DDP,
                                       "--trainer.default_root_dir", str(tmp_path / "reference")),
                               env={**ENV, "MASTER_PORT": str(free_port())}, capture_output=True, text=True,
                               timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]

    port = free_port()
    nodes = [node_launch(config, n, port) for n in (0, 1)]
    ckpt = tmp_path / "nodes" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and all(p.poll() is None for p in nodes) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in nodes:
        p.send_signal(signal.SIGKILL)
    errors = [p.communicate()[1] for p in nodes]
    assert ckpt.exists(), errors[0][-3000:]
    killed_at = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < killed_at < 12, "killed too late: the run had finished"

    port = free_port()
    nodes = [node_launch(config, n, port, "--ckpt_path", "last") for n in (0, 1)]
    errors = [p.communicate(timeout=600)[1] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), errors[0][-3000:] + errors[1][-3000:]
    assert "Restoring states from the checkpoint" in errors[0]
    resumed, uninterrupted = final_weights(tmp_path / "nodes"), final_weights(tmp_path / "reference")
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        assert torch.equal(resumed[name], value), name
