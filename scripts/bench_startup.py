#!/usr/bin/env python
"""Whole-process time to the best mapping of one layer: ``naas-hw evaluate --search`` against ZigZag's LOMA mapper.

Both tools run as fresh processes, ``--repeats`` times each, alternating, after one untimed warm-up run each (our
numba kernels then load from their on-disk cache, both tools' bytecode is compiled); the table gives the median and
the best wall-clock time from process start to exit, the best mapping's reported latency / energy, and the ratio
ZigZag / ours. ZigZag is pip-installed into its own virtual environment (``--zigzag-venv``, created when missing:
``pip install zigzag-dse==3.9.1``; where the index lacks that version, the newest 3.9.x; ZigZag 3.9.1 imports
``six`` without declaring it, so ``six`` is installed too).

    .venv/bin/python scripts/bench_startup.py [--repeats 3] [--zigzag-venv /work/zigzag-venv]
        [--layer K=64,C=64,P=56,Q=56,R=3,S=3] [--array 32x32]

The default layer is ResNet-50's res2a_branch2b (3x3, K=C=64, 56x56 outputs, stride 1, padding 1, so a 58x58
input); the array is a 32x32 weight-stationary systolic array.

* ours: ``naas-hw evaluate --layer SPEC --accelerator systolic:RxC --search --json`` (the console script of the
  venv running this script), default search budget (2000 evaluations + polish; the templates are evaluated too).
  It searches the spatial unroll as well as the tiling / loop orders of DRAM, L2 and the PE. Two rows: with the
  ahead-of-time compiled kernels (``python -m hwmodel.aot_build``, built by ``scripts/setup.sh``; required), which
  spare the process numba, and with ``NAAS_HW_AOT=0``, numba's JIT loading its cached kernels. Both must find the
  same mapping.
* ZigZag: ``zigzag.api.get_hardware_performance_zigzag(workload, accelerator, mapping, opt="EDP")`` with its
  defaults (LOMA temporal mapper, ``lpf_limit=6``, uneven mappings) and its default pipeline, which also writes its
  JSON / pickle results and a memory-hierarchy plot (into a temporary folder). The inputs are written by this
  script: the layer as a ZigZag workload YAML, and an accelerator YAML modelled on ZigZag's bundled
  ``tpu_like.yaml`` (a 32x32 weight-stationary systolic array), resized to our ``systolic:RxC`` preset.

Differences that remain (the numbers of latency and energy are therefore not comparable, only the times):

* spatial mapping: ZigZag's is fixed, as in its ``tpu_like`` example (K on one axis, C on the other); ours is
  searched (C/R/S/P/Q on rows, K/P/Q on columns);
* memories: ZigZag gets a per-PE weight register of our L1's size (``l1_words`` words), a one-word per-PE
  partial-sum register, a shared SRAM of our L2's size holding all three operands, and DRAM; ours has one
  ``l1_words``-entry L1 per PE shared by the three tensors (systolic forwarding of inputs / partial sums), the L2
  and DRAM. Port bandwidths are ours (NoC words/cycle for the SRAM, DRAM words/cycle) at 16-bit words;
* precision: 16-bit weights / inputs, 32-bit partial sums, 16-bit outputs in both;
* energy per access: ZigZag's ``tpu_like`` numbers vs. our ``accelergy45`` table; ZigZag's latency includes its
  memory stall model, ours is max(compute, bandwidth-bound) cycles.

Run on a shared machine the times include whatever else it runs: the load average before and after is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = "/work/zigzag-venv"
ZIGZAG_VERSION = "3.9.1"
DEFAULT_LAYER = "K=64,C=64,P=56,Q=56,R=3,S=3"
LAYER_NAME = "res2a_branch2b"

#: Run inside ZigZag's venv: one layer, best mapping by EDP; prints the figures as one JSON line.
ZIGZAG_RUNNER = r"""
import json, logging, sys, time
t0 = time.perf_counter()
from zigzag.api import get_hardware_performance_zigzag
t1 = time.perf_counter()
workload, accelerator, mapping, out = sys.argv[1:5]
energy, latency, cmes = get_hardware_performance_zigzag(
    workload, accelerator, mapping, opt="EDP", dump_folder=out, loma_show_progress_bar=False)
t2 = time.perf_counter()
print(json.dumps({"energy_pj": float(energy), "cycles": float(latency), "import_s": t1 - t0, "run_s": t2 - t1}))
"""


def parse_layer(spec: str) -> dict[str, int]:
    dims = {"N": 1, "K": 1, "C": 1, "P": 1, "Q": 1, "R": 1, "S": 1, "stride": 1}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        if key not in dims or not re.fullmatch(r"[0-9]+", value):
            raise SystemExit(f"--layer: expected N,K,C,P,Q,R,S,stride=INT, got {part!r}")
        dims[key] = int(value)
    return dims


def zigzag_workload(d: dict[str, int]) -> str:
    s = d["stride"]
    return f"""- id: 0
  name: {LAYER_NAME}
  operator_type: Conv
  equation: O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]
  dimension_relations: [ix={s}*ox+1*fx, iy={s}*oy+1*fy]
  loop_dims: [B, K, C, OY, OX, FY, FX]
  loop_sizes: [{d["N"]}, {d["K"]}, {d["C"]}, {d["P"]}, {d["Q"]}, {d["R"]}, {d["S"]}]
  operand_precision:
    W: 16
    I: 16
    O: 32
    O_final: 16
  operand_source:
    I: 0
    W: 0
