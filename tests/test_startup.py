"""Start-up of ``naas-hw`` (issue "Search v2", item 7): the ``--layer`` paths of ``evaluate`` and ``cosearch``
import no torch / torchvision / onnx / matplotlib / pydantic / ``scipy.linalg``, a second process loads numba's
kernels from the on-disk cache instead of compiling them, and the start-up measures (OpenMP wait policy, numba's
BLAS probe, lazy pydantic models) leave nothing behind. (That the AOT kernels spare these commands numba
altogether is ``tests/test_jit.py``'s.) Each check runs in a fresh interpreter: ``sys.modules`` of
the test process says nothing about what a command imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hwmodel.jit import AOT_ENV

ROOT = Path(__file__).resolve().parents[1]
CONV = "K=64,C=64,P=56,Q=56,R=3,S=3"
#: Imported only for --model / --onnx workloads, plots (cosearch --out), or accelerator / mapping files.
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "timm", "matplotlib", "pydantic",
         "scipy.linalg", "sklearn", "pandas", "wandb", "lightning", "pytorch_lightning")

#: Runs ``hwmodel.cli.main(argv)`` (stdout kept apart), then reports what the process imported and how numba's
#: cache=True kernels were loaded (dispatchers of every hwmodel module: overloads from the cache / compiled).
PROBE = r"""
import contextlib, io, json, sys
import hwmodel.cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = hwmodel.cli.main(json.loads(sys.argv[1]))
from hwmodel.jit import Kernel
hits = misses = 0
for name, mod in list(sys.modules.items()):
    if name.startswith("hwmodel") and mod is not None:
        for obj in vars(mod).values():
            if isinstance(obj, Kernel) and obj.compiled is not None and obj.compiled._cache is not None:
                hits += sum(obj.compiled.stats.cache_hits.values())
                misses += sum(obj.compiled.stats.cache_misses.values())
modules = sorted(m for m in sys.modules if m)
blas_ok = True
try:  # numba's BLAS probe was skipped, not scipy broken for the rest of the process
    import scipy.linalg.cython_blas  # noqa: F401
except ImportError:
    blas_ok = "scipy" not in sys.modules
print(json.dumps({"rc": rc, "stdout": out.getvalue(), "modules": modules,
                  "hits": hits, "misses": misses, "blas_ok": blas_ok}))
"""


def probe(*argv: str, aot: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env[AOT_ENV] = "1" if aot else "0"
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(argv))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, proc.stderr[-3000:]
    return result


def heavy_imports(result: dict) -> list[str]:
    modules = set(result["modules"])
    return [m for m in HEAVY if m in modules]


@pytest.fixture(scope="module")
def evaluate_runs() -> list[dict]:
    """``evaluate --layer --search`` on numba's JIT (the AOT kernels off) twice: the first process may compile (a
    cold numba cache), the second not."""
    argv = ("evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--search", "--mapping-budget", "64", "--json")
    return [probe(*argv, aot=False) for _ in range(2)]


def test_evaluate_layer_imports_nothing_heavy(evaluate_runs):
    result = evaluate_runs[-1]
    assert heavy_imports(result) == []
    report = json.loads(result["stdout"])
    assert report["layers"][0]["dims"]["K"] == 64
    assert result["blas_ok"]


def test_evaluate_template_path_imports_nothing_heavy():
    result = probe("evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--json")
    assert heavy_imports(result) == []
    assert json.loads(result["stdout"])["total"]["macs"] > 0


def test_second_process_loads_kernels_from_cache(evaluate_runs):
    """numba's ``cache=True`` kernels: a warm process finds every overload it needs on disk (no compiling)."""
    warm = evaluate_runs[-1]
    assert warm["hits"] > 0
    assert warm["misses"] == 0


def test_cosearch_layer_imports_nothing_heavy():
    result = probe("cosearch", "--layer", "K=16,C=16,P=8,Q=8,R=3,S=3", "--budget", "eyeriss", "--generations", "1",
                   "--mapping-budget", "8", "--final-mapping-budget", "8", "--no-progress", "--json")
    assert heavy_imports(result) == []
    assert "naas" in json.loads(result["stdout"])
    assert result["blas_ok"]


def test_import_hwmodel_is_cheap():
    code = ("import sys, json, hwmodel, hwmodel.cli; "
            "print(json.dumps(sorted(m for m in sys.modules if m)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = set(json.loads(proc.stdout))
    assert [m for m in HEAVY if m in modules] == []


def test_spec_models_still_resolve_and_validate(tmp_path):
    """The pydantic models moved to hwmodel.specs (loaded on first validation); the old names still work."""
    import hwmodel.accelerator as acc_mod
    import hwmodel.mapping as map_mod
    from hwmodel import specs
    from hwmodel.loading import load_accelerator

    assert acc_mod.AcceleratorSpec is specs.AcceleratorSpec
    assert acc_mod.L1PartitionSpec is specs.L1PartitionSpec
    assert map_mod.MappingSpec is specs.MappingSpec
    with pytest.raises(AttributeError):
        acc_mod.NoSuchSpec  # noqa: B018
    spec = {"name": "tiny", "array": [4, 4], "connectivity": [["C"], ["K"]], "l1_partition": [2, 2, 2],
            "l2_bytes": 4096, "noc_bandwidth": 8, "dram_bandwidth": 4}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    assert load_accelerator(str(path)).l1_words == 6
    path.write_text(json.dumps({**spec, "l2_bytes": "4096"}))
    with pytest.raises(ValueError, match="l2_bytes: must be an integer"):
        load_accelerator(str(path))


def test_main_sets_and_restores_omp_wait_policy(monkeypatch):
    from hwmodel import cli

    seen = []
    monkeypatch.setattr(cli, "_main", lambda argv: seen.append(os.environ.get("OMP_WAIT_POLICY")) or 0)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert cli.main(["presets"]) == 0
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice wins and stays
    assert cli.main(["presets"]) == 0
    assert seen == [cli.OMP_WAIT_POLICY, "ACTIVE"]
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
