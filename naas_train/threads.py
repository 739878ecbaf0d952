"""Thread settings that share a machine, applied before torch loads (``naas-train``'s entry point).

- **Each rank its share of the cores** (torchrun's rule, with the cores this process may run on — the CPU
  affinity SLURM or a container sets — instead of the machine's count): when a launcher starts several processes
  per node (``LOCAL_WORLD_SIZE`` from torchrun, ``SLURM_NTASKS_PER_NODE`` from ``srun``), each gets
  ``available cores // processes per node`` intra-op threads. Lightning's own launcher applies the same rule to the
  ranks it starts. Data-loader workers run one thread each (torch sets that in every worker).
- **Only the free cores on a busy machine**: a lone process first samples how busy its cores are
  (``/proc/stat``, :data:`SAMPLE_SECONDS`, and the 1-minute load average: the load must be sustained); when other
  processes keep cores busy it takes only the free ones and
  waits passively (``OMP_WAIT_POLICY=PASSIVE``). Otherwise OpenMP threads spin-wait at every parallel region for a
  thread whose core another process holds, and throughput collapses; on a quiet machine passive waiting costs
  up to 1.7x (the digits pipeline's fit; BENCHMARKS.md, "threads"), so it is not set there.

A variable the user set always wins.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping

#: Environment variables naming the processes per node, by launcher: torchrun, SLURM srun.
LOCAL_PROCESS_VARIABLES = ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE")
#: Seconds over which a lone process samples how busy its cores are before choosing its threads.
SAMPLE_SECONDS = 0.3
#: Busy cores (other processes' load) from which a lone process counts a core as taken.
TAKEN_CORE = 0.5
#: ``/proc/stat`` columns of idle time (idle, iowait) among user nice system idle iowait irq softirq steal.
IDLE_COLUMNS = (3, 4)


def processes_per_node(environ: Mapping[str, str]) -> int:
    """Processes a launcher starts on this node (1 when none says so). SLURM writes e.g. ``2(x3)``: 2 per node
    on 3 nodes."""
    for name in LOCAL_PROCESS_VARIABLES:
        value = environ.get(name, "").split("(")[0].split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def thread_defaults(environ: Mapping[str, str], available_cores: int, busy_cores: float = 0.0) -> dict[str, str]:
    """The variables to set (those the user did not) before torch loads. ``busy_cores``: cores that other
    processes keep busy (only consulted for a lone process: ranks of one launch load each other's cores)."""
    defaults: dict[str, str] = {}
    local = processes_per_node(environ)
    if local > 1:
        defaults["OMP_NUM_THREADS"] = str(max(1, available_cores // local))
    elif busy_cores >= TAKEN_CORE:
        defaults["OMP_NUM_THREADS"] = str(max(1, available_cores - round(busy_cores)))
        defaults["OMP_WAIT_POLICY"] = "PASSIVE"
    return {k: v for k, v in defaults.items() if k not in environ}


def available_cores() -> list[int]:
    """The cores this process may run on (its CPU affinity), else all of the machine's."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def _core_times(cores: Iterable[int]) -> tuple[int, int]:
    """``(busy, total)`` jiffies of ``cores`` from ``/proc/stat``."""
    wanted = {f"cpu{c}" for c in cores}
    busy = total = 0
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields and fields[0] in wanted:
                ticks = [int(v) for v in fields[1:9]]
                total += sum(ticks)
                busy += sum(ticks) - sum(ticks[i] for i in IDLE_COLUMNS)
    return busy, total


def busy_cores(cores: list[int], seconds: float = SAMPLE_SECONDS) -> float:
    """Cores of ``cores`` kept busy by other processes over ``seconds`` (this process sleeps meanwhile);
    0 where ``/proc/stat`` cannot be read."""
    try:
        busy0, total0 = _core_times(cores)
        time.sleep(seconds)
        busy1, total1 = _core_times(cores)
    except (OSError, ValueError):
        return 0.0
    return len(cores) * (busy1 - busy0) / max(1, total1 - total0)


def sustained_busy_cores(cores: list[int]) -> float:
    """Busy cores both now (:func:`busy_cores`) and over the last minute (the 1-minute load average): a job that
    just ended (e.g. a finished run's wandb service) or one that merely starts does not make the machine busy."""
    return min(busy_cores(cores), os.getloadavg()[0])


def apply_thread_defaults() -> dict[str, str]:
    """Set :func:`thread_defaults` in ``os.environ``; returns what was set. Call before importing torch."""
    cores = available_cores()
    alone = processes_per_node(os.environ) == 1 and "LOCAL_RANK" not in os.environ  # not a rank Lightning started
    sample = alone and "OMP_NUM_THREADS" not in os.environ  # the user chose the threads: nothing to decide
    chosen = thread_defaults(os.environ, len(cores), sustained_busy_cores(cores) if sample else 0.0)
    os.environ.update(chosen)
    return chosen
