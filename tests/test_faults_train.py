"""Hostile input and faults against ``naas-train``: one-line errors (exit 2, no traceback; rank 0 only), checkpoints
that survive a full disk and load errors that name the file, data/model consistency, ``result.json`` checked before
export work, and an export killed with SIGKILL cleaned up by the next run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from naas_train import entry
from naas_train.checkpoints import AtomicCheckpointIO, read_checkpoint
from naas_train.data import ImageFolderData, SyntheticData
from naas_train.export import export_bundle
from naas_train.module import check_data_classes
from naas_train.phases import Phase
from naas_train.preemption import newest_checkpoint
from naas_train.trainer import NaasTrainer

ROOT = Path(__file__).parents[1]

RECIPE = {
    "seed_everything": 0,
    "model": {"class_path": "naas_train.module.SupernetModule",
              "init_args": {"net": {"class_path": "supernet.OFAMobileNetV3",
                                    "init_args": {"width_mult": 0.25, "num_classes": 4}},
                            "phases": [{"name": "full", "epochs": 1, "lr": 0.05}], "kd_ratio": 0.0}},
    "data": {"class_path": "naas_train.data.SyntheticData",
             "init_args": {"resolutions": [16], "batch_size": 8, "train_size": 16, "val_size": 8, "bn_samples": 8,
                           "search_per_class": 0}},
    "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "default_root_dir": "run"},
}


@pytest.fixture(autouse=True)
def _no_debug_leak(monkeypatch):
    """``naas-train --debug`` exports NAAS_DEBUG for the ranks it launches; in-process calls must not leak it.
    (``setenv`` records the unset state so teardown removes whatever the test left; ``delenv`` of an unset
    variable records nothing.)"""
    monkeypatch.setenv("NAAS_DEBUG", "")


def naas_train(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "naas-train"
    command = [str(script)] if script.is_file() else [sys.executable, "-c", "from naas_train.entry import main; main()"]
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    if entry.DEBUG_ENV not in env:
        environ.pop(entry.DEBUG_ENV, None)
    return subprocess.run([*command, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120)


# --- the top-level error handler -------------------------------------------------------------------------
def test_naas_train_bad_input_prints_one_line_and_exits_2(tmp_path):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    done = naas_train(tmp_path, "fit", "--config", "recipe.yaml",
                      "--model.init_args.phases", "[{name: full, epochs: 0, lr: 0.05}]")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["naas-train: error: model: phase 'full': epochs must be an integer >= 1, got 0"], \
        done.stderr[-2000:]


def test_a_truncated_ckpt_path_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, tmp_path / "good.ckpt")
    (tmp_path / "bad.ckpt").write_bytes((tmp_path / "good.ckpt").read_bytes()[:500])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(entry, "apply_thread_defaults", lambda: None)
    monkeypatch.delenv(entry.DEBUG_ENV, raising=False)
    monkeypatch.setattr("sys.argv", ["naas-train"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["fit", "--config", "recipe.yaml", "--ckpt_path", "bad.ckpt"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(
        "naas-train: error: cannot read checkpoint bad.ckpt (truncated, corrupt or not a checkpoint): RuntimeError")


def fail_with(exc: BaseException, monkeypatch) -> None:
    def cli_main(args):
        raise exc

    monkeypatch.setattr("naas_train.cli.main", cli_main)
    monkeypatch.setattr(entry, "apply_thread_defaults", lambda: None)
    monkeypatch.delenv(entry.DEBUG_ENV, raising=False)


@pytest.mark.parametrize(("exc", "code", "line"), [
    (ValueError("data.root=/x: no images\nNamespace(dump...)"), 2, "naas-train: error: data.root=/x: no images"),
    (OSError(errno.ENOSPC, "No space left on device", "run/last.ckpt"), 2,
     "naas-train: error: [Errno 28] No space left on device: 'run/last.ckpt'"),
    (KeyError("baselines"), 1, "naas-train: error: KeyError: 'baselines' (an internal error: run with NAAS_DEBUG=1"),
])
def test_known_errors_exit_2_others_1_one_line(monkeypatch, capsys, exc, code, line):
    fail_with(exc, monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["fit"])
    assert exit_info.value.code == code
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(line)


def test_other_ranks_exit_quietly_with_the_same_code(monkeypatch, capsys):
    fail_with(ValueError("bad"), monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(SystemExit) as exit_info:
        entry.main(["fit"])
    assert exit_info.value.code == 2 and capsys.readouterr().err == ""


def test_debug_flag_or_env_shows_the_traceback(monkeypatch):
    fail_with(ValueError("bad"), monkeypatch)
    with pytest.raises(ValueError, match="bad"):
        entry.main(["fit", "--debug"])
    monkeypatch.setenv(entry.DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="bad"):
        entry.main(["fit"])


def test_system_exit_and_preempted_pass_unchanged(monkeypatch, capsys):
    from naas_train.preemption import EX_TEMPFAIL, Preempted

    fail_with(Preempted(Path("run/hpc_ckpt_3.ckpt"), 3, requeued=False), monkeypatch)
    with pytest.raises(Preempted) as exit_info:
        entry.main(["fit"])
    assert exit_info.value.code == EX_TEMPFAIL and capsys.readouterr().err == ""


# --- checkpoints ------------------------------------------------------------------------------------------
class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(8, 4))
        return torch.utils.data.DataLoader(data, batch_size=2)


def tiny_trainer(root: Path, **kwargs) -> NaasTrainer:
    callback = ModelCheckpoint(dirpath=root / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=1)
    return NaasTrainer(accelerator="cpu", default_root_dir=root, logger=False, enable_progress_bar=False,
                       enable_model_summary=False, callbacks=[callback], **kwargs)


def test_naas_trainer_saves_atomically_unless_the_user_gave_a_checkpoint_io(tmp_path):
    assert type(tiny_trainer(tmp_path).strategy.checkpoint_io) is AtomicCheckpointIO

    class Mine(TorchCheckpointIO):
        pass

    assert type(tiny_trainer(tmp_path, plugins=[Mine()]).strategy.checkpoint_io) is Mine


def test_a_full_disk_during_checkpointing_keeps_the_previous_last_ckpt(tmp_path, monkeypatch):
    torch.manual_seed(0)
    tiny_trainer(tmp_path, max_steps=2).fit(Tiny())
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    assert read_checkpoint(last)["global_step"] == 2

    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):  # writes part of the file, then the disk is full
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as err:
        tiny_trainer(tmp_path, max_steps=4).fit(Tiny(), ckpt_path="last")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(last)
    monkeypatch.setattr(torch, "save", real_save)
    assert last.read_bytes() == before and read_checkpoint(last)["global_step"] == 2
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no temporary left
    tiny_trainer(tmp_path, max_steps=4).fit(Tiny(), ckpt_path="last")  # the run goes on from it
    assert read_checkpoint(last)["global_step"] == 4


@pytest.mark.parametrize(("content", "match"), [
    (b"", "is empty"),
    (b"PK\x03\x04 truncated zip", "truncated, corrupt or not a checkpoint"),
    (bytes(range(256)) * 4, "truncated, corrupt or not a checkpoint"),
])
def test_unreadable_checkpoints_are_one_line_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    for load in (AtomicCheckpointIO().load_checkpoint, read_checkpoint):
        with pytest.raises(ValueError, match=match) as err:
            load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_ckpt_path_last_skips_a_corrupt_newest_checkpoint(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"global_step": 4}, folder / "epoch0.ckpt")
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 cut short by a full disk")
    assert newest_checkpoint(tmp_path) == folder / "epoch0.ckpt"
    assert "skipping" in caplog.text and "last.ckpt" in caplog.text


# --- data and model consistency ----------------------------------------------------------------------------
def image_folder(root: Path, classes: list[str], per_class: int = 3) -> None:
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / name / f"{i}.png")


def test_image_folder_class_sets_must_match(tmp_path):
    image_folder(tmp_path / "train", ["a", "b"])
    image_folder(tmp_path / "val", ["b", "c"])
    data = ImageFolderData(tmp_path, resolutions=[8], search_per_class=0)
    with pytest.raises(ValueError, match=r"val must hold the same class folders as .*train: missing \['a'\]; "
                                         r"not in train \['c'\]"):
        data.setup("fit")
    image_folder(tmp_path / "search", ["a"])
    data = ImageFolderData(tmp_path, resolutions=[8], search_root=tmp_path / "search", holdout=0.5)
    with pytest.raises(ValueError, match=r"data.search_root=.*missing \['b'\]"):
        data.setup("fit")


def test_more_classes_than_the_model_head_is_a_clear_error():
    data = SyntheticData(num_classes=6, train_size=12, val_size=6, search_per_class=0)
    data.setup("fit")
    assert data.class_count() == 6
    module = SimpleNamespace(_trainer=SimpleNamespace(datamodule=data), net=torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="has 6 classes but the network's classifier .* outputs 4: set the "
                                         "network's num_classes to 6"):
        check_data_classes(module)
    module.net = torch.nn.Linear(3, 6)
    check_data_classes(module)


def test_a_phase_with_zero_epochs_names_the_field():
    with pytest.raises(ValueError, match="phase 'full': epochs must be an integer >= 1, got 0"):
        Phase(name="full", epochs=0, lr=0.1)
    with pytest.raises(ValueError, match="phase 'p': lr must be a finite number > 0, got inf"):
        Phase(name="p", epochs=1, lr=float("inf"))


# --- export -------------------------------------------------------------------------------------------
def test_result_without_baselines_is_refused_before_any_export_work(tmp_path):
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"subnet": {"r": [32]}, "space": {"class": "OFAMobileNetV3"}, "accelerator": {},
                                  "mappings": [{"name": "l", "dims": {}, "count": 1, "mapping": {}}],
                                  "metrics": {"cycles": 1.0, "energy_pj": 1.0, "edp": 1.0}, "pareto": []}))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"co-search result {result}: field baselines: Field required"):
        export_bundle(result, tmp_path / "bundle")
    assert time.perf_counter() - started < 5 and not (tmp_path / "bundle").exists()
    result.write_text('{"subnet": 1, "subnet": 2}')
    with pytest.raises(ValueError, match=r"duplicated key\(s\) \['subnet'\]"):
        export_bundle(result, tmp_path / "bundle")


def fake_bundle(tmp: Path, *args) -> None:
    (tmp / "subnet.json").write_text("{}")
    (tmp / "model.pt2").write_bytes(b"x" * 1000)


EXPORT_KILLED = """
import os, signal
import naas_train.export as export

