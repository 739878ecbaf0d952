#!/usr/bin/env python3
"""Generate (or check) the SCALE-Sim 3.0 reference dataset of systolic-array compute cycles.

The dataset (``tests/fixtures/scalesim/cycles.csv``) is an oracle for our analytical
systolic-array model. It is generated ONCE and committed; regenerating needs SCALE-Sim,
which is deliberately NOT a dependency of this project. Use a separate venv:

    python3 -m venv /work/scalesim-venv
    /work/scalesim-venv/bin/pip install scalesim "numpy<2"      # scalesim 3.0.0
    /work/scalesim-venv/bin/python scripts/gen_scalesim_refs.py --out tests/fixtures/scalesim

The closed-form check needs only the standard library (any python):

    python3 scripts/gen_scalesim_refs.py --check tests/fixtures/scalesim/cycles.csv

How SCALE-Sim is driven: for every (layer, dataflow, array shape) we write a config file, a
one-layer topology CSV (conv format, or the GEMM "M, N, K" format with ``input_type_gemm``),
a dummy layout CSV (required by the 3.0 loader, unused since custom layouts are off), run
``scalesim.scale_sim.scalesim(save_disk_space=True)`` (no traces) in a temp dir and read the
layer's row of ``COMPUTE_REPORT.csv``. One layer per run because SCALE-Sim keeps every
layer's full demand/trace matrices in memory until the end of a run.

Settings: InterfaceBandwidth = CALC (SCALE-Sim's "estimate bandwidth" mode, in which SRAM
reads are stall-free by construction) and 64 MiB SRAMs (so the ofmap write buffer never
fills), hence Stall Cycles is 0 and only the compute schedule matters.
"""
import argparse
import csv
import math
import os
import random
import shutil
import sys
import tempfile
import time

SEED = 20240607
N_CONV = 64
N_GEMM = 48
DATAFLOWS = ("ws", "os", "is")
ARRAYS = ((8, 8), (16, 32), (32, 16))  # (rows, cols)
# Rejection bound on the simulator's work per layer: the sum over the 9 (dataflow, array)
# configs of the number of rows of SCALE-Sim's demand matrices (= cycles it steps through
# one by one in Python, ~15k/s). Only bounds the run time (< 30 min on one core); it is
# NOT the quantity being checked (every generated row is checked against the closed form).
MAX_LAYER_WORK = 300_000
SRAM_KB = 65536

