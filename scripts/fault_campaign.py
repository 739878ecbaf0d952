#!/usr/bin/env python
"""Fault-injection campaign against ``naas-hw`` and ``naas-train`` (issue 15): generated bad inputs, each run as a
real subprocess (no network, an address-space limit, a hang limit; a hang is confirmed by a second run), sorted
into the issue's family x outcome table.

Outcomes of a bad input: ``clean error`` (exit 2 and one error line that names what it must: the field, key or
file; argparse usage errors count when their last line names the argument), ``traceback`` (a traceback on stderr,
an internal error (exit 1), or a crash by signal), ``hang`` (still running after ``--hang-limit`` seconds, twice),
``wrong success`` (exit 0) and ``unclear error`` (failed, but not in one line or without naming what it must).

Families: layer strings, accelerator JSON/YAML, mapping JSON, ONNX files, naas-train (a handful of cheap cases:
a bad recipe field, a missing data folder, truncated/empty checkpoints, result.json without baselines),
other CLI (cosearch, --model, --out onto device nodes / FIFOs / folders, numeric options). A second table lists
extreme but *valid* inputs (a 2**24 dim with every dataflow and --search, ...) that must succeed without a hang.

    nice -n 19 .venv/bin/python scripts/fault_campaign.py            # ~450 cases; prints the tables
    .venv/bin/python scripts/fault_campaign.py --scale 0.2 --jobs 2  # a quick one
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DIMS = ("N", "G", "K", "C", "P", "Q", "R", "S")
FAMILIES = ("layer strings", "accelerator JSON/YAML", "mapping JSON", "ONNX files", "naas-train", "other CLI")
OUTCOMES = ("clean error", "traceback", "hang", "wrong success (exit 0)", "unclear error")
#: Default cases per family (scaled by --scale; naas-train is fixed: each run loads torch and Lightning).
DEFAULT_N = {"layer strings": 130, "accelerator JSON/YAML": 160, "mapping JSON": 90, "ONNX files": 50,
             "other CLI": 45}


@dataclass
class Case:
    family: str
    argv: list[str]
    names: list[str] = field(default_factory=list)  # what the error line must contain
    cwd: Path | None = None
    valid: bool = False  # an extreme but valid input: must succeed (exit 0) without a hang
    label: str = ""
    check: object = None  # callable() -> str | None: a problem found after the run (e.g. a node replaced)


def hw(*args: object) -> list[str]:
    return [str(BIN / "naas-hw"), *map(str, args)]


def train(*args: object) -> list[str]:
    return [str(BIN / "naas-train"), *map(str, args)]


# --- generators -------------------------------------------------------------------------------------------
BAD_INT_TEXT = ["", "1.5", "16.0", "1e3", "0x10", "1_000", "\u0663", "true", "none", "2**4", "NaN", "inf", "-inf",
                "+", "--1", "1 2", "12abc", "\u00b2", "\uff11", "1/2", "(3)", "'4'", "[4]", "0", "-1", "-7",
                "16777217", "2147483647", "2147483648", "9223372036854775808", "1" + "0" * 30, "1e20", "4.0"]


def layer_cases(rng: random.Random, n: int) -> list[Case]:
    ev = ["--accelerator", "eyeriss"]
    cases = [
        Case("layer strings", hw("evaluate", "--layer", "K=2147483647,C=1", *ev), ["Layer.K"]),
        Case("layer strings", hw("evaluate", "--layer", "K=2147483647,C=1", *ev, "--search"), ["Layer.K"]),
        Case("layer strings", hw("evaluate", "--layer", "K=2147483647,C=1", *ev, "--dataflow", "rs"), ["Layer.K"]),
        Case("layer strings", hw("cosearch", "--layer", "K=2147483647,C=1", "--budget", "eyeriss", "--no-progress"),
             ["Layer.K"]),
        Case("layer strings", hw("evaluate", "--layer", "K=4,C=4,K=8", *ev), ["Layer.K", "twice"]),
        Case("layer strings", hw("evaluate", "--layer", "K=4,C=4,stride=1e20", *ev), ["stride"]),
        Case("layer strings", hw("evaluate", "--layer", "K=4,C=4,stride=100000000000000000000", *ev), ["stride"]),
        Case("layer strings", hw("evaluate", "--layer", "K=16777216,C=16777216,P=16777216", *ev), ["MACs"]),
    ]
    while len(cases) < n:
        fields = {"K": "4", "C": "3"}
        for d in ("P", "Q", "R", "S", "N", "G"):
            if rng.random() < 0.4:
                fields[d] = str(rng.randint(1, 7))
        kind = rng.choice(["value"] * 5 + ["dup", "unknown", "missing", "item", "pair"])
        names: list[str]
        if kind == "value":
            key = rng.choice([*DIMS, "stride", "dilation", "count"])
            value = rng.choice(BAD_INT_TEXT + [str(rng.randint(2**24 + 1, 2**90)), str(-rng.randint(0, 2**40)),
                                               repr(rng.uniform(-1e6, 1e6))])
            if key in ("stride", "dilation") and value in ("16777217", "2147483647"):
                value = "65537"
            if key == "count" and value in ("16777217",):
                value = str(2**32 + 1)
            fields[key] = value
            names = [key]
        elif kind == "pair":
            key = rng.choice(["stride", "dilation"])
            fields[key] = rng.choice(["0x1", "1x65537", "2x-1", "1x1x1", "2.0x1", "x3", "99999999999999999999x1"])
            names = [key]
        elif kind == "dup":
            key = rng.choice([*DIMS, "stride", "count", "name"])
            fields_txt = ",".join(f"{k}={v}" for k, v in fields.items())
            cases.append(Case("layer strings", hw("evaluate", "--layer", f"{fields_txt},{key}=2,{key}=3", *ev),
                              [key, "twice"]))
            continue
        elif kind == "unknown":
            key = "".join(rng.choice("ABDEFHIJLMOTUVWXYZ_abxyz") for _ in range(rng.randint(1, 4)))
            fields[key] = "2"
            names = [repr(key)]
        elif kind == "missing":
            fields.pop(rng.choice(["K", "C"]))
            names = ["needs at least K and C"]
        else:
            spec = ",".join(f"{k}={v}" for k, v in fields.items()) + "," + rng.choice(["K", "4", "K:4", "x y"])
            cases.append(Case("layer strings", hw("evaluate", "--layer", spec, *ev), ["KEY=VALUE"]))
            continue
        spec = ",".join(f"{k}={v}" for k, v in fields.items())
        sub = rng.random()
        if sub < 0.15:
            argv = hw("cosearch", "--layer", spec, "--budget", "eyeriss", "--no-progress")
        elif sub < 0.3:
            argv = hw("evaluate", "--layer", spec, *ev, "--search", "--mapping-budget", "50")
        else:
            argv = hw("evaluate", "--layer", spec, *ev, "--dataflow", rng.choice(["ws", "os", "is", "rs"]))
        cases.append(Case("layer strings", argv, names))
    return cases[:n] if n >= 8 else cases[:n]


ACCEL_BAD: dict[str, list] = {
    "l1_words": ["12", "false", 12.7, 16.0, True, None, [], {}, [64], math.inf, math.nan, -1, 0, 2**40 + 1, 2**70],
    "l2_bytes": ["12", 12.7, True, None, [], math.inf, math.nan, -1, 0, 2**40 + 1, 10**19, 10**30],
    "word_bits": ["16", 16.5, 4.0, True, None, 0, 65, 2**63, math.nan],
    "psum_bits": ["32", 32.5, False, None, 0, 65, 1000],
    "noc_bandwidth": ["16", "Infinity", True, None, 0, -1, 0.0, 1e13, 1e300, math.inf, -math.inf, math.nan, [16],
                      10**20],
    "dram_bandwidth": ["4", True, None, 0, -2, 1.5e12, math.inf, math.nan, [4]],
    "array": ["12", "12x14", 12, None, True, [], [1, 2, 3, 4], [0, 14], [12.0, 14], [12.5, 14], [True, 14],
              [65537, 1], [2**16, 2**16], [10**18, 16], [2**40, 2**40], ["12", "14"], [-1, 14], [math.inf, 1],
              [9223372036854775808, 1]],
    "connectivity": ["RC", None, [], [["R"], ["Z"]], [["R", "R"], ["P"]], [[1], ["P"]], [["R"]],
                     [["R"], ["P"], ["K"]], [[None], ["P"]], [["r"], ["P"]], ["R", "P"]],
    "systolic": ["false", "true", "False", "no", 0, 1, None, [], "", 0.0],
    "double_buffer": [["false", "false"], ["true", "true"], [0, 1], [True], [True, True, True], "true", None,
                      [None, None], True, [1.0, 0.0]],
    "l1_partition": [{"weights": 1}, [1, 2], [0, 1, 1], {"weights": 1, "inputs": 1, "outputs": 1, "x": 1},
                     "224,12,24", [1.5, 2, 3], ["1", "2", "3"], [2**41, 1, 1], [True, 1, 1], 5],
    "name": [["a"], 5, None, True, "x" * 300, {"a": 1}, 1.5],
    "energy_table": ["x", 5, None, ["accelergy45"], "", "y" * 100],
    "schema_version": [99, 2, "1", 1.0, 0, -1, True, 2**70],
}
REQUIRED = ("name", "array", "connectivity", "l2_bytes", "noc_bandwidth", "dram_bandwidth")


def _bomb(target: str, levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\n{target}: *a{levels - 1}\n"


def accelerator_cases(rng: random.Random, n: int, work: Path) -> list[Case]:
    from hwmodel.presets import PRESETS

    folder = work / "accel"
    folder.mkdir()
    cases: list[Case] = []
    eyeriss = {"schema_version": 1, **PRESETS["eyeriss"].to_dict()}

    def add(data: object, fmt: str, names: list[str], raw: str | None = None) -> None:
        path = folder / f"a{len(cases)}.{fmt}"
        if raw is not None:
            path.write_text(raw)
        elif fmt in ("yaml", "yml"):
            path.write_text(yaml.safe_dump(data, sort_keys=False))
        else:
            path.write_text(json.dumps(data))
        cases.append(Case("accelerator JSON/YAML", hw("evaluate", "--layer", "K=4,C=4", "--accelerator", path),
                          [str(path), *names]))

    # the findings
    for patch, name in [({"systolic": "false"}, "systolic"), ({"double_buffer": ["false", "false"]}, "double_buffer"),
                        ({"array": "12"}, "array"), ({"l2_bytes": 12.7}, "l2_bytes"), ({"word_bits": 16.5}, "word_bits"),
                        ({"noc_bandwidth": math.inf}, "noc_bandwidth"), ({"schema_version": 99}, "schema_version"),
                        ({"array": [10**18, 16]}, "array"), ({"array": [2**40, 2**40]}, "array"),
                        ({"array": [9223372036854775808, 1]}, "array")]:
        add({**eyeriss, **patch}, "json", [name])
    rest = {k: v for k, v in eyeriss.items() if k != "name"}
    add(None, "yaml", ["alias"], raw=_bomb("name") + yaml.safe_dump(rest))
    rest = {k: v for k, v in eyeriss.items() if k != "l2_bytes"}
    add(None, "yaml", ["alias"], raw=_bomb("l2_bytes") + yaml.safe_dump(rest))
    add(None, "yaml", ["nested"], raw="name: " + "[" * 100_000 + "]" * 100_000)
    add(None, "json", ["nested"], raw="[" * 100_000 + "]" * 100_000)
    add(None, "json", ["duplicate key", "'array'"], raw='{"array": [1], ' + json.dumps(eyeriss)[1:])
    add(None, "yaml", ["duplicate key", "'array'"], raw="array: [1]\n" + yaml.safe_dump(eyeriss))
    add(None, "yaml", ["recursive"], raw="a: &x [*x]\n" + yaml.safe_dump(eyeriss))
    add(None, "yaml", ["python/object"], raw="name: !!python/object/apply:os.system ['true']\n")
    add(None, "json", [], raw="{")
    add(None, "json", [], raw="")
    add(None, "json", [], raw="[1, 2]")
    add(None, "yaml", ["4300 digits"], raw=f"l2_bytes: {'9' * 5000}\n" + yaml.safe_dump(
        {k: v for k, v in eyeriss.items() if k != "l2_bytes"}))
    while len(cases) < n:
        preset = rng.choice(sorted(PRESETS))
        data = {"schema_version": 1, **PRESETS[preset].to_dict()}
        if data.get("l1_partition") is None:
            data.pop("l1_partition")
        kind = rng.random()
        if kind < 0.8:
            key = rng.choice(sorted(ACCEL_BAD))
            data[key] = rng.choice(ACCEL_BAD[key])
            names = [key]
        elif kind < 0.9:
            key = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(3, 10)))
            data[key] = 1
            names = [key]
        else:
            key = rng.choice(REQUIRED)
            data.pop(key)
            names = [key]
        fmt = rng.choice(["json", "yaml", "yml"])
        if rng.random() < 0.15:
            data = {"accelerator": data}
        add(data, fmt, names)
    return cases[:n]


def mapping_cases(rng: random.Random, n: int, work: Path) -> list[Case]:
    from hwmodel.layer import Layer
    from hwmodel.presets import PRESETS
    from hwmodel.templates import template_mapping

    folder = work / "map"
    folder.mkdir()
    conv = "name=conv,K=16,C=8,P=7,Q=7,R=3,S=3"
    good = template_mapping(Layer.parse(conv), PRESETS["eyeriss"], "rs").to_dict()
    cases: list[Case] = []

    def add(text: str, names: list[str]) -> None:
        path = folder / f"m{len(cases)}.json"
        path.write_text(text)
        cases.append(Case("mapping JSON", hw("evaluate", "--layer", conv, "--accelerator", "eyeriss", "--mapping",
                                             path), [str(path), *names]))

    m = json.loads(json.dumps(good))
    m["temporal"]["DRAM"]["K"] = 3**39
    add(json.dumps(m), ["temporal.DRAM.K"])
    add("[" * 100_000 + "]" * 100_000, ["nested"])
    add('{"temporal": {}, ' + json.dumps(good)[1:], ["duplicate key"])
    junk = ["2", 2.0, 2.5, True, None, 0, -1, 2**24 + 1, 3**39, 2**70, [], {}, math.inf, math.nan, "", "K"]
    while len(cases) < n:
        m = json.loads(json.dumps(good))
        kind = rng.choice(["factor"] * 4 + ["level", "dim", "order", "spatial", "top", "coverage", "padded", "nested",
                                            "layers"])
        if kind == "factor":
            d, v = rng.choice(DIMS), rng.choice(junk)
            if rng.random() < 0.3:
                m["spatial"][1][d] = v
                names = [f"spatial[1].{d}"]
            else:
                lvl = rng.choice(["DRAM", "L2", "L1"])
                m["temporal"][lvl][d] = v
                names = [f"temporal.{lvl}.{d}"]
            add(json.dumps(m), names)
        elif kind == "level":
            lvl = rng.choice(["L3", "dram", "l1", "", "DRAM "])
            m[rng.choice(["temporal", "order"])][lvl] = {}
            add(json.dumps(m), ["mapping level"])
        elif kind == "dim":
            m["temporal"]["L1"][rng.choice(["X", "k", "KK", "", "H"])] = 2
            add(json.dumps(m), ["dim"])
        elif kind == "order":
            lvl = rng.choice(["DRAM", "L2", "L1"])
            m["order"][lvl] = rng.choice([list(DIMS[:7]), [*DIMS[:7], "N"], [*DIMS, "N"], "NGKCPQRS", None,
                                          [*DIMS[:7], "Z"]])
            add(json.dumps(m), [f"order.{lvl}"])
        elif kind == "spatial":
            m["spatial"] = rng.choice([[{}, {}, {}, {}], {"K": 2}, [5], "K2"])
            add(json.dumps(m), ["spatial"])
        elif kind == "top":
            add(rng.choice(["[1]", "null", '"x"', "5", "{", "", "[]", '{"temporal": 5}', '{"x": 1}']), [])
        elif kind == "coverage":
            d = rng.choice(DIMS)
            m["temporal"]["DRAM"][d] = 2**24
            m["temporal"]["L2"][d] = 2**17
            add(json.dumps(m), [f"dim {d}"])
        elif kind == "padded":
            m["temporal"]["DRAM"] = {d: 2**20 for d in DIMS}
            add(json.dumps(m), ["padding included"])
        elif kind == "nested":
            depth = rng.randint(70, 5000)
            add("[" * depth + "]" * depth, ["nested"])
        else:
            add(json.dumps(rng.choice([
                {"layers": 5}, {"layers": [5]}, {"layers": [{"name": "conv"}]}, {"layers": [{"name": 5, "mapping": m}]},
                {"layers": [{"name": "conv", "mapping": m}, {"name": "conv", "mapping": m}]},
                {"layers": [{"name": "other", "mapping": m}]}, {"layers": [{"name": "conv", "mapping": {"x": 1}}]}])),
                [])
    return cases[:n]


def _onnx_graph(path: Path, nodes: list, inputs: dict[str, list[int]], output: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, s)
                                           for k, s in inputs.items()],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)])
    onnx.save_model(helper.make_model(graph), str(path))
    return path


def _onnx_invalid(path: Path) -> bool:
    """True when onnx itself refuses the file (it does not decode, or the full checker with shape inference
    fails): an input that must not be modelled."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model, full_check=True)
    except Exception:  # noqa: BLE001 - any refusal
        return True
    return False


