"""Every recipe parses and instantiates its objects (model, data, trainer with loggers and callbacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from naas_train.cli import NaasCLI
from naas_train.data import SupernetData
from naas_train.module import SupernetModule

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
OVERLAY_SUFFIX = "_slurm"  # <name>_slurm.yaml overlays <name>.yaml (scripts/slurm_train.sh passes both)
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
#: What srun sets for a one-task job; Lightning's SLURMEnvironment reads these.
ONE_TASK_SLURM_JOB = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                      "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost", "SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "t"}


def _configs(recipe: Path) -> list[str]:
    if recipe.stem.endswith(OVERLAY_SUFFIX):
        base = recipe.with_name(recipe.stem.removesuffix(OVERLAY_SUFFIX) + ".yaml")
        return ["--config", str(base), "--config", str(recipe)]
    return ["--config", str(recipe)]


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_recipe_parses_and_instantiates(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recipes write under runs/
    monkeypatch.setenv("WANDB_MODE", "offline")
    if recipe.stem.endswith(OVERLAY_SUFFIX):
        for key, value in ONE_TASK_SLURM_JOB.items():
            monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.argv", ["naas-train"])
    cli = NaasCLI(args=[*_configs(recipe), *CPU], run=False)
    assert isinstance(cli.model, SupernetModule) and isinstance(cli.datamodule, SupernetData)
    assert cli.trainer.max_epochs == sum(p.epochs for p in cli.model.phases)
    assert cli.model.resolutions == cli.datamodule.resolutions
    assert cli.trainer.checkpoint_callback is not None and cli.trainer.checkpoint_callback.save_last
    assert {type(logger).__name__ for logger in cli.trainer.loggers} == {"RunCSVLogger", "OfflineWandbLogger"}


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_default_root_dir_moves_every_path_of_a_run(recipe, tmp_path, monkeypatch):
    """``--trainer.default_root_dir DIR`` places logs, checkpoints and the co-search under DIR."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    if recipe.stem.endswith(OVERLAY_SUFFIX):
        for key, value in ONE_TASK_SLURM_JOB.items():
            monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.argv", ["naas-train"])
    run = tmp_path / "elsewhere"
    cli = NaasCLI(args=[*_configs(recipe), *CPU, "--trainer.default_root_dir", str(run)], run=False)
    places = [Path(logger.save_dir) for logger in cli.trainer.loggers]
    places += [Path(cb.dirpath) for cb in cli.trainer.checkpoint_callbacks]
    places += [cb.directory(cli.trainer) for cb in cli.trainer.callbacks if hasattr(cb, "directory")]
    assert places and all(p == run or run in p.parents for p in places), places
    assert not (tmp_path / "runs").exists()


def test_slurm_script_matches_the_slurm_recipe():
    trainer = yaml.safe_load((RECIPES / "ofa_mbv3_imagenet_slurm.yaml").read_text())["trainer"]
    script = (RECIPES.parent / "scripts" / "slurm_train.sh").read_text()
    assert f"#SBATCH --nodes={trainer['num_nodes']}" in script
    assert f"#SBATCH --ntasks-per-node={trainer['devices']}" in script
    assert "recipes/ofa_mbv3_imagenet.yaml" in script and "recipes/ofa_mbv3_imagenet_slurm.yaml" in script
