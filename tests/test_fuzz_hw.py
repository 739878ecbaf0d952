"""Hostile input for ``naas-hw`` / ``hwmodel`` (issue 15), fuzzed with hypothesis and generated files.

Families: layer strings, accelerator JSON/YAML, mapping JSON, ONNX bytes, other CLI arguments, and the fault
cases (``--out`` onto a device node, a FIFO, a folder; ``cosearch --out`` whole or nothing). Every invalid case
must end ``naas-hw`` with exit status 2 and one stderr line that names the field (and the file, when there is
one), without a traceback; never exit 0. Most cases run in-process (``hwmodel.cli.main``); a few run in a
subprocess under a timeout to prove there is no hang (a 2**24 dim, a YAML alias bomb, a mapping nested 100,000
deep). At least 1,000 cases per run (:func:`test_zz_case_count`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import re
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.cli import main
from hwmodel.layer import DIMS
from hwmodel.templates import (
    DATAFLOWS,
    _choose_axis,
    no_waste_values,
    template_mapping,
)
from hwmodel.validate import MAX_AXIS, MAX_DIM, MAX_STRIDE, MAX_WORK

ROOT = Path(__file__).resolve().parents[1]
CASES: Counter[str] = Counter()
FAMILIES = ("layer strings", "accelerator JSON/YAML", "mapping JSON", "ONNX files", "other CLI", "bounded")


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def assert_clean(rc: int, out: str, err: str, *names: str, usage: bool = False) -> str:
    """Exit 2, no traceback, nothing on stdout, one error line (argparse usage errors: the usage lines, then one
    error line) naming every one of ``names``; returns that line."""
    assert rc == 2, f"exit {rc} (wanted 2): {err[-500:]!r}"
    assert "Traceback" not in err, err
    assert not out.strip(), out[:300]
    lines = [line for line in err.splitlines() if line.strip()]
    if usage:
        assert lines and lines[-1].startswith("naas-hw"), err
    else:
        assert len(lines) == 1 and lines[0].startswith("naas-hw "), err
    line = lines[-1]
    for name in names:
        assert name in line, f"{name!r} not in {line!r}"
    return line


# --- layer strings ----------------------------------------------------------------------------------------
VALID_DIMS = {"K": 4, "C": 3, "P": 5, "Q": 5, "R": 3, "S": 3, "N": 1, "G": 1}
BAD_INT_TEXT = ["", "1.5", "16.0", "1e3", "0x10", "1_000", "\u0663", "true", "none", "2**4", "NaN", "inf",
                "-inf", "+", "--1", "1 2", "12abc", "\u00b2", "\uff11", "1/2", "(3)", "'4'", "[4]"]


def _bad_value(key: str) -> st.SearchStrategy[str]:
    hi = MAX_STRIDE if key in ("stride", "dilation") else 2**32 if key == "count" else MAX_DIM
    text = st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), max_size=6)
    return st.one_of(
        st.sampled_from(BAD_INT_TEXT),
        st.integers(hi + 1, 2**200).map(str),
        st.integers(-(2**70), 0).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        text.filter(lambda t: not re.fullmatch(r"\s*[+-]?[0-9]+\s*", t)
                    and not re.fullmatch(r"\s*[0-9]+x[0-9]+\s*", t)),
    )


@st.composite
def bad_layer_specs(draw) -> tuple[str, list[str]]:
    """A layer string that must be refused, and what the error line must name."""
    fields = {k: str(v) for k, v in VALID_DIMS.items() if k in ("K", "C") or draw(st.booleans())}
    kind = draw(st.sampled_from(["value", "value", "value", "dup", "unknown", "missing", "item", "work", "pair"]))
    if kind == "value":
        key = draw(st.sampled_from([*DIMS, "stride", "dilation", "count"]))
        fields[key] = draw(_bad_value(key))
        return ",".join(f"{k}={v}" for k, v in fields.items()), [key]
    if kind == "pair":
        key = draw(st.sampled_from(["stride", "dilation"]))
        a, b = draw(st.sampled_from([("0", "1"), ("1", "65537"), ("2", "-1"), ("1", "1x1"), ("2.0", "1"),
                                     ("", "3"), ("99999999999999999999", "1")]))
        fields[key] = f"{a}x{b}"
        return ",".join(f"{k}={v}" for k, v in fields.items()), [key]
    if kind == "dup":
        key = draw(st.sampled_from([*DIMS, "stride", "count", "name"]))
        spec = ",".join(f"{k}={v}" for k, v in fields.items())
        return f"{spec},{key}=2,{key}={draw(st.integers(1, 9))}", [key, "twice"]
    if kind == "unknown":
        key = draw(st.text(alphabet="ABDEFHIJLMOTUVWXYZabcdefxyz_", min_size=1, max_size=5).filter(
            lambda k: k not in ("name", "count", "stride", "dilation")))
        return ",".join(f"{k}={v}" for k, v in fields.items()) + f",{key}=2", [repr(key)]
    if kind == "missing":
        drop = draw(st.sampled_from(["K", "C"]))
        return ",".join(f"{k}={v}" for k, v in fields.items() if k != drop), ["needs at least K and C"]
    if kind == "item":
        junk = draw(st.text(alphabet="abcKC12 .-", min_size=1, max_size=6).filter(lambda t: t.strip() and "=" not in t))
        return ",".join(f"{k}={v}" for k, v in fields.items()) + f",{junk}", ["KEY=VALUE"]
    big = {"K": 2**24, "C": 2**24, "P": 2 ** draw(st.integers(1, 24))}
    return ",".join(f"{k}={v}" for k, v in big.items()), ["MACs", str(MAX_WORK)]


@fuzz(260)
@given(case=bad_layer_specs())
def test_bad_layer_strings(case):
    spec, names = case
    CASES["layer strings"] += 1
    with pytest.raises(ValueError) as info:
        hw.Layer.parse(spec)
    assert "\n" not in str(info.value)
    rc, out, err = cli("evaluate", "--layer", spec, "--accelerator", "eyeriss")
    line = assert_clean(rc, out, err)
    for name in names:
        if name in (*DIMS, "stride", "dilation", "count", "name"):  # the key, as Layer.K or "layer dim K"
            assert f"Layer.{name}" in line or f"layer dim {name}" in line, line
        else:
            assert name in line, line


@fuzz(120)
@given(dims=st.fixed_dictionaries({d: st.integers(1, 64) for d in DIMS}),
       stride=st.tuples(st.integers(1, 64), st.integers(1, 64)),
       count=st.integers(1, 2**32))
def test_valid_layer_strings_are_read_exactly(dims, stride, count):
    """No wrong success the other way: what is accepted is exactly what was written (nothing truncated)."""
    CASES["layer strings"] += 1
    spec = ",".join(f"{k}={v}" for k, v in dims.items()) + f",stride={stride[0]}x{stride[1]},count={count}"
    layer = hw.Layer.parse(spec)
    assert layer.dims == dims and layer.stride == stride and layer.count == count


# --- accelerator JSON / YAML --------------------------------------------------------------------------------
INT_JUNK = ["12", "64", "false", 12.7, 16.0, 16.5, True, False, None, [], {}, [64], math.inf, math.nan, -1, 0]
BAD_FIELDS: dict[str, list] = {
    "l1_words": [*INT_JUNK, 2**40 + 1, 2**70, 10**30],
    "l2_bytes": [*INT_JUNK, 2**40 + 1, 2**70, 10**19],
    "word_bits": [*INT_JUNK, 65, 2**63, 4.0],
    "psum_bits": [*INT_JUNK, 65, 1000],
    "noc_bandwidth": ["16", "Infinity", True, False, None, 0, -1, 0.0, -0.5, 1e13, 1e300, math.inf, -math.inf,
                      math.nan, [16], {}, 10**20],
    "dram_bandwidth": ["4", True, None, 0, -2, 1e12 * 1.5, math.inf, math.nan, [4], 10**400 // 10**380],
    "array": ["12", "12x14", 12, None, True, [], [1, 2, 3, 4], [0, 14], [12.0, 14], [12.5, 14], [True, 14],
              [65537, 1], [2**16, 2**16], [10**18, 16], ["12", "14"], [-1, 14], [math.inf, 1], [[12], [14]],
              {"rows": 12}],
    "connectivity": ["RC", None, [], [["R"], ["Z"]], [["R", "R"], ["P"]], [[1], ["P"]], [["R"]],
                     [["R"], ["P"], ["K"]], [[None], ["P"]], [{"R": 1}, ["P"]], [["r"], ["P"]], ["R", "P"]],
    "systolic": ["false", "true", "False", "no", "yes", 0, 1, None, [], {}, "", 0.0],
    "double_buffer": [["false", "false"], ["true", "true"], [0, 1], [True], [True, True, True], "true", None,
                      [None, None], True, [1.0, 0.0], {"l1": True, "l2": True}],
    "l1_partition": [{"weights": 1}, [1, 2], [0, 1, 1], {"weights": 1, "inputs": 1, "outputs": 1, "x": 1},
                     "224,12,24", [1.5, 2, 3], ["1", "2", "3"], [2**41, 1, 1], [True, 1, 1], 5,
                     {"weights": -1, "inputs": 1, "outputs": 1}],
    "name": [["a"], 5, None, True, "x" * 300, {"a": 1}, 1.5],
    "energy_table": ["x", 5, None, ["accelergy45"], "", "y" * 100, True],
    "schema_version": [99, 2, "1", 1.0, 0, -1, True, [1], 2**70],
}
REQUIRED = ("name", "array", "connectivity", "l2_bytes", "noc_bandwidth", "dram_bandwidth")


@st.composite
def bad_accelerators(draw) -> tuple[dict, str, str]:
    """(spec, format, a field the error line must name)."""
    preset = draw(st.sampled_from(sorted(hw.PRESETS)))
    data = {"schema_version": 1, **hw.PRESETS[preset].to_dict()}
    if data.get("l1_partition") is not None and draw(st.booleans()):
        data.pop("l1_words")
    if data.get("l1_partition") is None:
        data.pop("l1_partition", None)
    kind = draw(st.sampled_from(["field"] * 8 + ["unknown", "missing", "l1_mismatch"]))
    if kind == "field":
        field = draw(st.sampled_from(sorted(BAD_FIELDS)))
        value = draw(st.sampled_from(BAD_FIELDS[field]))
        if field == "l1_partition" and value == [0, 1, 1]:
            pass
        data[field] = value
        name = field
    elif kind == "unknown":
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12).filter(
            lambda k: k not in data and k not in BAD_FIELDS and k != "accelerator"))
        data[name] = draw(st.sampled_from([1, "x", None, [1], {"a": 1}]))
    elif kind == "missing":
        name = draw(st.sampled_from(REQUIRED))
        data.pop(name)
    else:
        data["l1_words"] = 7
        data["l1_partition"] = {"weights": 1, "inputs": 2, "outputs": 3}
        name = "l1_partition"
    fmt = draw(st.sampled_from(["json", "yaml", "yml", "wrapped-json"]))
    return data, fmt, name


def _write_spec(path: Path, data, fmt: str) -> Path:
    if fmt.startswith("wrapped"):
        data = {"accelerator": data}
    if fmt in ("yaml", "yml"):
        path = path.with_suffix(f".{fmt}")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        path = path.with_suffix(".json")
        path.write_text(json.dumps(data))  # NaN / Infinity written as JSON's extensions
    return path


@fuzz(320)
@given(case=bad_accelerators(), n=st.integers(0, 10**9))
def test_bad_accelerator_files(case, n, tmp_path_factory):
    data, fmt, field = case
    CASES["accelerator JSON/YAML"] += 1
    path = _write_spec(tmp_path_factory.getbasetemp() / f"acc{n}", data, fmt)
    rc, out, err = cli("evaluate", "--layer", "K=4,C=4", "--accelerator", str(path))
    assert_clean(rc, out, err, str(path), field)


def test_accelerator_examples_from_the_issue(tmp_path):
    """The wrong successes the campaign found are refused, naming the field."""
    eyeriss = {"schema_version": 1, **hw.PRESETS["eyeriss"].to_dict()}
    for patch, field in [({"systolic": "false"}, "systolic"), ({"double_buffer": ["false", "false"]}, "double_buffer"),
                         ({"array": "12"}, "array"), ({"l2_bytes": 12.7}, "l2_bytes"), ({"word_bits": 16.5}, "word_bits"),
                         ({"noc_bandwidth": math.inf}, "noc_bandwidth"), ({"schema_version": 99}, "newer"),
                         ({"array": [10**18, 16]}, "array"), ({"array": [2**40, 2**40]}, "array")]:
        CASES["accelerator JSON/YAML"] += 1
        path = _write_spec(tmp_path / field, {**eyeriss, **patch}, "json")
        rc, out, err = cli("evaluate", "--layer", "K=4,C=4", "--accelerator", str(path))
        assert_clean(rc, out, err, str(path), field)


# --- mapping JSON ---------------------------------------------------------------------------------------
CONV = "name=conv,K=16,C=8,P=7,Q=7,R=3,S=3"
FACTOR_JUNK = ["2", 2.0, 2.5, True, None, 0, -1, 2**24 + 1, 3**39, 2**70, [], {}, math.inf, math.nan, "", "K"]


def _good_mapping() -> dict:
    return template_mapping(hw.Layer.parse(CONV), hw.PRESETS["eyeriss"], "rs").to_dict()


@st.composite
def bad_mappings(draw) -> tuple[str, list[str]]:
    """(file text, what the error line must name)."""
    m = _good_mapping()
    kind = draw(st.sampled_from(["factor"] * 4 + ["level", "dim", "order", "spatial", "top", "coverage", "padded",
                                                   "nested", "dup", "layers"]))
    if kind == "factor":
        where = draw(st.sampled_from(["DRAM", "L2", "L1", "spatial"]))
        d = draw(st.sampled_from(DIMS))
        v = draw(st.sampled_from(FACTOR_JUNK))
        if where == "spatial":
            m["spatial"][1][d] = v
            path = f"spatial[1].{d}"
        else:
            m["temporal"][where][d] = v
            path = f"temporal.{where}.{d}"
        return json.dumps(m), [path]
    if kind == "level":
        lvl = draw(st.sampled_from(["L3", "dram", "l1", "", "DRAM "]))
        m[draw(st.sampled_from(["temporal", "order"]))][lvl] = {} if draw(st.booleans()) else []
        return json.dumps(m), ["mapping level", repr(lvl)]
    if kind == "dim":
        d = draw(st.sampled_from(["X", "k", "KK", "", "H", "W"]))
        m["temporal"]["L1"][d] = 2
        return json.dumps(m), ["dim", repr(d)]
    if kind == "order":
        lvl = draw(st.sampled_from(["DRAM", "L2", "L1"]))
        bad = draw(st.sampled_from([list(DIMS[:7]), [*DIMS[:7], "N"], [*DIMS, "N"], "NGKCPQRS", None,
                                    [*DIMS[:7], "Z"], [*DIMS[:7], 0]]))
        m["order"][lvl] = bad
        return json.dumps(m), [f"order.{lvl}"]
    if kind == "spatial":
        bad = draw(st.sampled_from([[{}, {}, {}, {}], {"K": 2}, [5], "K2", [[{"K": 2}]]]))
        m["spatial"] = bad
        return json.dumps(m), ["spatial"]
    if kind == "top":
        text = draw(st.sampled_from(["[1]", "null", '"x"', "5", "{", "", "[]", '{"temporal": 5}', '{"x": 1}']))
        return text, []
    if kind == "coverage":
        d = draw(st.sampled_from(DIMS))
        m["temporal"]["DRAM"][d] = 2**24
        m["temporal"]["L2"][d] = 2**17
        return json.dumps(m), [f"dim {d}", "2**40"]
    if kind == "padded":
        m["temporal"]["DRAM"] = {d: 2**20 for d in DIMS}
        return json.dumps(m), ["padding included", "2**56"]
    if kind == "nested":
        depth = draw(st.integers(70, 3000))
        return "[" * depth + "]" * depth, ["nested"]
    if kind == "dup":
        key = draw(st.sampled_from(["temporal", "order", "spatial"]))
        body = json.dumps(m)[1:]
        return f'{{"{key}": {{}}, {body}', ["duplicate key", repr(key)]
    bad_layers = draw(st.sampled_from([
        {"layers": 5}, {"layers": [5]}, {"layers": [{"name": "conv"}]}, {"layers": [{"mapping": m}]},
        {"layers": [{"name": 5, "mapping": m}]}, {"layers": [{"name": "conv", "mapping": m}, {"name": "conv", "mapping": m}]},
        {"layers": [{"name": "other", "mapping": m}]}, {"layers": [{"name": "conv", "mapping": {"x": 1}}]},
    ]))
    return json.dumps(bad_layers), []


@fuzz(200)
@given(case=bad_mappings(), n=st.integers(0, 10**9))
def test_bad_mapping_files(case, n, tmp_path_factory):
    text, names = case
    CASES["mapping JSON"] += 1
    path = tmp_path_factory.getbasetemp() / f"map{n}.json"
    path.write_text(text)
    rc, out, err = cli("evaluate", "--layer", CONV, "--accelerator", "eyeriss", "--mapping", str(path))
    line = assert_clean(rc, out, err, *names)
    assert str(path) in line or "no entry for layer" in line, line


# --- ONNX files -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[1, 1], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["y"], ["f"], name="flat"),
         helper.make_node("Gemm", ["f", "g"], ["z"], name="fc", transB=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 4, 3, 3]),
         helper.make_tensor_value_info("g", TensorProto.FLOAT, [10, 288])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    path = tmp_path_factory.mktemp("onnx") / "good.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    from hwmodel.workloads import from_onnx

    assert len(from_onnx(path)) == 2
    return path.read_bytes()


@fuzz(130)
@given(data=st.data(), n=st.integers(0, 10**9))
def test_corrupt_onnx_files(good_onnx, data, n, tmp_path_factory):
    """Truncated, flipped, random, text, PNG, empty, prefixed files: exit 2 naming the file, or (a corruption
    that still decodes to a consistent graph) a normal report; never a traceback."""
    CASES["ONNX files"] += 1
    kind = data.draw(st.sampled_from(["truncate", "truncate", "flip", "flip", "random", "text", "png", "empty",
                                      "prefix"]))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    blob = bytearray(good_onnx)
    if kind == "truncate":
        blob = blob[: rng.randrange(len(blob))]
    elif kind == "flip":
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
    elif kind == "random":
        blob = bytearray(rng.randbytes(rng.randint(1, 2048)))
    elif kind == "text":
        blob = bytearray(data.draw(st.text(max_size=200)).encode())
    elif kind == "png":
        blob = bytearray(b"\x89PNG\r\n\x1a\n" + rng.randbytes(200))
    elif kind == "empty":
        blob = bytearray()
    else:
        blob = bytearray(rng.randbytes(16)) + blob
    path = tmp_path_factory.getbasetemp() / f"bad{n}.onnx"
    path.write_bytes(bytes(blob))
    rc, out, err = cli("evaluate", "--onnx", str(path), "--accelerator", "eyeriss", "--json")
    if rc == 0:
        assert kind in ("truncate", "flip", "prefix"), f"{kind} file accepted"
        assert json.loads(out)["layers"]
        return
    assert_clean(rc, out, err, str(path))


@pytest.mark.parametrize(("op", "attrs", "inputs"), [
    ("Conv", {"group": 3}, {"x": [1, 8, 8, 8], "w": [6, 2, 3, 3]}),
    ("Conv", {}, {"x": [1, 8, 8, 8], "w": [16, 4, 3, 3]}),
    ("Gemm", {}, {"a": [2, 8], "b": [4, 3]}),
    ("Conv", {"strides": [0, 1]}, {"x": [1, 8, 8, 8], "w": [16, 8, 3, 3]}),
    ("Conv", {"strides": [1, 1, 1]}, {"x": [1, 8, 8, 8], "w": [16, 8, 3, 3]}),
    ("MatMul", {}, {"a": [], "b": [4, 3]}),
    ("Conv", {}, {"x": [1, 2**25, 8, 8], "w": [16, 2**25, 1, 1]}),
])
def test_inconsistent_onnx_graphs_name_the_node(tmp_path, op, attrs, inputs):
    import onnx
    from onnx import TensorProto, helper

    CASES["ONNX files"] += 1
    node = helper.make_node(op, list(inputs), ["y"], name=f"bad_{op.lower()}", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(k, TensorProto.FLOAT, s)
                                            for k, s in inputs.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    path = tmp_path / "g.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    rc, out, err = cli("evaluate", "--onnx", str(path), "--accelerator", "eyeriss")
    assert_clean(rc, out, err, str(path))


# --- other CLI arguments ----------------------------------------------------------------------------------
def _other_cli_cases() -> list[tuple[list[str], list[str], bool]]:
    """(argv, names the error line must hold, argparse usage error)."""
    ev = ["evaluate", "--layer", "K=4,C=4", "--accelerator", "eyeriss"]
    co = ["cosearch", "--layer", "K=4,C=4", "--budget", "eyeriss", "--no-progress"]
    cases: list[tuple[list[str], list[str], bool]] = []
    for flag, values in (("--resolution", ["0", "-5", "100000", "2147483648"]), ("--batch", ["0", "-1", "70000"])):
        for v in values:
            cases.append((["evaluate", "--model", "resnet18", "--accelerator", "eyeriss", flag, v], [flag], False))
    for v in ("x", "1.5", "1e3", ""):
        cases.append((["evaluate", "--model", "resnet18", "--accelerator", "eyeriss", "--batch", v], ["--batch"], True))
    for shape in (" ", "a,b", "1,3,0,4", "1,3,224,224,1,1,1,1,1", "99999999999,3", "1;3", "-1,3", "1.5,3"):
        cases.append((["evaluate", "--onnx", "x.onnx", f"--input-shape={shape}", "--accelerator", "eyeriss"],
                      ["--input-shape"], False))
    for v in ("0", "-3", "10000001", str(2**63)):
        cases.append(([*ev, "--search", "--mapping-budget", v], ["--mapping-budget"], False))
    for v in ("-1", str(2**32), str(2**80)):
        cases.append(([*ev, "--search", "--seed", v], ["--seed"], False))
    for flag, v in (("--generations", "0"), ("--generations", "10001"), ("--mapping-budget", "0"),
                    ("--final-mapping-budget", "0"), ("--final-mapping-budget", "1000001"), ("--seed", "-1")):
        cases.append(([*co, flag, v], [flag], False))
    for budget in ("tpu9", "", "systolic:8x8", "x" * 500):
        cases.append((["cosearch", "--layer", "K=4,C=4", "--budget", budget], ["--budget"], False))
    for accel in ("tpu9", "", "systolic:0x8", "systolic:9223372036854775808x1", "systolic:1x1x1", "systolic:-1x2",
                  "systolic:65537x1", "systolic:65536x65536", "systolic:\u0661x2", "/nonexistent/a.json", "a" * 300):
        cases.append((["evaluate", "--layer", "K=4,C=4", "--accelerator", accel], ["systolic" if "systolic" in accel
                                                                                   else "not a preset"], False))
    for model in ("resnet9000", "", "../../etc/passwd", "fasterrcnn_resnet50_fpn", "x" * 200):
        cases.append((["evaluate", "--model", model, "--accelerator", "eyeriss"], ["unknown torchvision model"],
                      False))
    cases.append(([*ev, "--ert", "e.yaml"], ["--ert"], False))
    cases.append(([*ev, "--seed", "1"], ["--seed"], False))
    cases.append((["evaluate", "--timeloop", "/nonexistent/a.yaml", "/nonexistent/p.yaml"], [], False))
    cases.append((["evaluate", "--layer", "K=2,C=2,name=a", "--layer", "K=4,C=2,name=a", "--accelerator", "eyeriss"],
                  ["used twice"], False))
    return cases


@pytest.mark.parametrize(("argv", "names", "usage"), _other_cli_cases())
def test_bad_cli_arguments(argv, names, usage):
    CASES["other CLI"] += 1
    rc, out, err = cli(*argv)
    assert_clean(rc, out, err, *names, usage=usage)


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_out_never_destroys(tmp_path):
    """``evaluate --out`` onto /dev/null, a FIFO or a folder is refused (exit 2, one line) and the node is left as
    it was; a missing folder is named; the report lands whole when the target is a file."""
    ev = ["evaluate", "--layer", "K=4,C=4", "--accelerator", "eyeriss"]
    fifo = _fifo(tmp_path / "fifo")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    targets = [(Path("/dev/null"), stat.S_ISCHR), (fifo, stat.S_ISFIFO), (folder, stat.S_ISDIR)]
    link = tmp_path / "link"
    link.symlink_to(fifo)
    targets.append((link, stat.S_ISFIFO))
    for target, kind in targets:
        CASES["other CLI"] += 1
        rc, out, err = cli(*ev, "--out", str(target))
        assert_clean(rc, out, err, str(target), "refusing")
        assert kind(os.stat(target).st_mode), target
    assert (folder / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "folder", "link"]  # no temporaries left
    CASES["other CLI"] += 1
    rc, out, err = cli(*ev, "--out", str(tmp_path / "missing" / "r.json"))
    assert_clean(rc, out, err, "No such file")
    CASES["other CLI"] += 1
    existing = tmp_path / "r.json"
    existing.write_text("old")
    rc, out, err = cli(*ev, "--json", "--out", str(existing))
    assert rc == 0, err
    assert json.loads(existing.read_text()) == json.loads(out)


def test_cosearch_out_refusals_and_no_empty_folder(tmp_path):
    co = ["cosearch", "--budget", "eyeriss", "--no-progress", "--generations", "1", "--mapping-budget", "8",
          "--final-mapping-budget", "8"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    fifo = _fifo(tmp_path / "fifo")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for target, names in ((foreign, ["not written by us"]), (fifo, ["not a folder"]),
                          (afile, ["not a folder"]), (Path("/dev/null"), ["not a folder"])):
        CASES["other CLI"] += 1
        rc, out, err = cli(*co, "--layer", "K=4,C=4", "--out", str(target))
        assert_clean(rc, out, err, *names)
    assert (foreign / "notes.txt").read_text() == "mine" and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert afile.read_text() == "x"
    for spec in ("K=0,C=4", "K=4,C=4,K=5", "K=1e3,C=4"):  # a bad --layer leaves no --out folder behind
        CASES["other CLI"] += 1
        out_dir = tmp_path / "new" / "out"
        rc, out, err = cli(*co, "--layer", spec, "--out", str(out_dir))
        assert_clean(rc, out, err, "Layer.K" if "1e3" not in spec else "layer dim K")
        assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        CASES["other CLI"] += 1
        rc, out, err = cli("evaluate", "--layer", "K=4,C=4", "--accelerator", "eyeriss", "--out",
                           str(locked / "r.json"))
        assert_clean(rc, out, err, "Permission denied")
    finally:
        locked.chmod(0o700)


# --- bounded algorithms and extreme-but-valid input ------------------------------------------------------
@fuzz(150)
@given(rem=st.integers(1, 5000), limit=st.integers(1, 6000))
def test_no_waste_values_match_the_definition(rem, limit):
    CASES["bounded"] += 1
    want = sorted({1} | {-(-rem // j) for j in range(1, rem + 1) if -(-rem // j) <= limit})
    assert no_waste_values(rem, limit) == want


def test_huge_dims_are_fast():
    """Templates never loop once per unit of a dim: a 2**24 dim maps in well under a second per dataflow, on a
    small and on the largest array."""
    layers = [hw.Layer(K=2**24, C=1), hw.Layer(K=1, C=2**24), hw.Layer(K=2**12, C=2**12, P=2**10),
              hw.Layer(K=1, C=1, G=2**24)]
    big = hw.Accelerator(name="big", array=(MAX_AXIS, 256), connectivity=(DIMS, DIMS), l1_words=1024,
                         l2_bytes=2**32, noc_bandwidth=1e6, dram_bandwidth=1e6)
    for accel in (hw.PRESETS["eyeriss"], big):
        for layer in layers:
            for flow in DATAFLOWS:
                CASES["bounded"] += 1
                start = time.perf_counter()
                try:
                    template_mapping(layer, accel, flow)
                except ValueError as exc:
                    assert "l2_bytes" in str(exc) or "l1_words" in str(exc)
                assert time.perf_counter() - start < 5, (layer, accel.name, flow)
    start = time.perf_counter()
    _choose_axis(list(range(8)), __import__("numpy").array([2**24] * 8), MAX_AXIS)
    assert time.perf_counter() - start < 5


@st.composite
def extreme_layers(draw) -> hw.Layer:
    while True:
        dims = {d: draw(st.sampled_from([1, 2, 3, 7, 64, 1000, 2**12, 2**16, 2**20, MAX_DIM])) for d in DIMS}
        stride = draw(st.sampled_from([1, 2, 1000, MAX_STRIDE]))
        try:
            return hw.Layer(**dims, stride=stride, dilation=draw(st.sampled_from([1, 3, MAX_STRIDE])))
        except ValueError as exc:
            assert "2**48" in str(exc)


@fuzz(40)
@given(layer=extreme_layers(), flow=st.sampled_from(list(DATAFLOWS)),
       accel=st.sampled_from(["eyeriss", "edgetpu", "systolic:4096x4096", "huge", "tiny"]))
def test_extreme_valid_input_gives_sane_figures(layer, flow, accel):
    """Within the bounds nothing overflows: positive finite cycles and energy, utilization in (0, 1], or a
    ValueError naming the buffer to raise."""
    CASES["bounded"] += 1
    acc = {
        "huge": hw.Accelerator(name="huge", array=(4096, 4096), connectivity=(DIMS, DIMS), l1_words=2**40,
                               l2_bytes=2**40, noc_bandwidth=1e12, dram_bandwidth=1e12, word_bits=64, psum_bits=64),
        "tiny": hw.Accelerator(name="tiny", array=(1,), connectivity=(("K",),), l1_words=2**20, l2_bytes=2**30,
                               noc_bandwidth=1e-9, dram_bandwidth=1e-9, word_bits=1, psum_bits=1),
    }.get(accel) or hw.load_accelerator(accel)
    try:
        mapping = template_mapping(layer, acc, flow)
    except ValueError as exc:
        assert "l2_bytes" in str(exc) or "l1_words" in str(exc) or "l1_partition" in str(exc)
        return
    cost = hw.evaluate(layer, acc, mapping)
    assert cost.valid, cost.reason
    assert math.isfinite(cost.cycles) and cost.cycles >= 1
    assert math.isfinite(cost.energy_pj) and cost.energy_pj > 0
    assert 0 < cost.utilization <= 1
    assert cost.compute_cycles >= 1


# --- no hang: subprocesses under a timeout -----------------------------------------------------------------
def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwmodel.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines)


def test_no_hang_subprocess(tmp_path):
    eyeriss = hw.PRESETS["eyeriss"].to_dict()
    bomb_name = tmp_path / "bomb_name.yaml"
    bomb_name.write_text(_bomb() + "\n" + yaml.safe_dump({k: v for k, v in eyeriss.items() if k != "name"})
                         + "name: *a8\n")
    bomb_field = tmp_path / "bomb_field.yaml"
    bomb_field.write_text(_bomb() + "\n" + yaml.safe_dump({k: v for k, v in eyeriss.items() if k != "l2_bytes"})
                          + "l2_bytes: *a8\n")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    nested_yaml = tmp_path / "nested.yaml"
    nested_yaml.write_text("a: " + "[" * 100_000 + "]" * 100_000)
    cases = [
        (["evaluate", "--layer", "K=4,C=4", "--accelerator", str(bomb_name)], ["alias"]),
        (["evaluate", "--layer", "K=4,C=4", "--accelerator", str(bomb_field)], ["alias"]),
        (["evaluate", "--layer", "K=4,C=4", "--accelerator", "eyeriss", "--mapping", str(nested)], ["nested"]),
        (["evaluate", "--layer", "K=4,C=4", "--accelerator", str(nested_yaml)], ["nested"]),
        (["evaluate", "--layer", "K=2147483647,C=1", "--accelerator", "eyeriss", "--search"], ["Layer.K"]),
    ]
    for argv, names in cases:
        CASES["bounded"] += 1
        proc = _run(argv, timeout=60)
        assert_clean(proc.returncode, proc.stdout, proc.stderr, *names)
    CASES["bounded"] += 1
    start = time.perf_counter()
    proc = _run(["evaluate", "--layer", "K=16777216,C=1", "--accelerator", "eyeriss", "--dataflow", "ws", "--json"],
                timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["layers"][0]["dims"]["K"] == 2**24
    assert time.perf_counter() - start < 60


def test_zz_case_count():
    """The run above fuzzed at least 1,000 cases across the families (when the whole module ran)."""
    if set(CASES) < set(FAMILIES):
        pytest.skip(f"only part of the module ran: {dict(CASES)}")
    print(dict(CASES), sum(CASES.values()))
    assert sum(CASES.values()) >= 1000, dict(CASES)
