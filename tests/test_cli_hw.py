"""``naas-hw``: evaluate (layer / model / ONNX), the JSON report schema, totals, --mapping round trip, presets,
and bad input (exit code 2, one line naming the field, no traceback)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import hwmodel as hw
from hwcli import run, run_json

CONV = "N=1,G=1,K=64,C=64,P=56,Q=56,R=3,S=3,stride=1"
LAYER_KEYS = {
    "name", "dims", "count", "macs", "compute_cycles", "cycles", "energy_pj", "energy_breakdown", "edp",
    "utilization", "lower_bound", "mapping",
}


def check_schema(report: dict) -> None:
    assert set(report) == {"schema_version", "provenance", "accelerator", "layers", "total"}
    assert set(report["provenance"]) == {"version", "git_sha", "energy_table", "seed"}
    assert report["provenance"]["energy_table"] == report["accelerator"]["energy_table"]
    assert set(report["total"]) == {"macs", "cycles", "energy_pj", "edp"}
    assert report["layers"]
    for entry in report["layers"]:
        assert set(entry) == LAYER_KEYS
        assert set(entry["lower_bound"]) == {"cycles", "energy_pj"}
        assert set(entry["energy_breakdown"]) == {"mac", "l1", "noc", "l2", "dram"}
        assert math.isclose(sum(entry["energy_breakdown"].values()), entry["energy_pj"], rel_tol=1e-9)
        assert math.isclose(entry["edp"], entry["energy_pj"] * entry["cycles"], rel_tol=1e-12)
        assert entry["cycles"] >= entry["lower_bound"]["cycles"]
        assert entry["energy_pj"] >= entry["lower_bound"]["energy_pj"] * (1 - 1e-9)
        layer = hw.Layer.from_dict({**entry["dims"], "name": entry["name"], "count": entry["count"]})
        assert entry["macs"] == layer.macs
        assert 0 < entry["utilization"] <= 1
    total = report["total"]
    layers = report["layers"]
    assert total["macs"] == sum(e["count"] * e["macs"] for e in layers)
    assert math.isclose(total["cycles"], sum(e["count"] * e["cycles"] for e in layers), rel_tol=1e-12)
    assert math.isclose(total["energy_pj"], sum(e["count"] * e["energy_pj"] for e in layers), rel_tol=1e-12)
    assert math.isclose(total["edp"], total["energy_pj"] * total["cycles"], rel_tol=1e-12)


def test_evaluate_layer_json(capsys):
    report = run_json(capsys, "evaluate", "--layer", CONV, "--accelerator", "systolic:32x32")
    check_schema(report)
    (entry,) = report["layers"]
    assert entry["dims"] == {"N": 1, "G": 1, "K": 64, "C": 64, "P": 56, "Q": 56, "R": 3, "S": 3,
                             "stride": [1, 1], "dilation": [1, 1]}
    assert entry["count"] == 1 and entry["macs"] == 64 * 64 * 56 * 56 * 9
    assert report["accelerator"]["name"] == "systolic-32x32"
    assert report["provenance"]["seed"] is None
    # the version hwmodel.version holds is the installed distribution's (pyproject.toml reads it from there)
    assert report["provenance"]["version"] == importlib.metadata.version("naas-trainer")


def test_im2col_lowers_every_layer(capsys):
    """--im2col: SCALE-Sim's flattened folds (R*S*C = 333 on 8 rows: 42 folds, not 5 x 9 = 45)."""
    argv = ["evaluate", "--layer", "K=8,C=37,P=4,Q=4,R=3,S=3,name=c", "--accelerator", "systolic:8x8", "--dataflow", "ws"]
    (low,) = run_json(capsys, *argv, "--im2col")["layers"]
    (direct,) = run_json(capsys, *argv)["layers"]
    assert low["dims"]["C"] == 333 and low["dims"]["P"] == 16 and low["dims"]["R"] == 1 and low["name"] == "c"
    assert low["macs"] == direct["macs"]
    assert (low["compute_cycles"], direct["compute_cycles"]) == (42 * 38 - 1, 45 * 38 - 1)
    rc, _, err = run(capsys, "evaluate", "--timeloop", "a.yaml", "p.yaml", "--im2col")
    assert rc == 2 and "--im2col cannot be combined with --timeloop" in err


