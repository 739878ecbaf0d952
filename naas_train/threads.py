"""Thread settings that share a machine, applied before torch loads (``naas-train``'s entry point).

- **Passive OpenMP waiting** (``OMP_WAIT_POLICY=PASSIVE``): an idle OpenMP thread sleeps instead of spinning.
  With the default (active) policy a rank's threads spin-wait at every parallel region's barrier for a thread whose
  core another process holds, and throughput collapses on a busy machine (BENCHMARKS.md, "threads").
- **Each rank its share of the cores** (torchrun's rule, with the cores this process may run on — the CPU
  affinity SLURM or a container sets — instead of the machine's count): when a launcher starts several processes
  per node (``LOCAL_WORLD_SIZE`` from torchrun, ``SLURM_NTASKS_PER_NODE`` from ``srun``), each gets
  ``available cores // processes per node`` intra-op threads. Lightning's own launcher applies the same rule to the
  ranks it starts. Data-loader workers run one thread each (torch sets that in every worker).

A variable the user set always wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Environment variables naming the processes per node, by launcher: torchrun, SLURM srun.
LOCAL_PROCESS_VARIABLES = ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE")


def processes_per_node(environ: Mapping[str, str]) -> int:
    """Processes a launcher starts on this node (1 when none says so). SLURM writes e.g. ``2(x3)``: 2 per node
    on 3 nodes."""
    for name in LOCAL_PROCESS_VARIABLES:
        value = environ.get(name, "").split("(")[0].split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def thread_defaults(environ: Mapping[str, str], available_cores: int) -> dict[str, str]:
    """The variables to set (those the user did not) before torch loads."""
    defaults = {"OMP_WAIT_POLICY": "PASSIVE"}
    local = processes_per_node(environ)
    if local > 1:
        defaults["OMP_NUM_THREADS"] = str(max(1, available_cores // local))
    return {k: v for k, v in defaults.items() if k not in environ}


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def apply_thread_defaults() -> dict[str, str]:
    """Set :func:`thread_defaults` in ``os.environ``; returns what was set. Call before importing torch."""
    chosen = thread_defaults(os.environ, available_cores())
    os.environ.update(chosen)
    return chosen
