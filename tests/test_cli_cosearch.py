"""``naas-hw cosearch`` and ``naas-hw evaluate --search``: the co-search JSON schema and its ratios, the --out
folder (JSON, accelerator, per-layer mappings, PNG), reproducing NAAS's figures through ``evaluate``, the
--search / --mapping round trip, the summary table with its progress bar, and bad input (exit 2).

Small workloads (two ``--layer`` specs) and tiny budgets keep the whole file well under a minute."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import hwmodel as hw
from hwmodel.cli import main
from hwcli import run, run_json

LAYERS = ["--layer", "name=conv,K=32,C=16,P=14,Q=14,R=3,S=3,count=2", "--layer", "name=fc,K=100,C=256"]
SMALL = ["--generations", "2", "--mapping-budget", "64", "--final-mapping-budget", "128"]
DESIGN_KEYS = {"cycles", "energy_pj", "edp", "accelerator"}
TOP_KEYS = {
    "schema_version", "provenance", "budget", "model", "baseline", "sizing_only", "naas", "speedup",
    "energy_saving", "edp_ratio", "edp_vs_sizing_only", "seconds",
}


@pytest.fixture(scope="module")
def cosearched(tmp_path_factory) -> tuple[dict, Path, str]:
    """One small co-search with --json and --out: (printed JSON, out folder, stderr)."""
    out_dir = tmp_path_factory.mktemp("cosearch") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["cosearch", *LAYERS, "--budget", "eyeriss", *SMALL, "--json", "--out", str(out_dir)])
    assert rc == 0, stderr.getvalue()
    return json.loads(stdout.getvalue()), out_dir, stderr.getvalue()


def test_schema(cosearched):
    result, _, _ = cosearched
    assert TOP_KEYS <= set(result)
    assert result["budget"] == "eyeriss" and result["model"] == "layers"
    assert set(result["provenance"]) == {"version", "git_sha", "energy_table", "seed"}
    assert result["provenance"]["seed"] == 0
    for key in ("baseline", "sizing_only", "naas"):
        assert DESIGN_KEYS <= set(result[key]), key
        entry = result[key]
        assert entry["cycles"] > 0 and entry["energy_pj"] > 0
        assert math.isclose(entry["edp"], entry["cycles"] * entry["energy_pj"], rel_tol=1e-12)
        hw.Accelerator.from_dict(entry["accelerator"])  # a loadable design
    assert result["baseline"]["accelerator"] == hw.PRESETS["eyeriss"].to_dict()
    assert result["sizing_only"]["accelerator"]["connectivity"] == hw.PRESETS["eyeriss"].to_dict()["connectivity"]
    naas = hw.Accelerator.from_dict(result["naas"]["accelerator"])
    assert naas.num_pes <= hw.PRESETS["eyeriss"].num_pes
    assert naas.onchip_bytes <= hw.PRESETS["eyeriss"].onchip_bytes + 1
    mappings = result["naas"]["mappings"]
    assert [m["name"] for m in mappings] == ["conv", "fc"]
    assert [m["count"] for m in mappings] == [2, 1]
    for m in mappings:
        hw.Mapping.from_dict(m["mapping"])
    assert result["seconds"] > 0


def test_ratios_match_entries(cosearched):
    result, _, _ = cosearched
    base, sized, naas = result["baseline"], result["sizing_only"], result["naas"]
    assert math.isclose(result["speedup"], base["cycles"] / naas["cycles"], rel_tol=1e-12)
    assert math.isclose(result["energy_saving"], base["energy_pj"] / naas["energy_pj"], rel_tol=1e-12)
    assert math.isclose(result["edp_ratio"], base["edp"] / naas["edp"], rel_tol=1e-12)
    assert math.isclose(result["edp_vs_sizing_only"], sized["edp"] / naas["edp"], rel_tol=1e-12)
    # per-layer mappings total to the NAAS figures (count x per-instance)
    m = naas["mappings"]
    assert math.isclose(sum(e["count"] * e["cycles"] for e in m), naas["cycles"], rel_tol=1e-9)
    assert math.isclose(sum(e["count"] * e["energy_pj"] for e in m), naas["energy_pj"], rel_tol=1e-9)


def test_out_folder(cosearched):
    result, out_dir, _ = cosearched
    for name in ("cosearch.json", "accelerator.json", "mappings.json", "convergence.png"):
        assert (out_dir / name).is_file(), name
    assert json.loads((out_dir / "cosearch.json").read_text()) == result
    assert json.loads((out_dir / "accelerator.json").read_text()) == result["naas"]["accelerator"]
    png = (out_dir / "convergence.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR" and png[-8:-4] == b"IEND"
    image = pytest.importorskip("PIL.Image")
    with image.open(out_dir / "convergence.png") as im:
        im.verify()  # chunk CRCs and structure
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".") or "tmp" in p.name]  # no leftovers


def test_evaluate_reproduces_naas(capsys, cosearched):
    """The written accelerator + mappings, fed back to ``naas-hw evaluate``, give NAAS's figures."""
    result, out_dir, _ = cosearched
    report = run_json(capsys, "evaluate", *LAYERS, "--accelerator", str(out_dir / "accelerator.json"),
                      "--mapping", str(out_dir / "mappings.json"))
    assert math.isclose(report["total"]["cycles"], result["naas"]["cycles"], rel_tol=1e-9)
    assert math.isclose(report["total"]["energy_pj"], result["naas"]["energy_pj"], rel_tol=1e-9)
    assert [e["mapping"] for e in report["layers"]] == [e["mapping"] for e in result["naas"]["mappings"]]
    # and the baseline preset with its own templates is no better than the searched baseline
    templ = run_json(capsys, "evaluate", *LAYERS, "--accelerator", "eyeriss")
    assert result["baseline"]["edp"] <= templ["total"]["edp"] * (1 + 1e-9)