CONFIG_TEMPLATE = """[general]
run_name = ref

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {sram}
FilterSramSzkB = {sram}
OfmapSramSzkB = {sram}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = 10
Dataflow = {df}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""

COLUMNS = [
    "kind", "name",
    "ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride",
    "gemm_M", "gemm_N", "gemm_K",
    "ofmap_h", "ofmap_w",
    "dataflow", "array_rows", "array_cols",
    "total_cycles_incl_prefetch", "total_cycles", "stall_cycles", "compute_cycles",
    "overall_util", "mapping_efficiency", "compute_util",
    "scalesim_version",
]


# --------------------------------------------------------------------------- closed form
def ofmap_dims(h, w, r, s, stride, scalesim=True):
    """Ofmap (P, Q) as SCALE-Sim computes it (topology_utils.topo_calc_hyperparams):
    ceil((ifmap - filter + stride) / stride) = ceil((ifmap - filter) / stride) + 1.
    No padding is declared, but this is NOT the usual valid-conv floor((H-R)/s) + 1: when
    (H-R) % s != 0 SCALE-Sim adds one more output row/col whose window runs off the
    bottom/right edge (those ifmap addresses are -1, i.e. implicit zero padding there).
    scalesim=False gives the usual floor form (only used to show the difference in --check).
    """
    if scalesim:
        return -(-(h - r + stride) // stride), -(-(w - s + stride) // stride)
    return (h - r) // stride + 1, (w - s) // stride + 1


def spatio_temporal(df, npix, window, nfilt):
    """(Sr, Sc, T) from the im2col operands: ifmap (npix x window), filter (window x nfilt)."""
    if df == "ws":
        return window, nfilt, npix
    if df == "os":
        return npix, nfilt, window
    if df == "is":
        return window, npix, nfilt
    raise ValueError(df)


def closed_form(df, rows, cols, npix, window, nfilt, variant="scalesim3"):
    """Cycles predicted for one layer.

    variant "scalesim3" (what SCALE-Sim 3.0 reports as "Total Cycles"):
        folds = ceil(Sr/rows) * ceil(Sc/cols)
        per_fold = 2*rows + cols + T - 2   (ws, is)      rows + cols + T - 2   (os)
        cycles = folds * per_fold - 1
      Every fold is padded to the FULL array (rows, cols), also the partial last folds and
      layers smaller than the array; the final -1 is because the report is the 0-based index
      of the last demand-matrix row (folds * per_fold rows in total).
    variant "paper": the same without the -1 (folds * per_fold).
    variant "mapped": per fold uses the mapped sub-tile (r_used, c_used) instead of the full
      array: sum over folds of 2*r_used + c_used + T - 2 (os: r_used + c_used + T - 2).
    """
    sr, sc, t = spatio_temporal(df, npix, window, nfilt)
    fr, fc = math.ceil(sr / rows), math.ceil(sc / cols)
    if variant in ("scalesim3", "paper"):
        per = (rows + cols + t - 2) if df == "os" else (2 * rows + cols + t - 2)
        return fr * fc * per - (1 if variant == "scalesim3" else 0)
    if variant == "mapped":
        tot = 0
        for i in range(fr):
            ru = min(rows, sr - i * rows)
            for j in range(fc):
                cu = min(cols, sc - j * cols)
                tot += (ru + cu + t - 2) if df == "os" else (2 * ru + cu + t - 2)
        return tot
    raise ValueError(variant)


def layer_dims(layer, scalesim_ofmap=True):
    """(npix, window, nfilt) of a layer dict as SCALE-Sim sees it."""
    p, q = ofmap_dims(layer["ifmap_h"], layer["ifmap_w"], layer["filter_h"],
                      layer["filter_w"], layer["stride"], scalesim_ofmap)
    return p * q, layer["filter_h"] * layer["filter_w"] * layer["channels"], layer["num_filters"]


def sim_work(layer):
    npix, window, nfilt = layer_dims(layer)
    return sum(closed_form(df, r, c, npix, window, nfilt, "paper")
               for df in DATAFLOWS for (r, c) in ARRAYS)


# --------------------------------------------------------------------------- sampling
def gemm_layer(name, m, n, k):
    # SCALE-Sim topology_utils.load_arrays_gemm maps "M, N, K" onto the conv fields as
    # [ifmap_h=M, ifmap_w=K, filter_h=1, filter_w=K, channels=1, num_filters=N, stride=1]
    # => ofmap M x 1 (npix = M), window = K, num_filters = N.
    return dict(kind="gemm", name=name, ifmap_h=m, ifmap_w=k, filter_h=1, filter_w=k,
                channels=1, num_filters=n, stride=1, gemm_M=m, gemm_N=n, gemm_K=k)


def sample_layers(seed=SEED, n_conv=N_CONV, n_gemm=N_GEMM, max_work=MAX_LAYER_WORK):
    rng = random.Random(seed)
    layers, rejected = [], 0
    while sum(l["kind"] == "conv" for l in layers) < n_conv:
        h, w = rng.randint(3, 32), rng.randint(3, 32)
        r = rng.choice([f for f in (1, 3, 5, 7) if f <= h])
        s = rng.choice([f for f in (1, 3, 5, 7) if f <= w])
        lay = dict(kind="conv", name="conv%03d" % len(layers), ifmap_h=h, ifmap_w=w,
                   filter_h=r, filter_w=s, channels=rng.randint(1, 64),
                   num_filters=rng.randint(1, 96), stride=rng.choice((1, 2)),
                   gemm_M="", gemm_N="", gemm_K="")
        if sim_work(lay) > max_work:
            rejected += 1
            continue
        layers.append(lay)
    ng = 0
    while ng < n_gemm:
        m, n, k = rng.randint(1, 300), rng.randint(1, 300), rng.randint(1, 300)
        lay = gemm_layer("gemm%03d" % ng, m, n, k)
        if sim_work(lay) > max_work:
            rejected += 1
            continue
        layers.append(lay)
        ng += 1
    return layers, rejected


# --------------------------------------------------------------------------- running
def run_one(layer, df, rows, cols, workdir, version):
    from scalesim.scale_sim import scalesim  # only inside the scalesim venv

    cfg = os.path.join(workdir, "scale.cfg")
    with open(cfg, "w") as f:
        f.write(CONFIG_TEMPLATE.format(rows=rows, cols=cols, sram=SRAM_KB, df=df))
    topo = os.path.join(workdir, "topo.csv")
    gemm = layer["kind"] == "gemm"
    with open(topo, "w") as f:
        if gemm:
            f.write("Layer, M, N, K,\n")
            f.write("%s, %d, %d, %d,\n" % (layer["name"], layer["gemm_M"], layer["gemm_N"],
                                           layer["gemm_K"]))
        else:
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\n")
            f.write("%s, %d, %d, %d, %d, %d, %d, %d,\n" % tuple(
                [layer["name"]] + [layer[k] for k in ("ifmap_h", "ifmap_w", "filter_h",
                                                      "filter_w", "channels", "num_filters",
                                                      "stride")]))
    layout = os.path.join(workdir, "layout.csv")
    with open(layout, "w") as f:  # required by the 3.0 loader; ignored (custom layouts off)
        f.write("Layer name," + ",".join(["x"] * 20) + ",\n")
        f.write(layer["name"] + "," + ",".join(["1"] * 20) + ",\n")
    out = os.path.join(workdir, "out")
    shutil.rmtree(out, ignore_errors=True)

    sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                   layout=layout, input_type_gemm=gemm)
    # SCALE-Sim's parsed view of the layer must be what we claim it is
    t = sim.topo.topo_arrays[0]
    want = [layer[k] for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels",
                               "num_filters", "stride", "stride")]
    assert list(t[1:9]) == want, (layer["name"], t, want)
    sim.run_scale(top_path=out)

    with open(os.path.join(out, "ref", "COMPUTE_REPORT.csv")) as f:
        rdr = csv.reader(f)
        hdr = [h.strip() for h in next(rdr)]
        vals = [v.strip() for v in next(rdr)]
    rep = dict(zip(hdr, vals))
    total = int(float(rep["Total Cycles"]))
    stall = int(float(rep["Stall Cycles"]))
    p, q = ofmap_dims(layer["ifmap_h"], layer["ifmap_w"], layer["filter_h"],
                      layer["filter_w"], layer["stride"])
    assert sim.topo.get_layer_ofmap_dims(0) == [p, q], (layer["name"],)
    row = {k: layer[k] for k in ("kind", "name", "ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                 "channels", "num_filters", "stride", "gemm_M", "gemm_N",
                                 "gemm_K")}
    row.update(ofmap_h=p, ofmap_w=q, dataflow=df, array_rows=rows, array_cols=cols,
               total_cycles_incl_prefetch=int(float(rep["Total Cycles (incl. prefetch)"])),
               total_cycles=total, stall_cycles=stall, compute_cycles=total - stall,
               overall_util="%.6f" % float(rep["Overall Util %"]),
               mapping_efficiency="%.6f" % float(rep["Mapping Efficiency %"]),
               compute_util="%.6f" % float(rep["Compute Util %"]),
               scalesim_version=version)
    return row


def generate(outdir, limit=None):
    from importlib.metadata import version as pkg_version
    version = pkg_version("scalesim")
    assert version.startswith("3."), "want SCALE-Sim 3.x, got %s" % version
    layers, rejected = sample_layers()
    if limit:
        layers = layers[:limit]
    work = sum(sim_work(l) for l in layers)
    print("scalesim %s: %d layers (%d rejected draws), ~%d simulated cycles in total"
          % (version, len(layers), rejected, work), flush=True)
    os.makedirs(outdir, exist_ok=True)
    rows = []
    t0 = time.time()
    done = 0
    with tempfile.TemporaryDirectory(prefix="scalesim_refs_") as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)  # SCALE-Sim may write relative paths; keep them out of the repo
        try:
            for i, layer in enumerate(layers):
                for df in DATAFLOWS:
                    for (r, c) in ARRAYS:
                        rows.append(run_one(layer, df, r, c, tmp, version))
                done += sim_work(layer)
                el = time.time() - t0
                print("[%3d/%d] %-8s %7.0fs elapsed, ~%.0fs left" % (
                    i + 1, len(layers), layer["name"], el, el / done * (work - done)),
                    flush=True)
        finally:
            os.chdir(cwd)
    path = os.path.join(outdir, "cycles.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print("wrote %s (%d rows) in %.0fs" % (path, len(rows), time.time() - t0))
    return path


# --------------------------------------------------------------------------- checking
def check(path, verbose=True):
    with open(path) as f:
        data = list(csv.DictReader(f))
    # "floor_ofmap": the scalesim3 form but with the usual floor((H-R)/s)+1 ofmap size
    variants = ("scalesim3", "paper", "mapped", "floor_ofmap")
    stats = {v: {} for v in variants}
    mism = []
    nstall = 0
    for row in data:
        lay = {k: int(row[k]) for k in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                        "channels", "num_filters", "stride")}
        p, q = ofmap_dims(lay["ifmap_h"], lay["ifmap_w"], lay["filter_h"], lay["filter_w"],
                          lay["stride"])
        assert (p, q) == (int(row["ofmap_h"]), int(row["ofmap_w"])), row["name"]
        npix, window, nfilt = layer_dims(lay)
        npix_floor = layer_dims(lay, scalesim_ofmap=False)[0]
        df, r, c = row["dataflow"], int(row["array_rows"]), int(row["array_cols"])
        got = int(row["compute_cycles"])
        nstall += int(row["stall_cycles"]) != 0
        for v in variants:
            key = (row["kind"], df)
            if v == "floor_ofmap":
                pred = closed_form(df, r, c, npix_floor, window, nfilt, "scalesim3")
            else:
                pred = closed_form(df, r, c, npix, window, nfilt, v)
            ok = pred == got
            s = stats[v].setdefault(key, [0, 0])
            s[0] += ok
            s[1] += 1
            if v == "scalesim3" and not ok:
                mism.append((row["name"], df, r, c, got,
                             pred))
    if verbose:
        print("%d rows; %d with nonzero stall cycles" % (len(data), nstall))
        for v in variants:
            tot = sum(s[0] for s in stats[v].values())
            per = ", ".join("%s/%s %d/%d" % (k[0], k[1], s[0], s[1])
                            for k, s in sorted(stats[v].items()))
            print("closed form %-9s: %d/%d exact  (%s)" % (v, tot, len(data), per))
        for m in mism[:20]:
            print("MISMATCH", m)
    return len(mism) == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="tests/fixtures/scalesim",
                    help="output dir for cycles.csv (generation mode)")
    ap.add_argument("--check", metavar="CSV", nargs="?", const="",
                    help="check a cycles.csv against the closed form instead of generating "
                         "(default: <out>/cycles.csv)")
    ap.add_argument("--estimate", action="store_true",
                    help="only print the sampled layers' simulated-cycle budget")
    ap.add_argument("--limit", type=int, default=None, help="only the first N layers (timing)")
    a = ap.parse_args()
    if a.check is not None:
        return 0 if check(a.check or os.path.join(a.out, "cycles.csv")) else 1
    if a.estimate:
        layers, rej = sample_layers()
        works = sorted(sim_work(l) for l in layers)
        print("%d layers, %d rejected; total %d cycles, max layer %d, median %d"
              % (len(layers), rej, sum(works), works[-1], works[len(works) // 2]))
        return 0
    path = generate(a.out, a.limit)
    return 0 if check(path) else 1


if __name__ == "__main__":
    sys.exit(main())