def write(tmp, *args):
    (tmp / "subnet.json").write_text("{}")
    (tmp / "model.pt2").write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)

export.read_result = lambda path: {}
export._write_bundle = write
export.export_bundle("result.json", "bundle", overwrite=True)
"""


def test_sigkill_during_export_then_rerun_cleans_the_temporary(tmp_path, monkeypatch):
    killed = subprocess.run([sys.executable, "-c", EXPORT_KILLED], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    stale = [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle.tmp-")]
    assert len(stale) == 1 and not (tmp_path / "bundle").exists()
    (tmp_path / "bundle").mkdir()  # an earlier bundle (empty here) that the re-run replaces
    monkeypatch.setattr("naas_train.export.read_result", lambda path: {})
    monkeypatch.setattr("naas_train.export._write_bundle", fake_bundle)
    export_bundle(tmp_path / "result.json", tmp_path / "bundle", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["model.pt2", "subnet.json"]


def test_a_failure_on_rank_zero_is_raised_on_every_rank(monkeypatch):
    """No rank waits forever for a rank 0 that failed: its outcome is broadcast and raised everywhere."""
    import naas_train.distributed as distributed

    def broadcast(box, src):  # what rank 0 sent after its write failed
        box[0] = (True, "[Errno 28] No space left on device: 'run/pipeline.json'")

    monkeypatch.setattr(distributed, "is_global_zero", lambda: False)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "broadcast_object_list", broadcast)
    with pytest.raises(ValueError, match="rank 0 failed: .*No space left on device"):
        distributed.on_rank_zero(pytest.fail, "only rank 0 runs it")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed, "is_global_zero", lambda: True)
    assert distributed.on_rank_zero(lambda x: x + 1, 1) == 2
