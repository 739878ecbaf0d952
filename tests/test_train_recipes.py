"""Every recipe parses and instantiates its objects (model, data, trainer with loggers and callbacks); the SLURM
overlay does so as the SLURM scripts submit it (their nodes and tasks per node, under the job's SLURM_* variables)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import yaml
from lightning_fabric.plugins.environments import SLURMEnvironment

from naas_train.cli import NaasCLI
from naas_train.data import SupernetData
from naas_train.module import SupernetModule
from naas_train.preemption import PreemptionCheckpoint

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SCRIPTS = RECIPES.parent / "scripts"
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


def _check_recipe_objects(cli: NaasCLI) -> None:
    assert isinstance(cli.model, SupernetModule) and isinstance(cli.datamodule, SupernetData)
    assert cli.trainer.max_epochs == sum(p.epochs for p in cli.model.phases)
    assert cli.model.resolutions == cli.datamodule.resolutions
    assert cli.trainer.checkpoint_callback is not None and cli.trainer.checkpoint_callback.save_last
    assert {type(logger).__name__ for logger in cli.trainer.loggers} == {"RunCSVLogger", "OfflineWandbLogger"}


@pytest.mark.parametrize("recipe", sorted(r for r in RECIPES.glob("*.yaml") if not r.stem.endswith(OVERLAY_SUFFIX)),
                         ids=lambda p: p.stem)
def test_recipe_parses_and_instantiates(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recipes write under runs/
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr("sys.argv", ["naas-train"])
    _check_recipe_objects(NaasCLI(args=[*_configs(recipe), *CPU], run=False))


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


def sbatch_options(script: Path) -> dict[str, str]:
    """The ``#SBATCH --name[=value]`` lines of a batch script."""
    return {m[1]: m[2] for m in re.finditer(r"^#SBATCH --([\w-]+)(?:=(\S+))?", script.read_text(), re.MULTILINE)}


def default_configs(script: Path) -> list[str]:
    """The recipes a SLURM script passes when ``$NAAS_CONFIGS`` is unset."""
    found = re.search(r'^naas_srun \S+ "([^"]*)"', script.read_text(), re.MULTILINE)
    assert found, f'{script.name} runs naas_srun NAME "DEFAULT RECIPES" (scripts/slurm_common.sh)'
    assert "${NAAS_CONFIGS:-$defaults}" in (script.parent / "slurm_common.sh").read_text()
    return found[1].split()


@pytest.mark.parametrize("script", ["slurm_train.sh", "slurm_pipeline.sh"])
def test_slurm_recipe_instantiates_as_submitted(script, tmp_path, monkeypatch):
    """The recipes of a SLURM script, under the variables srun sets for rank 0 of the job its ``#SBATCH`` lines
    ask for: the trainer's nodes, devices and world size are the job's, it uses SLURMEnvironment without
    Lightning's own requeue handler, and NaasTrainer preempts on the signal the script asks for."""
    options = sbatch_options(SCRIPTS / script)
    nodes, per_node = int(options["nodes"]), int(options["ntasks-per-node"])
    job = {"SLURM_NTASKS": str(nodes * per_node), "SLURM_NTASKS_PER_NODE": str(per_node), "SLURM_NNODES": str(nodes),
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": f"node[0-{nodes - 1}]",
           "SLURM_JOB_ID": "1", "SLURM_JOB_NAME": options["job-name"]}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for key, value in job.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.argv", ["naas-train"])
    configs = default_configs(SCRIPTS / script)
    overlays = [yaml.safe_load((RECIPES.parent / c).read_text())
                for c in configs if Path(c).stem.endswith(OVERLAY_SUFFIX)]
    plugins = [p for o in overlays for p in o["trainer"]["plugins"] if p["class_path"].endswith(".SLURMEnvironment")]
    assert [p["init_args"]["auto_requeue"] for p in plugins] == [False]  # PreemptionCheckpoint requeues instead
    args = [a for c in configs for a in ("--config", str(RECIPES.parent / c))]
    cli = NaasCLI(args=[*args, "--trainer.accelerator", "cpu"], run=False)  # no GPUs here; nodes/devices as given
    _check_recipe_objects(cli)
    trainer = cli.trainer
    assert (trainer.num_nodes, trainer.num_devices, trainer.world_size) == (nodes, per_node, nodes * per_node)
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
    assert "requeue" in options
    signal_name, _, seconds = options["signal"].removeprefix("B:").partition("@")
    assert not options["signal"].startswith("B:"), "the signal must reach the srun tasks, not only the batch shell"
    assert int(seconds) > 0
    preemption = [c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)]
    assert [c.signal for c in preemption] == [signal.Signals[f"SIG{signal_name.removeprefix('SIG')}"].name]
    assert environment.requeue_signal.name == preemption[0].signal
