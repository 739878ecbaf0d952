"""SLURM for real: a one-machine cluster (scripts/slurm_local.sh) runs the digits pipeline as 2 tasks (gloo DDP) through
scripts/slurm_pipeline.sh. One job is preempted mid-fit (``scancel --signal=USR1``): it saves ``hpc_ckpt_<step>.ckpt``,
requeues itself, and the requeued run resumes from that checkpoint and ends with the bundle of an uninterrupted job.

Slow, and it starts daemons as root: it runs only with ``NAAS_SLURM=1`` (``.ci/run`` sets it), as root, with
slurm-wlm installed or apt-get to install it; otherwise it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from test_pipeline import recipe

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TASKS = 2
STEPS = 2 * 6  # two epochs of limit_train_batches=6
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
#: Reasons a pending job never starts on this cluster (its request exceeds the node or partition).
NEVER = {"PartitionConfig", "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit"}


def slurm_recipe(root: Path) -> dict:
    """test_pipeline's digits pipeline as 2 srun tasks: DDP over gloo, SLURMEnvironment, a checkpoint every step."""
    r = recipe(root)
    r["trainer"].update(
        devices=TASKS, num_nodes=1,
        strategy={"class_path": "pytorch_lightning.strategies.DDPStrategy",
                  "init_args": {"process_group_backend": "gloo", "find_unused_parameters": True}},
        plugins=[{"class_path": "lightning_fabric.plugins.environments.SLURMEnvironment",
                  "init_args": {"auto_requeue": False}}])
    r["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = 1
    return r


def free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld, slurmd)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two adjacent free ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request) -> dict[str, str]:
    """A private one-node cluster (own folder, munge key and ports); stopped after the module's tests."""
    if os.environ.get("NAAS_SLURM") != "1":
        pytest.skip("set NAAS_SLURM=1 to start a one-machine SLURM cluster (scripts/slurm_local.sh) for this test")
    if os.geteuid() != 0:
        pytest.skip("the one-machine SLURM cluster runs its daemons as root; run as root")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "NAAS_SLURM_DIR": str(folder / "cluster"), "NAAS_SLURM_PORT": str(free_port_pair()),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONFAULTHANDLER": "1"}
    script = ["bash", str(REPO / "scripts" / "slurm_local.sh")]
    request.addfinalizer(lambda: subprocess.run([*script, "stop"], env=env, capture_output=True, timeout=120))
    started = subprocess.run([*script, "start"], env=env, capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, started.stdout + started.stderr
    env["SLURM_CONF"] = str(folder / "cluster" / "slurm.conf")
    return env


def submit(env: dict[str, str], config: Path, run: Path) -> str:
    """``sbatch scripts/slurm_pipeline.sh`` with 2 tasks on the CPU node; returns the job id."""
    out = subprocess.run(
        ["sbatch", "--parsable", "--nodes=1", f"--ntasks-per-node={TASKS}", "--cpus-per-task=1", "--gpus-per-node=0",
         f"--output={run}.out", f"--job-name={run.name}", str(REPO / "scripts" / "slurm_pipeline.sh"),
         "--finetune_epochs", "1", "--trainer.default_root_dir", str(run)],
        env={**env, "NAAS_CONFIGS": str(config)}, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def job(env: dict[str, str], job_id: str) -> dict[str, str]:
    """``scontrol show job``'s fields."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait(env: dict[str, str], job_id: str, log: Path, until, timeout: float) -> dict[str, str]:
    """Poll the job until ``until(fields)``; fails when it ends first, cannot start, or ``timeout`` passes (then
    its tasks get SIGABRT, so faulthandler writes every thread's Python stack to the job log shown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = job(env, job_id)
        if until(info):
            return info
        assert info["JobState"] not in FINAL, f"job {job_id} ended {info['JobState']}:\n{_tail(log)}"
        assert info.get("Reason") not in NEVER, f"job {job_id} cannot start: {info['Reason']} ({info})"
        time.sleep(0.2)
    state = job(env, job_id)["JobState"]
    subprocess.run(["scancel", "--signal=ABRT", job_id], env=env, capture_output=True, timeout=60)
    time.sleep(5)
    raise AssertionError(f"job {job_id} timed out after {timeout:.0f} s ({state}); stacks at SIGABRT:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text()[-6000:] if log.exists() else f"(no {log})"


def weights(bundle: Path) -> dict[str, torch.Tensor]:
    return load_file(bundle / "weights.safetensors")


def metrics(run: Path) -> dict:
    """The bundle's metrics.json with the run folder's path replaced (the two jobs run in different folders)."""
    return json.loads((run / "bundle" / "metrics.json").read_text().replace(str(run), "<run>"))


def test_preempted_pipeline_requeues_resumes_and_equals_an_uninterrupted_job(cluster, tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(slurm_recipe(tmp_path / "recipe-default")))
    preempted, reference = tmp_path / "preempted", tmp_path / "reference"
    first = submit(cluster, config, preempted)
    second = submit(cluster, config, reference)  # runs while the preempted job waits to be requeued
    log = Path(f"{preempted}.out")

    last = preempted / "checkpoints" / "last.ckpt"
    wait(cluster, first, log, lambda info: last.exists(), timeout=240)
    subprocess.run(["scancel", "--signal=USR1", first], env=cluster, check=True, timeout=60)
    wait(cluster, first, log, lambda info: info["Restarts"] == "1", timeout=120)  # requeued by the callback
    ref = wait(cluster, second, Path(f"{reference}.out"), lambda info: info["JobState"] in FINAL, timeout=300)
    assert (ref["JobState"], ref["Restarts"]) == ("COMPLETED", "0"), _tail(Path(f"{reference}.out"))
    done = wait(cluster, first, log, lambda info: info["JobState"] in FINAL, timeout=300)
    assert (done["JobState"], done["ExitCode"], done["Restarts"]) == ("COMPLETED", "0:0", "1"), _tail(log)

    text = log.read_text()
    saved = re.search(r"PreemptionCheckpoint: SIGUSR1 received; saved (\S+) at step (\d+)", text)
    assert saved, _tail(log)
    hpc, step = Path(saved[1]), int(saved[2])
    assert hpc == preempted / f"hpc_ckpt_{step}.ckpt" and hpc.is_file() and 0 < step < STEPS
    assert f"requeued SLURM job {first}" in text
    assert text.count("slurm_pipeline.sh: job") == 2 and f"job {first} start 1" in text
    assert f"resuming from the newest checkpoint, {hpc}" in text  # not the older last.ckpt
    assert text.count("bundle written to") == 1  # the preempted run ran no step after fit

    assert torch.load(preempted / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == STEPS
    a, b = weights(preempted / "bundle"), weights(reference / "bundle")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ours, theirs = metrics(preempted), metrics(reference)
    assert ours == theirs, _differences(ours, theirs)


def _differences(a: dict, b: dict, at: str = "") -> list[str]:
    """Paths of the leaves where two JSON objects differ, with both values."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [f"{at or '.'}: {a!r} != {b!r}"]
    return [d for k in sorted(a.keys() | b.keys()) for d in _differences(a.get(k), b.get(k), f"{at}.{k}")]