def test_default_is_the_best_template(capsys):
    layers = ["--layer", CONV + ",name=a", "--layer", "K=32,C=1,G=32,P=28,Q=28,R=3,S=3,stride=2,name=dw,count=3"]
    best = run_json(capsys, "evaluate", *layers, "--accelerator", "eyeriss")
    check_schema(best)
    assert [e["count"] for e in best["layers"]] == [1, 3]
    for flow in hw.DATAFLOWS:
        fixed = run_json(capsys, "evaluate", *layers, "--accelerator", "eyeriss", "--dataflow", flow)
        for b, f in zip(best["layers"], fixed["layers"]):
            assert b["edp"] <= f["edp"] * (1 + 1e-12)


def test_table_output_and_out_file(capsys, tmp_path):
    out = tmp_path / "r.json"
    rc, text, err = run(capsys, "evaluate", "--layer", CONV, "--accelerator", "nvdla-256", "--dataflow", "ws",
                        "--out", str(out))
    assert rc == 0, err
    assert "TOTAL" in text and "layer" in text and "ws" in text and "K64 C64 P56 Q56 R3 S3" in text
    check_schema(json.loads(out.read_text()))
    assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]  # no temp file left behind


def test_model_and_mapping_round_trip(capsys, tmp_path):
    """resnet18: totals over merged layers; the per-layer mappings of one report reproduce it exactly."""
    first = tmp_path / "first.json"
    rc, _, err = run(capsys, "evaluate", "--model", "resnet18", "--resolution", "64", "--accelerator", "eyeriss",
                     "--out", str(first))
    assert rc == 0, err
    report = json.loads(first.read_text())
    check_schema(report)
    assert sum(e["count"] for e in report["layers"]) == 21  # 20 convs + fc
    assert len({e["name"] for e in report["layers"]}) == len(report["layers"])

    # only name + mapping, as a hand-written per-layer file would hold
    mapping_file = tmp_path / "mappings.json"
    mapping_file.write_text(json.dumps({"layers": [{"name": e["name"], "mapping": e["mapping"]} for e in report["layers"]]}))
    for source in (mapping_file, first):  # a full report works as a mapping file too
        again = run_json(capsys, "evaluate", "--model", "resnet18", "--resolution", "64", "--accelerator", "eyeriss",
                         "--mapping", str(source))
        for a, b in zip(report["layers"], again["layers"]):
            assert (a["name"], a["cycles"], a["energy_pj"], a["mapping"]) == (b["name"], b["cycles"], b["energy_pj"], b["mapping"])
        assert again["total"] == report["total"]


def test_single_mapping_for_all_layers(capsys, tmp_path):
    layer = hw.Layer.parse(CONV)
    accel = hw.load_accelerator("systolic:16x16")
    mapping = hw.template_mapping(layer, accel, "os")
    path = tmp_path / "m.json"
    mapping.save(path)
    report = run_json(capsys, "evaluate", "--layer", CONV, "--accelerator", "systolic:16x16", "--mapping", str(path))
    cost = hw.evaluate(layer, accel, mapping)
    assert report["layers"][0]["cycles"] == cost.cycles
    assert report["layers"][0]["energy_pj"] == cost.energy_pj
    assert hw.Mapping.from_dict(report["layers"][0]["mapping"]) == mapping


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8, padding=1),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False)
    report = run_json(capsys, "evaluate", "--onnx", str(path), "--accelerator", "shidiannao")
    check_schema(report)
    dims = [e["dims"] for e in report["layers"]]
    assert [(d["K"], d["C"], d["G"], d["P"]) for d in dims] == [(8, 3, 1, 8), (1, 1, 8, 8), (10, 512, 1, 1)]


def test_accelerator_file(capsys, tmp_path):
    path = tmp_path / "acc.yaml"
    hw.PRESETS["edgetpu"].with_(name="mytpu", l2_bytes=1 << 20).save(path)
    report = run_json(capsys, "evaluate", "--layer", CONV, "--accelerator", str(path))
    assert report["accelerator"]["name"] == "mytpu"
    assert hw.Accelerator.from_dict(report["accelerator"]) == hw.load_accelerator(path)


