"""Thread defaults of ``naas-train``: each rank its share of the cores, only the free cores (and passive waiting)
for a lone process on a busy machine, the user's settings win; applied before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from naas_train.threads import available_cores, busy_cores, processes_per_node, thread_defaults


@pytest.mark.parametrize("environ, expected", [
    ({}, 1),
    ({"LOCAL_WORLD_SIZE": "4"}, 4),
    ({"SLURM_NTASKS_PER_NODE": "2(x3)"}, 2),
    ({"SLURM_NTASKS_PER_NODE": "8"}, 8),
    ({"SLURM_NTASKS_PER_NODE": "garbage"}, 1),
])
def test_processes_per_node_reads_the_launcher(environ, expected):
    assert processes_per_node(environ) == expected


def test_each_rank_takes_its_share_and_a_lone_process_the_free_cores():
    assert thread_defaults({}, 16) == {}  # quiet machine: torch's defaults (active waiting is faster there)
    assert thread_defaults({"SLURM_NTASKS_PER_NODE": "4"}, 10) == {"OMP_NUM_THREADS": "2"}
    assert thread_defaults({"LOCAL_WORLD_SIZE": "8"}, 4)["OMP_NUM_THREADS"] == "1"  # never 0
    assert thread_defaults({}, 2, busy_cores=1.0) == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_defaults({}, 16, busy_cores=5.6) == {"OMP_NUM_THREADS": "10", "OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_defaults({}, 2, busy_cores=0.2) == {}
    assert thread_defaults({}, 2, busy_cores=7.0)["OMP_NUM_THREADS"] == "1"
    user = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    assert thread_defaults({**user, "LOCAL_WORLD_SIZE": "2"}, 16) == {}
    assert thread_defaults(user, 2, busy_cores=1.0) == {}


def test_busy_cores_sees_a_competing_process():
    cores = available_cores()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert busy_cores(cores, seconds=0.5) >= 0.7  # one core held (the rest of the machine may add to it)
    finally:
        hog.kill()
        hog.wait()


def test_console_script_sets_threads_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["LOCAL_WORLD_SIZE"] = "2"
    code = ("import sys; from naas_train.entry import apply_thread_defaults; assert 'torch' not in sys.modules; "
            "apply_thread_defaults(); import torch; print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert int(out.stdout) == max(1, len(available_cores()) // 2)