"""


def _ports(reads: list[str], writes: list[str], bits: int) -> str:
    def alloc(items: list[str]) -> str:
        return "".join(f"\n          - {a}" for a in items)

    return f"""    ports:
      - name: r_port_1
        type: read
        bandwidth_min: {bits}
        bandwidth_max: {bits}
        allocation:{alloc(reads)}
      - name: w_port_1
        type: write
        bandwidth_min: {bits}
        bandwidth_max: {bits}
        allocation:{alloc(writes)}
"""


def zigzag_accelerator(rows: int, cols: int, accel: dict) -> str:
    """ZigZag's ``tpu_like.yaml`` resized to our systolic preset (see the module docstring)."""
    word, psum = accel["word_bits"], accel["psum_bits"]
    sram_bits = int(accel["noc_bandwidth"] * word)
    dram_bits = int(accel["dram_bandwidth"] * word)
    return f"""name: systolic_{rows}x{cols}_ws

memories:
  rf_weights:
    size: {accel["l1_words"] * word}
    r_cost: 0.095
    w_cost: 0.095
    area: 0
    latency: 1
    operands: [I2]
{_ports(["I2, tl"], ["I2, fh"], word)}    served_dimensions: []

  rf_psum:
    size: {psum}
    r_cost: 0.021
    w_cost: 0.021
    area: 0
    latency: 1
    operands: [O]
{_ports(["O, tl", "O, th"], ["O, fh", "O, fl"], psum)}    served_dimensions: []

  sram:
    size: {accel["l2_bytes"] * 8}
    r_cost: 416.16
    w_cost: 378.4
    area: 0
    latency: 1
    operands: [I1, I2, O]
{_ports(["I1, tl", "I2, tl", "O, tl", "O, th"], ["I1, fh", "I2, fh", "O, fh", "O, fl"], sram_bits)}    served_dimensions: [D1, D2]

  dram:
    size: 10000000000
    r_cost: 700
    w_cost: 750
    area: 0
    latency: 1
    operands: [I1, I2, O]
    ports:
      - name: rw_port_1
        type: read_write
        bandwidth_min: {dram_bits}
        bandwidth_max: {dram_bits}
        allocation:
          - I1, fh
          - I1, tl
          - I2, fh
          - I2, tl
          - O, fh
          - O, tl
          - O, fl
          - O, th
    served_dimensions: [D1, D2]

operational_array:
  unit_energy: 0.04
  unit_area: 1
  dimensions: [D1, D2]
  sizes: [{cols}, {rows}]
  systolic_dimensions: [D1, D2]
"""


def zigzag_mapping(rows: int, cols: int) -> str:
    return f"""- name: default
  spatial_mapping:
    D1:
      - K, {cols}
    D2:
      - C, {rows}
  memory_operand_links:
    O: O
    W: I2
    I: I1
"""