def test_presets(capsys):
    rc, out, _ = run(capsys, "presets")
    assert rc == 0
    for name, accel in hw.PRESETS.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert "x".join(map(str, accel.array)) in line and accel.energy_table in line
    assert "KB" in out and "systolic:RxC" in out
    rc, out, _ = run(capsys, "presets", "--json")
    data = json.loads(out)
    assert {n: hw.Accelerator.from_dict(d) for n, d in data.items()} == hw.PRESETS


# --- bad input -----------------------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _bad_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    eyeriss = hw.PRESETS["eyeriss"].to_dict()
    tiny_l1 = {**hw.PRESETS["nvdla-256"].to_dict(), "l1_words": 2}
    tiny_l2 = {**hw.PRESETS["nvdla-256"].to_dict(), "l2_bytes": 4}
    ev = ["evaluate", "--layer", CONV]
    return [
        (["evaluate", "--layer", "K=0,C=4", "--accelerator", "eyeriss"], "Layer.K must be >= 1"),
        (["evaluate", "--layer", "K=-3,C=4", "--accelerator", "eyeriss"], "Layer.K"),
        (["evaluate", "--layer", "K=4,C=4,X=2", "--accelerator", "eyeriss"], "unknown layer dim 'X'"),
        (["evaluate", "--layer", "K=4,C=four", "--accelerator", "eyeriss"], "layer dim C must be an integer"),
        (["evaluate", "--layer", "K=4", "--accelerator", "eyeriss"], "Layer needs at least K and C"),
        (["evaluate", "--layer", "K=4,C=4,stride=0", "--accelerator", "eyeriss"], "Layer.stride"),
        ([*ev, "--accelerator", "tpu9"], "'tpu9' is not a preset"),
        ([*ev, "--accelerator", "systolic:0x8"], "systolic array sizes must be >= 1"),
        ([*ev, "--accelerator", _write(tmp_path, "zero.json", {**eyeriss, "array": [0, 14]})], "Accelerator.array"),
        ([*ev, "--accelerator", _write(tmp_path, "unk.json", {**eyeriss, "l3_bytes": 9})], "l3_bytes"),
        ([*ev, "--accelerator", _write(tmp_path, "conn.json", {**eyeriss, "connectivity": [["R"], ["Z"]]})],
         "connectivity[1] has unknown dim 'Z'"),
        ([*ev, "--accelerator", _write(tmp_path, "bw.json", {**eyeriss, "noc_bandwidth": 0})], "noc_bandwidth"),
        ([*ev, "--accelerator", _write(tmp_path, "et.json", {**eyeriss, "energy_table": "x"})], "energy_table"),
        ([*ev, "--accelerator", _write(tmp_path, "broken.json", "{")], "cannot parse accelerator file"),
        ([*ev, "--accelerator", _write(tmp_path, "l1.json", tiny_l1)], "l1_words"),
        ([*ev, "--accelerator", _write(tmp_path, "l2.json", tiny_l2)], "l2_bytes"),
        ([*ev, "--accelerator", "eyeriss", "--mapping", _write(tmp_path, "cover.json", {"temporal": {"L1": {"K": 2}}})],
         "dim K multiply to 2 < layer K=64"),
        ([*ev, "--accelerator", "eyeriss", "--mapping",
          _write(tmp_path, "conn_m.json", hw.mapping_from_factors(dram={"N": 1, "K": 64, "C": 64, "P": 56, "Q": 28, "R": 3, "S": 3},
                                                                  spatial=[{}, {"Q": 2}]).to_dict())],
         "unrolls Q on axis 1, whose connectivity allows only P"),
        ([*ev, "--accelerator", "eyeriss", "--mapping",
          _write(tmp_path, "big.json", hw.mapping_from_factors(dram={"K": 64, "C": 64, "P": 4, "Q": 56, "R": 3, "S": 3},
                                                               spatial=[{}, {"P": 15}]).to_dict())],
         "layer 'layer': mapping unrolls 15 on axis 1 of size 14"),
        ([*ev, "--accelerator", "eyeriss", "--mapping",
          _write(tmp_path, "fat.json", hw.mapping_from_factors(l2={"K": 64, "C": 64, "P": 56, "Q": 56, "R": 3, "S": 3}).to_dict())],
         "L2 tiles exceed the L2 capacity"),
        ([*ev, "--accelerator", "eyeriss", "--mapping",
          _write(tmp_path, "named.json", {"layers": [{"name": "conv9", "mapping": {}}]})],
         "no entry for layer 'layer'"),
        ([*ev, "--accelerator", "eyeriss", "--mapping", _write(tmp_path, "bad.json", "[")], "not valid JSON"),
        ([*ev, "--accelerator", "eyeriss", "--mapping", str(tmp_path / "none.json")], "does not exist"),
        ([*ev, "--accelerator", "eyeriss", "--mapping", _write(tmp_path, "lvl.json", {"temporal": {"L3": {}}})],
         "unknown mapping level 'L3'"),
        (["evaluate", "--model", "resnet9000", "--accelerator", "eyeriss"], "unknown torchvision model 'resnet9000'"),
        (["evaluate", "--onnx", str(tmp_path / "no.onnx"), "--accelerator", "eyeriss"], "does not exist"),
        ([*ev, "--accelerator", "eyeriss", "--out", str(tmp_path / "nodir" / "r.json")], "No such file"),
    ]


