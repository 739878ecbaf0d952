"""hwmodel.jit: kernels load on first call; the ahead-of-time compiled ones (``python -m hwmodel.aot_build``, run by
``scripts/setup.sh``) give numba's JIT results bit for bit, are used only for exactly the declared argument types,
and keep ``naas-hw evaluate --layer ... --search`` free of numba (issue "Search v2", item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel import jit, search
from hwmodel import nestkernel as nk
from hwmodel import tiling_kernel as tk
from hwmodel.aot_build import aot_kernels
from hwmodel.family import family_params
from hwmodel.nestmodel import layer_params
from hwmodel.objectives import get_objective
from hwmodel.precision import resolve_precision

ROOT = Path(__file__).resolve().parents[1]
#: Layers x presets the bit-for-bit check decodes random genomes for: padded 3x3, 7x7 stride 2, dilated,
#: depthwise, 1x1, a fully connected layer; a row-stationary, a systolic and an NVDLA-like design.
CASES = [
    (hw.Layer(K=64, C=64, P=56, Q=56, R=3, S=3), "eyeriss"),
    (hw.Layer(K=64, C=3, P=112, Q=112, R=7, S=7, stride=2), "edgetpu"),
    (hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3, dilation=2), "nvdla-256"),
    (hw.Layer(K=1, C=1, G=32, P=28, Q=28, R=3, S=3, stride=2), "eyeriss"),
    (hw.Layer(K=256, C=64, P=56, Q=56), "edgetpu"),
    (hw.Layer(K=1000, C=2048), "nvdla-256"),
]
AOT_KERNELS = {"tiling_kernel__stalled_cycles", "nestkernel__family_fits", "nestkernel__family_evaluate_batch",
               "search___decode_evaluate"}


def decode_args(layer: hw.Layer, preset: str, genes: np.ndarray) -> tuple:
    """The arguments ``MappingProblem.score`` passes to ``_decode_evaluate``, built here from the public pieces."""
    accel = hw.PRESETS[preset]
    fp = family_params(accel, resolve_precision(layer, accel))
    return (genes, layer_params(layer), fp.n_levels, fp.arch_int, fp.arch_float, fp.conn, fp.e_mac,
            get_objective("edp").family_column)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def test_aot_module_is_built_from_the_current_sources():
    assert os.environ.get(jit.AOT_ENV, "") != "0", f"unset {jit.AOT_ENV} to run the AOT tests"
    assert jit.aot_module() is not None, "the AOT kernels are missing or stale: run python -m hwmodel.aot_build"
    assert {k.aot_name for k in aot_kernels()} == AOT_KERNELS
    assert all(k.aot_function() is not None for k in aot_kernels())


@pytest.mark.parametrize(("layer", "preset"), CASES, ids=[f"{p}-{i}" for i, (_, p) in enumerate(CASES)])
def test_aot_kernels_equal_numba_bit_for_bit(layer, preset):
    args = decode_args(layer, preset, np.random.default_rng(7).random((400, search.NUM_GENES)))
    kernel = search._decode_evaluate
    assert kernel.accepts_aot(args)  # the search's own call types are the AOT signature's
    aot = kernel.aot_function()(*args)
    ref = kernel.dispatcher(*args)
    assert all(same(a, r) for a, r in zip(aot, ref, strict=True))
    fit, temporal, spatial, order = ref
    assert np.isfinite(fit).all()  # the decoder only builds mappings that fit
    # and 100 that do not: the whole of each dim's temporal share moved into L1 (temporal rows: DRAM, L2, L1)
    bad = temporal[:100].copy()
    bad[:, 2] = bad.prod(axis=1)
    bad[:, :2] = 1
    temporal, spatial, order = np.concatenate([temporal, bad]), np.concatenate([spatial, spatial[:100]]), \
        np.concatenate([order, order[:100]])
    lp, n_levels, ai, af, conn, e_mac = args[1:7]
    batch = (lp, temporal, spatial, order, n_levels, ai, af, conn, e_mac)
    assert nk.family_evaluate_batch.accepts_aot(batch)
    aot = nk.family_evaluate_batch.aot_function()(*batch)
    ref = nk.family_evaluate_batch.dispatcher(*batch)
    assert all(same(a, r) for a, r in zip(aot, ref, strict=True))
    assert (ref[0][:400] == 0).all() and (ref[0][400:] != 0).sum() >= 50  # valid and invalid rows both checked
    fits = nk.family_fits.aot_function()
    for i in range(0, len(temporal), 7):
        for lvl in (0, 1):
            row = (lp, temporal[i], spatial[i], lvl, n_levels, ai, af)
            assert nk.family_fits.accepts_aot(row)
            assert fits(*row) == nk.family_fits.dispatcher(*row)


@settings(max_examples=200, deadline=None)
@given(compute=st.integers(0, 2**40), dram=st.floats(0, 1e12), l2=st.floats(0, 1e12),
       dram_bw=st.floats(0.5, 256), noc_bw=st.floats(0.5, 256), l1_stalls=st.booleans(), l2_stalls=st.booleans())
def test_aot_stalled_cycles_equals_numba(compute, dram, l2, dram_bw, noc_bw, l1_stalls, l2_stalls):
    args = (compute, dram, l2, dram_bw, noc_bw, l1_stalls, l2_stalls)
    assert tk.stalled_cycles.accepts_aot(args)
    assert tk.stalled_cycles.aot_function()(*args) == tk.stalled_cycles.dispatcher(*args)


def test_other_argument_types_go_to_numba():
    layer, preset = CASES[0]
    genes = np.random.default_rng(3).random((64, search.NUM_GENES))
    args = decode_args(layer, preset, genes)
    kernel = search._decode_evaluate
    readonly = genes.copy()
    readonly.setflags(write=False)
    others = [
        (genes.astype(np.float32), *args[1:]),  # dtype
        (np.asfortranarray(genes), *args[1:]),  # layout
        (readonly, *args[1:]),  # numba types read-only arrays apart
        (*args[:-1], float(args[-1])),  # a float where an int64 is declared
        (*args[:-1], True),  # a bool is no int64 to numba
        args[:-1],  # arity
    ]
    for other in others:
        assert not kernel.accepts_aot(other)
    for other in others[:3]:  # numba's dispatcher takes them (and converts nothing): same results
        assert all(same(a, b) for a, b in zip(kernel(*other), kernel(*args), strict=True))
    assert tk.stalled_cycles(7.5, 10.0, 20.0, 2.0, 4.0, False, True) == 12.5  # float compute: numba, as before
    assert tk.stalled_cycles(7, 10.0, 20.0, 2.0, 4.0, False, True) == 12  # max(7, ceil(20/4)) + ceil(10/2)


def test_a_stale_or_disabled_aot_module_is_ignored(monkeypatch):
    jit.aot_module.cache_clear()
    try:
        monkeypatch.setattr(jit, "cpu_features", lambda: "another cpu")
        assert jit.aot_module() is None
        monkeypatch.undo()
        jit.aot_module.cache_clear()
        monkeypatch.setenv(jit.AOT_ENV, "0")
        assert jit.aot_module() is None
        monkeypatch.undo()
        jit.aot_module.cache_clear()
        assert jit.aot_module() is not None
    finally:
        jit.aot_module.cache_clear()


#: A kernel module of its own (compiled afresh, no cache): a ``parallel=True`` kernel looping over ``prange``.
PARALLEL_MODULE = """
import numpy as np
from hwmodel.jit import njit, prange

