"""Thread defaults of ``naas-train``: passive OpenMP waiting, each rank its share of the cores, the user's
settings win; applied before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from naas_train.threads import processes_per_node, thread_defaults


@pytest.mark.parametrize("environ, expected", [
    ({}, 1),
    ({"LOCAL_WORLD_SIZE": "4"}, 4),
    ({"SLURM_NTASKS_PER_NODE": "2(x3)"}, 2),
    ({"SLURM_NTASKS_PER_NODE": "8"}, 8),
    ({"SLURM_NTASKS_PER_NODE": "garbage"}, 1),
])
def test_processes_per_node_reads_the_launcher(environ, expected):
    assert processes_per_node(environ) == expected


def test_each_rank_takes_its_share_and_the_user_wins():
    assert thread_defaults({}, 16) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_defaults({"SLURM_NTASKS_PER_NODE": "4"}, 10) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}
    assert thread_defaults({"LOCAL_WORLD_SIZE": "8"}, 4)["OMP_NUM_THREADS"] == "1"  # never 0
    user = {"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    assert thread_defaults(user, 16) == {}


def test_console_script_sets_threads_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["LOCAL_WORLD_SIZE"] = "2"
    code = ("import sys; from naas_train.entry import apply_thread_defaults; assert 'torch' not in sys.modules; "
            "apply_thread_defaults(); import torch; "
            "import os; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    threads, policy = out.stdout.split()
    assert int(threads) == max(1, len(os.sched_getaffinity(0)) // 2) and policy == "PASSIVE"