def _same_layers(path: Path, original: list) -> bool:
    """True when the file still reads (in this process) as exactly the original layers: the corruption hit
    metadata only (a graph name, a doc string, unknown fields), so modelling it is right, not a wrong success."""
    from hwmodel.workloads import from_onnx

    try:
        return from_onnx(path) == original
    except Exception:  # noqa: BLE001 - refused (or worse): the run will tell
        return False


def onnx_cases(rng: random.Random, n: int, work: Path) -> list[Case]:
    """Inconsistent graphs, non-ONNX files, and corrupted copies of a good model that onnx itself refuses (it
    does not decode, or the full checker fails) and that do not still read as the original layers."""
    from onnx import helper

    from hwmodel.workloads import from_onnx

    folder = work / "onnx"
    folder.mkdir()
    good = _onnx_graph(folder / "good.onnx", [
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["y"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g"], ["z"], name="fc", transB=1)],
        {"x": [1, 4, 6, 6], "w": [8, 4, 3, 3], "g": [10, 288]}, "z").read_bytes()
    original = from_onnx(folder / "good.onnx")
    cases: list[Case] = []

    def add(path: Path, names: list[str]) -> None:
        cases.append(Case("ONNX files", hw("evaluate", "--onnx", path, "--accelerator", "eyeriss"),
                          [str(path), *names]))

    for i, (op, attrs, inputs, names) in enumerate([
        ("Conv", {"group": 3}, {"x": [1, 8, 8, 8], "w": [6, 2, 3, 3]}, ["group"]),
        ("Conv", {}, {"x": [1, 8, 8, 8], "w": [16, 4, 3, 3]}, ["input channels"]),
        ("Gemm", {}, {"a": [2, 8], "b": [4, 3]}, ["inner dims"]),
        ("MatMul", {}, {"a": [2, 5, 8], "b": [4, 3]}, []),
        ("Conv", {"strides": [0, 1]}, {"x": [1, 8, 8, 8], "w": [16, 8, 3, 3]}, []),
        ("Conv", {}, {"x": [1, 2**25, 8, 8], "w": [16, 2**25, 1, 1]}, ["Layer.C"]),
        ("Conv", {"group": 0}, {"x": [1, 8, 8, 8], "w": [16, 8, 3, 3]}, []),
        ("Conv", {}, {"x": [1, 8, 8, 8, 8], "w": [16, 8, 3, 3, 3]}, ["3-D"]),
    ]):
        node = helper.make_node(op, list(inputs), ["y"], name=f"bad{i}", **attrs)
        add(_onnx_graph(folder / f"inconsistent{i}.onnx", [node], inputs, "y"), [f"bad{i}", *names])
    for kind, blob in [("text", b"hello, not a model\n"), ("png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(200)),
                       ("empty", b""), ("random", rng.randbytes(512))]:
        path = folder / f"{kind}.onnx"
        path.write_bytes(blob)
        add(path, [])
    tries = 0
    while len(cases) < n and tries < 50 * n:
        tries += 1
        blob = bytearray(good)
        kind = rng.choice(["truncate", "truncate", "flip", "flip", "random", "prefix"])
        if kind == "truncate":
            blob = blob[: rng.randrange(len(blob))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
        elif kind == "random":
            blob = bytearray(rng.randbytes(rng.randint(1, 4096)))
        else:
            blob = bytearray(rng.randbytes(16)) + blob
        path = folder / f"{kind}{len(cases)}.onnx"
        path.write_bytes(bytes(blob))
        if _onnx_invalid(path) and not _same_layers(path, original):
            add(path, [])
        else:  # onnx accepts it, or only metadata was hit (the layers are the original's): not a bad input
            path.unlink()
    return cases[:n]


TINY_RECIPE = {
    "seed_everything": 0,
    "model": {"class_path": "naas_train.module.SupernetModule",
              "init_args": {"net": {"class_path": "supernet.OFAMobileNetV3",
                                    "init_args": {"width_mult": 0.25, "num_classes": 4}},
                            "phases": [{"name": "full", "epochs": 1, "lr": 0.05}], "kd_ratio": 0.0}},
    "data": {"class_path": "naas_train.data.SyntheticData",
             "init_args": {"resolutions": [16], "batch_size": 8, "train_size": 16, "val_size": 8, "bn_samples": 8,
                           "search_per_class": 0}},
    "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "default_root_dir": "run"},
}


def train_cases(work: Path) -> list[Case]:
    folder = work / "train"
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(TINY_RECIPE))
    typo = json.loads(json.dumps(TINY_RECIPE))
    typo["trainer"]["max_epochz"] = 3
    (folder / "typo.yaml").write_text(yaml.safe_dump(typo))
    (folder / "empty.ckpt").write_bytes(b"")
    (folder / "trunc.ckpt").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 2)
    result = {"subnet": {"r": [32]}, "space": {"class": "OFAMobileNetV3"}, "accelerator": {},
              "mappings": [{"name": "l", "dims": {}, "count": 1, "mapping": {}}],
              "metrics": {"cycles": 1.0, "energy_pj": 1.0, "edp": 1.0}, "pareto": []}
    (folder / "result.json").write_text(json.dumps(result))
    (folder / "result_bad.json").write_text("{not json")
    fit = ["fit", "--config", "recipe.yaml"]
    return [
        Case("naas-train", train(*fit, "--model.init_args.phases", "[{name: full, epochs: 0, lr: 0.05}]"),
             ["epochs"], cwd=folder),
        Case("naas-train", train("fit", "--config", "typo.yaml"), ["max_epochz"], cwd=folder),
        Case("naas-train", train("fit", "--config", "missing.yaml"), ["missing.yaml"], cwd=folder),
        Case("naas-train", train(*fit, "--data", "naas_train.data.ImageFolderData", "--data.root",
                                 "/nonexistent/images"), ["/nonexistent/images"], cwd=folder),
        Case("naas-train", train(*fit, "--ckpt_path", "trunc.ckpt"), ["trunc.ckpt"], cwd=folder),
        Case("naas-train", train(*fit, "--ckpt_path", "empty.ckpt"), ["empty.ckpt"], cwd=folder),
        Case("naas-train", train("export", "--config", "recipe.yaml", "--result", "result.json", "--checkpoint",
                                 "trunc.ckpt"), ["baselines"], cwd=folder),
        Case("naas-train", train("export", "--config", "recipe.yaml", "--result", "result_bad.json",
                                 "--checkpoint", "trunc.ckpt"), ["result_bad.json"], cwd=folder),
    ]


def other_cli_cases(rng: random.Random, n: int, work: Path) -> list[Case]:
    folder = work / "cli"
    folder.mkdir()
    ev = ["evaluate", "--layer", "K=4,C=4", "--accelerator", "eyeriss"]
    co = ["cosearch", "--layer", "K=4,C=4", "--budget", "eyeriss", "--no-progress", "--generations", "1",
          "--mapping-budget", "8", "--final-mapping-budget", "8"]
    cases: list[Case] = []

    def intact(path: Path, test) -> object:
        return lambda: None if test(os.stat(path).st_mode) else f"{path} was replaced"

    fifo = folder / "fifo"
    os.mkfifo(fifo)
    adir = folder / "adir"
    adir.mkdir()
    (adir / "keep.txt").write_text("mine")
    afile = folder / "afile"
    afile.write_text("x")
    for target, test in ((Path("/dev/null"), stat.S_ISCHR), (fifo, stat.S_ISFIFO), (adir, stat.S_ISDIR)):
        cases.append(Case("other CLI", hw(*ev, "--out", target), [str(target)], check=intact(target, test)))
    for target, test in ((Path("/dev/null"), stat.S_ISCHR), (fifo, stat.S_ISFIFO), (afile, stat.S_ISREG)):
        cases.append(Case("other CLI", hw(*co, "--out", target), ["not a folder"], check=intact(target, test)))
    cases.append(Case("other CLI", hw(*co, "--out", adir), ["not written by us"],
                      check=lambda: None if (adir / "keep.txt").read_text() == "mine" else "adir/keep.txt changed"))
    gone = folder / "new" / "out"
    cases.append(Case("other CLI", hw("cosearch", "--layer", "K=0,C=4", "--budget", "eyeriss", "--out", gone),
                      ["Layer.K"], check=lambda: f"{gone.parent} was created" if gone.parent.exists() else None))
    cases.append(Case("other CLI", hw(*ev, "--out", folder / "missing" / "r.json"), ["No such file"]))
    for flag, value in (("--resolution", "0"), ("--resolution", "100000"), ("--batch", "0"), ("--batch", "1000000")):
        cases.append(Case("other CLI", hw("evaluate", "--model", "resnet18", "--accelerator", "eyeriss", flag, value),
                          [flag]))
    for model in ("resnet9000", "", "../../etc/passwd", "fasterrcnn_resnet50_fpn"):
        cases.append(Case("other CLI", hw("evaluate", "--model", model, "--accelerator", "eyeriss"),
                          ["unknown torchvision model"]))
    for shape in ("a,b", "1,3,0,4", "99999999999,3", "-1,3", "1.5,3"):
        cases.append(Case("other CLI", hw("evaluate", "--onnx", "x.onnx", f"--input-shape={shape}",
                                          "--accelerator", "eyeriss"), ["--input-shape"]))
    for budget in ("tpu9", "", "systolic:8x8"):
        cases.append(Case("other CLI", hw("cosearch", "--layer", "K=4,C=4", "--budget", budget), ["--budget"]))
    for flag, value in (("--generations", "0"), ("--generations", "1000000"), ("--mapping-budget", "0"),
                        ("--final-mapping-budget", "100000000"), ("--seed", "-1")):
        cases.append(Case("other CLI", hw(*co, flag, value), [flag]))
    for accel in ("systolic:0x8", "systolic:9223372036854775808x1", "systolic:65536x65536", "systolic:\u0661x2",
                  "tpu9"):
        cases.append(Case("other CLI", hw("evaluate", "--layer", "K=4,C=4", "--accelerator", accel),
                          ["systolic" if "systolic" in accel else "not a preset"]))
    for flag, value in (("--mapping-budget", "1000000000000"), ("--seed", str(2**80))):
        cases.append(Case("other CLI", hw(*ev, "--search", flag, value), [flag]))
    cases.append(Case("other CLI", hw(*ev, "--ert", "e.yaml"), ["--ert"]))
    cases.append(Case("other CLI", hw(*ev, "--batch", "x"), ["--batch"]))
    rng.shuffle(cases)
    return cases[:n]


def valid_extreme_cases() -> list[Case]:
    """Extreme but valid: must finish (exit 0) within the hang limit."""
    out = []
    for flow in ("ws", "os", "is", "rs"):
        out.append(Case("valid", hw("evaluate", "--layer", "K=16777216,C=1", "--accelerator", "eyeriss", "--dataflow",
                                    flow), valid=True, label=f"K=2**24 --dataflow {flow}"))
    out.append(Case("valid", hw("evaluate", "--layer", "K=16777216,C=1", "--accelerator", "eyeriss", "--search"),
                    valid=True, label="K=2**24 --search"))
    out.append(Case("valid", hw("evaluate", "--layer", "K=16777216,C=1", "--accelerator", "systolic:256x256"),
                    valid=True, label="K=2**24 systolic:256x256"))
    out.append(Case("valid", hw("cosearch", "--layer", "K=16777216,C=1", "--budget", "eyeriss", "--no-progress",
                                "--generations", "2", "--mapping-budget", "50", "--final-mapping-budget", "50"),
                    valid=True, label="K=2**24 cosearch"))
    out.append(Case("valid", hw("evaluate", "--layer", "K=4096,C=4096,P=1024", "--accelerator", "systolic:256x256"),
                    valid=True, label="K=C=4096,P=1024 on systolic:256x256"))
    out.append(Case("valid", hw("evaluate", "--layer", "K=1,C=1,P=16777216,R=16777216", "--accelerator", "eyeriss",
                                "--dataflow", "ws"), valid=True, label="P=R=2**24 (2**48 MACs)"))
    out.append(Case("valid", hw("evaluate", "--model", "resnet18", "--resolution", "4096", "--batch", "256",
                                "--accelerator", "eyeriss", "--dataflow", "ws"),
                    valid=True, label="resnet18 at 4096 px, batch 256"))
    return out


# --- running and judging ----------------------------------------------------------------------------------
def _limits(mem_gb: float):
    def apply() -> None:
        os.setsid()
        if mem_gb > 0:
            limit = int(mem_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_once(case: Case, limit: float, mem_gb: float) -> tuple[int | None, str, str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "NO_PROXY": "*", "no_proxy": "*",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}  # no network
    env.pop("NAAS_DEBUG", None)
    start = time.perf_counter()
    proc = subprocess.Popen(case.argv, cwd=case.cwd or ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", preexec_fn=_limits(mem_gb))
    try:
        out, err = proc.communicate(timeout=limit)
        return proc.returncode, out, err, time.perf_counter() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        return None, "", "", time.perf_counter() - start


def judge(case: Case, rc: int | None, out: str, err: str) -> tuple[str, str]:
    """(outcome, detail)."""
    if rc is None:
        return "hang", ""
    lines = [line for line in err.splitlines() if line.strip()]
    if rc < 0 or "Traceback (most recent call last)" in err or rc not in (0, 2) or "internal error" in err:
        return "traceback", (lines[-1] if lines else f"exit {rc}")[:200]
    problem = case.check() if callable(case.check) else None
    if case.valid:
        return ("clean error", "") if rc == 0 and not problem else ("unclear error", f"exit {rc}: {err[-200:]}")
    if rc == 0:
        return "wrong success (exit 0)", (problem or out[:120].replace("\n", " "))
    if problem:
        return "wrong success (exit 0)", problem
    usage = bool(lines) and lines[0].startswith("usage:")
    errors = [line for line in lines if "error:" in line] if usage else lines
    if case.family == "naas-train":  # Lightning / jsonargparse may log warnings before the error line
        errors = [line for line in lines if line.startswith("naas-train: error:") or "error:" in line]
    if len(errors) != 1:
        return "unclear error", f"{len(errors)} error lines: {' | '.join(errors)[:200]}"
    missing = [name for name in case.names if name not in errors[0]]
    if missing:
        return "unclear error", f"missing {missing}: {errors[0][:200]}"
    return "clean error", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the default cases per family")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--hang-limit", type=float, default=60.0, help="seconds before a case counts as hung")
    parser.add_argument("--mem-gb", type=float, default=16.0, help="address-space limit per case (0: none)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--no-valid", action="store_true", help="skip the extreme-but-valid table")
    parser.add_argument("--json", metavar="FILE", help="also write every case and its outcome to FILE")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="naas-faults-"))
    sizes = {f: max(1, round(n * args.scale)) for f, n in DEFAULT_N.items()}
    cases: list[Case] = []
    try:
        builders = {
            "layer strings": lambda: layer_cases(rng, sizes["layer strings"]),
            "accelerator JSON/YAML": lambda: accelerator_cases(rng, sizes["accelerator JSON/YAML"], work),
            "mapping JSON": lambda: mapping_cases(rng, sizes["mapping JSON"], work),
            "ONNX files": lambda: onnx_cases(rng, sizes["ONNX files"], work),
            "naas-train": lambda: train_cases(work),
            "other CLI": lambda: other_cli_cases(rng, sizes["other CLI"], work),
        }
        for family in args.families:
            cases += builders[family]()
        if not args.no_valid:
            cases += valid_extreme_cases()
        print(f"{len(cases)} cases, {args.jobs} at a time, hang limit {args.hang_limit:g} s, work dir {work}",
              file=sys.stderr, flush=True)
        results: list[dict] = [{}] * len(cases)
        done = Counter()

        def one(i: int) -> None:
            case = cases[i]
            rc, out, err, secs = run_once(case, args.hang_limit, args.mem_gb)
            if rc is None:  # confirm a hang with a second run
                rc, out, err, secs2 = run_once(case, args.hang_limit, args.mem_gb)
                secs += secs2
            outcome, detail = judge(case, rc, out, err)
            results[i] = {"family": case.family, "argv": case.argv[1:], "rc": rc, "outcome": outcome,
                          "detail": detail, "seconds": round(secs, 2), "label": case.label,
                          "stderr_tail": err[-400:]}
            done[case.family] += 1
            if sum(done.values()) % 25 == 0:
                print(f"  {sum(done.values())}/{len(cases)}", file=sys.stderr, flush=True)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(one, range(len(cases))))
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        if r["family"] != "valid":
            table[r["family"]][r["outcome"]] += 1
    print("| family | n | " + " | ".join(OUTCOMES) + " |")
    print("|---|---|" + "---|" * len(OUTCOMES))
    total = Counter()
    for family in args.families:
        row = table[family]
        total.update(row)
        print(f"| {family} | {sum(row.values())} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
    print(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    valid = [r for r in results if r["family"] == "valid"]
    if valid:
        print("\nextreme but valid inputs (must succeed within the hang limit):")
        print("| input | outcome | seconds |")
        print("|---|---|---|")
        for r in valid:
            outcome = "ok (exit 0)" if r["outcome"] == "clean error" else r["outcome"]
            print(f"| {r['label']} | {outcome} | {r['seconds']:.1f} |")
    bad = [r for r in results if r["outcome"] != "clean error"]
    if bad:
        print("\nnot clean:")
        for r in bad:
            print(f"- [{r['family']}] {r['outcome']}: {' '.join(map(str, r['argv']))[:160]} -> {r['detail'][:200]}")
    print(f"\nwall time {wall:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