def test_progress_bar_on_stderr(cosearched):
    _, _, err = cosearched
    # tqdm throttles redraws, so only the first and the final state are certain to appear
    assert "sizing_only:   0%" in err and "4/4" in err and "best edp" in err and "final mappings" in err


def test_summary_table(capsys):
    rc, out, err = run(capsys, "cosearch", *LAYERS, "--budget", "shidiannao", *SMALL, "--objective", "latency",
                       "--seed", "3")
    assert rc == 0, err
    for text in ("baseline (shidiannao)", "sizing-only", "NAAS", "speedup", "energy saving", "EDP",
                 "objective latency", "seed 3", "time:"):
        assert text in out, text
    assert not out.lstrip().startswith("{")
    assert "|" in err or "%" in err  # the progress bar went to stderr, not stdout
    assert "%|" not in out


def test_evaluate_search_round_trip(capsys, tmp_path):
    first = tmp_path / "searched.json"
    rc, out, err = run(capsys, "evaluate", *LAYERS, "--accelerator", "eyeriss", "--search", "--mapping-budget",
                       "200", "--seed", "1", "--out", str(first))
    assert rc == 0, err
    assert "search:" in out or "template:" in out  # where each mapping came from
    searched = json.loads(first.read_text())
    assert searched["provenance"]["seed"] == 1
    again = run_json(capsys, "evaluate", *LAYERS, "--accelerator", "eyeriss", "--mapping", str(first))
    assert again["total"] == searched["total"]
    for a, b in zip(searched["layers"], again["layers"]):
        assert (a["name"], a["cycles"], a["energy_pj"], a["mapping"]) == (b["name"], b["cycles"], b["energy_pj"], b["mapping"])
    # never worse than the best template, layer by layer; and deterministic for a seed
    templ = run_json(capsys, "evaluate", *LAYERS, "--accelerator", "eyeriss")
    for s, t in zip(searched["layers"], templ["layers"]):
        assert s["edp"] <= t["edp"] * (1 + 1e-12)
    same = run_json(capsys, "evaluate", *LAYERS, "--accelerator", "eyeriss", "--search", "--mapping-budget", "200",
                    "--seed", "1")
    assert same["layers"] == searched["layers"]


def test_evaluate_search_objective(capsys):
    layer = ["--layer", "K=32,C=16,P=14,Q=14,R=3,S=3"]
    by = {obj: run_json(capsys, "evaluate", *layer, "--accelerator", "nvdla-256", "--search", "--objective", obj,
                        "--mapping-budget", "200")["layers"][0] for obj in ("latency", "energy")}
    assert by["latency"]["cycles"] <= by["energy"]["cycles"]
    assert by["energy"]["energy_pj"] <= by["latency"]["energy_pj"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["cosearch", *LAYERS, "--budget", "tpu9000"], "naas-hw cosearch: error: unknown --budget 'tpu9000'"),
        (["cosearch", *LAYERS, "--budget", "eyeriss", "--generations", "0"], "--generations must be >= 1"),
        (["cosearch", *LAYERS, "--budget", "eyeriss", "--mapping-budget", "0"], "--mapping-budget must be >= 1"),
        (["cosearch", "--layer", "K=4,C=4,P=0", "--budget", "eyeriss"], "Layer.P must be >= 1"),
        (["evaluate", *LAYERS, "--accelerator", "eyeriss", "--seed", "2"], "--seed applies only with --search"),
        (["evaluate", *LAYERS, "--accelerator", "eyeriss", "--search", "--mapping-budget", "0"],
         "--mapping-budget must be >= 1"),
    ],
)
def test_bad_input_exits_2(capsys, argv, expected):
    rc, out, err = run(capsys, *argv)
    assert rc == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err and not out


def test_out_is_a_file_exits_2_before_searching(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, out, err = run(capsys, "cosearch", *LAYERS, "--budget", "eyeriss", *SMALL, "--out", str(blocker))
    assert rc == 2 and "is not a folder" in err and "sizing_only" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["cosearch", *LAYERS],  # no budget
        ["cosearch", "--budget", "eyeriss"],  # no workload
        ["cosearch", *LAYERS, "--budget", "eyeriss", "--objective", "area"],
        ["evaluate", *LAYERS, "--accelerator", "eyeriss", "--search", "--dataflow", "ws"],
        ["evaluate", *LAYERS, "--accelerator", "eyeriss", "--search", "--mapping", "m.json"],
    ],
)
def test_usage_errors(capsys, argv):
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and "usage: naas-hw" in err and "Traceback" not in err


def test_console_entry_point_bad_budget():
    proc = subprocess.run(
        [sys.executable, "-m", "hwmodel.cli", "cosearch", "--layer", "K=4,C=4", "--budget", "nope"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("naas-hw cosearch: error: unknown --budget 'nope'")
    assert len(proc.stderr.strip().splitlines()) == 1