@njit(parallel=True)
def squares(n):
    out = np.zeros(n)
    for i in prange(n):
        out[i] = i * i
    return out
"""
#: Runs it in a fresh process (numba not imported before); numba's threading layer is set once a parallel region
#: has run, which a ``range`` loop would not do.
RUN_PARALLEL = r"""
import sys
sys.path.insert(0, sys.argv[1])
import parallel_kernel
assert "numba" not in sys.modules
out = parallel_kernel.squares(1000)
import numba
assert parallel_kernel.prange is numba.prange and out[999] == 999 * 999
print(numba.threading_layer())
"""


def test_parallel_kernels_loop_over_numba_prange(tmp_path):
    (tmp_path / "parallel_kernel.py").write_text(PARALLEL_MODULE)
    proc = subprocess.run([sys.executable, "-c", RUN_PARALLEL, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] in ("omp", "tbb", "workqueue")


def test_threaded_kernels_equal_the_serial_ones():
    layer, preset = CASES[1]
    args = decode_args(layer, preset, np.random.default_rng(5).random((600, search.NUM_GENES)))
    threaded = search._decode_evaluate_threads(*args)
    assert all(same(a, b) for a, b in zip(threaded, search._decode_evaluate(*args), strict=True))
    lp, n_levels, ai, af, conn, e_mac = args[1:7]
    batch = (lp, *threaded[1:], n_levels, ai, af, conn, e_mac)
    assert all(same(a, b) for a, b in zip(nk.family_evaluate_batch_threads(*batch), nk.family_evaluate_batch(*batch),
                                          strict=True))


@pytest.mark.parametrize("signature", [("float32",), ("int64[:, :]",), ("float64[::1, :]",), ("complex128[::1]",),
                                       ("int64 x",)])
def test_aot_signature_rejects_what_the_build_cannot_check(signature):
    with pytest.raises(ValueError, match="AotSignature"):
        jit.AotSignature("void", signature)


def test_aot_kernels_must_be_serial_and_in_a_kernel_module():
    sig = jit.AotSignature("int64", ("int64",))
    with pytest.raises(ValueError, match="serial"):
        jit.njit(aot=sig)(lambda x: x)  # this test module is no kernel module
    with pytest.raises(ValueError, match="serial"):
        jit.njit(aot=sig, parallel=True)(search._decode_evaluate.py_func)


#: One ``naas-hw evaluate --search`` in a fresh process: its report, and whether numba was imported.
PROBE = r"""
import contextlib, io, json, sys
import hwmodel.cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = hwmodel.cli.main(json.loads(sys.argv[1]))
print(json.dumps({"rc": rc, "report": json.loads(out.getvalue()), "numba": "numba" in sys.modules}))
"""


def run_evaluate(aot: bool) -> dict:
    argv = ["evaluate", "--layer", "K=64,C=64,P=56,Q=56,R=3,S=3", "--accelerator", "systolic:32x32", "--search",
            "--json"]
    env = {**os.environ, jit.AOT_ENV: "1" if aot else "0"}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    return result


def test_evaluate_search_needs_no_numba_and_reports_what_numba_reports():
    with_aot, with_numba = run_evaluate(aot=True), run_evaluate(aot=False)
    assert with_aot["numba"] is False
    assert with_numba["numba"] is True
    assert with_aot["report"] == with_numba["report"]
    assert with_aot["report"]["total"]["edp"] > 0