def ensure_zigzag(venv: Path) -> tuple[Path, str]:
    """The venv's python and the installed zigzag-dse version (creating the venv / installing when needed)."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    version = installed_version(python)
    if version is None:
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        print(f"pip install zigzag-dse=={ZIGZAG_VERSION} six ...", file=sys.stderr)
        if subprocess.run([*pip, f"zigzag-dse=={ZIGZAG_VERSION}", "six"], check=False).returncode != 0:
            print(f"zigzag-dse {ZIGZAG_VERSION} not installable; taking the newest 3.9.x", file=sys.stderr)
            subprocess.run([*pip, "zigzag-dse>=3.9,<3.10", "six"], check=True)
        version = installed_version(python)
        if version is None:
            raise SystemExit(f"zigzag-dse did not install into {venv}")
    elif subprocess.run([str(python), "-c", "import six"], capture_output=True, check=False).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "six"],
                       check=True)
    return python, version


def installed_version(python: Path) -> str | None:
    proc = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('zigzag-dse'))"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def naas_hw_command() -> list[str]:
    script = Path(sys.executable).with_name("naas-hw")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hwmodel.cli"]


def timed(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each tool (default 3)")
    ap.add_argument("--zigzag-venv", default=DEFAULT_VENV, help=f"ZigZag's virtual environment (default {DEFAULT_VENV})")
    ap.add_argument("--layer", default=DEFAULT_LAYER, help=f"N,K,C,P,Q,R,S,stride (default {DEFAULT_LAYER})")
    ap.add_argument("--array", default="32x32", help="systolic array ROWSxCOLS (default 32x32)")
    ap.add_argument("--keep", metavar="DIR", help="write ZigZag's inputs and outputs here instead of a temp folder")
    args = ap.parse_args()
    m = re.fullmatch(r"([0-9]+)x([0-9]+)", args.array)
    if not m or args.repeats < 1:
        raise SystemExit("--array must be ROWSxCOLS and --repeats >= 1")
    rows, cols = int(m[1]), int(m[2])
    dims = parse_layer(args.layer)
    zz_python, zz_version = ensure_zigzag(Path(args.zigzag_venv))

    sys.path.insert(0, str(ROOT))
    from hwmodel.jit import AOT_ENV, aot_module
    from hwmodel.loading import load_accelerator
    from hwmodel.version import __version__

    if aot_module() is None:
        raise SystemExit("hwmodel's AOT kernels are missing or stale: run `python -m hwmodel.aot_build` "
                         "(scripts/setup.sh does), or unset NAAS_HW_AOT")

    accel = load_accelerator(f"systolic:{rows}x{cols}").to_dict()
    our_version = __version__

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "workload.yaml").write_text(zigzag_workload(dims))
    (work / "accelerator.yaml").write_text(zigzag_accelerator(rows, cols, accel))
    (work / "mapping.yaml").write_text(zigzag_mapping(rows, cols))
    (work / "run_zigzag.py").write_text(ZIGZAG_RUNNER)

    ours_cmd = [*naas_hw_command(), "evaluate", "--layer", args.layer, "--accelerator", f"systolic:{rows}x{cols}",
                "--search", "--json"]

    def zigzag_cmd(i: int) -> list[str]:
        out = work / f"zigzag-out-{i}"
        shutil.rmtree(out, ignore_errors=True)
        return [str(zz_python), str(work / "run_zigzag.py"), str(work / "workload.yaml"),
                str(work / "accelerator.yaml"), str(work / "mapping.yaml"), str(out)]

    env = {k: v for k, v in os.environ.items() if k != AOT_ENV}
    #: our two rows: the AOT kernels (no numba imported), and numba's JIT loading its cached kernels
    ours_env = {"ours": {}, "ours_jit": {AOT_ENV: "0"}}
    # warm-up, untimed: numba loads (or compiles, once) its kernels; with PYTHONDONTWRITEBYTECODE unset the
    # checkout's modules get the .pyc an installed package has (pip compiled ZigZag's at install)
    warm_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    load_before = loadavg()
    print(f"warm-up (load {load_before}) ...", file=sys.stderr)
    for extra in ours_env.values():
        timed(ours_cmd, {**warm_env, **extra}, cwd=str(work))
    timed(zigzag_cmd(0), warm_env, cwd=str(work))

    times: dict[str, list[float]] = {"ours": [], "ours_jit": [], "zigzag": []}
    figures: dict[str, dict] = {}
    for i in range(1, args.repeats + 1):
        for key, extra in ours_env.items():
            wall, out = timed(ours_cmd, {**env, **extra}, cwd=str(work))
            times[key].append(wall)
            total = json.loads(out)["total"]
            figures[key] = {"cycles": total["cycles"], "energy_pj": total["energy_pj"]}
        wall, out = timed(zigzag_cmd(i), env, cwd=str(work))
        times["zigzag"].append(wall)
        figures["zigzag"] = json.loads(out.strip().splitlines()[-1])
        print(f"run {i}: ours {times['ours'][-1]:.2f} s (JIT {times['ours_jit'][-1]:.2f} s), "
              f"zigzag {times['zigzag'][-1]:.2f} s", file=sys.stderr)
    if figures["ours"] != figures["ours_jit"]:
        raise SystemExit(f"AOT and JIT runs found different mappings: {figures['ours']} vs {figures['ours_jit']}")
    load_after = loadavg()

    layer_txt = f"{LAYER_NAME if args.layer == DEFAULT_LAYER else 'layer'} ({args.layer})"
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| tool | version | layer | array | wall s (median) | wall s (min) | best mapping: cycles | "
          "energy [pJ] | ZigZag / this |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for key, tool, version in (("zigzag", "ZigZag (LOMA, opt=EDP)", zz_version),
                               ("ours_jit", f"naas-hw evaluate --search, numba JIT ({AOT_ENV}=0)", our_version),
                               ("ours", "naas-hw evaluate --search, AOT kernels", our_version)):
        f = figures[key]
        print(f"| {tool} | {version} | {layer_txt} | {rows}x{cols} WS systolic | {med[key]:.2f} | "
              f"{min(times[key]):.2f} | {f['cycles']:,.0f} | {f['energy_pj']:.4g} | "
              f"{med['zigzag'] / med[key]:.1f}x |")
    zz = figures["zigzag"]
    print(f"\nZigZag inside its process: import {zz['import_s']:.2f} s, search + outputs {zz['run_s']:.2f} s "
          f"(last run). {args.repeats} timed runs each, alternating; load average {load_before} before, "
          f"{load_after} after, on {os.cpu_count()} CPUs. Latency / energy use different memory and energy models "
          "(see the docstring): compare the times only.")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