def test_bad_input_exits_2_with_one_line(capsys, tmp_path):
    for argv, expected in _bad_cases(tmp_path):
        rc, out, err = run(capsys, *argv)
        assert rc == 2, (argv, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("naas-hw evaluate: error: "), (argv, err)
        assert expected in lines[0], (argv, err)
        assert "Traceback" not in err and not out


def test_duplicate_and_usage_errors(capsys):
    rc, _, err = run(capsys, "evaluate", "--layer", "K=2,C=2,name=a", "--layer", "K=4,C=2,name=a", "--accelerator", "eyeriss")
    assert rc == 2 and "'a' is used twice" in err
    for argv in (
        ["evaluate", "--accelerator", "eyeriss"],  # no workload
        ["evaluate", "--layer", CONV],  # no accelerator
        ["evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--dataflow", "xs"],
        ["evaluate", "--layer", CONV, "--model", "resnet18", "--accelerator", "eyeriss"],
        ["evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--dataflow", "ws", "--mapping", "m.json"],
        ["frobnicate"],
        [],
    ):
        rc, _, err = run(capsys, *argv)
        assert rc == 2, argv
        assert "usage: naas-hw" in err and "Traceback" not in err


def test_console_entry_point_bad_input():
    """Through a fresh interpreter: exit status 2, a single stderr line, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "hwmodel.cli", "evaluate", "--layer", "K=4,C=4,P=0", "--accelerator", "eyeriss"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "naas-hw evaluate: error: Layer.P must be >= 1 (a positive size), got 0"


def test_search_optimal(capsys, tmp_path):
    """--search optimal: the proven optimum on a small design (the Python API's), a gap with --time-limit on a
    big layer, and --time-limit refused without it."""
    from hwmodel.search import search_mapping

    accel = hw.Accelerator(name="small", array=(2, 2), connectivity=(("C", "K"), ("P", "Q")), l1_words=24,
                           l2_bytes=400, noc_bandwidth=2, dram_bandwidth=1)
    f = _write(tmp_path, "small.json", accel.to_dict())
    report = run_json(capsys, "evaluate", "--layer", "K=4,C=3,P=4,Q=2,R=3,name=conv", "--accelerator", f,
                      "--search", "optimal")
    best = search_mapping(hw.Layer(K=4, C=3, P=4, Q=2, R=3), accel, method="optimal")
    assert report["layers"][0]["edp"] == pytest.approx(best.cost.edp, rel=1e-12)
    rc, _, err = run(capsys, "evaluate", "--layer", "K=4,C=3,name=c", "--accelerator", f, "--search",
                     "--time-limit", "1")
    assert rc == 2 and "--time-limit applies only with --search optimal" in err
    rc, out, err = run(capsys, "evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--search", "optimal",
                       "--time-limit", "0.3")
    assert rc == 0 and "optimal (time limit, gap <=" in out, err
