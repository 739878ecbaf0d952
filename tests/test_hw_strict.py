"""The strict edge of ``hwmodel`` (issue 15): exact types and bounds with one-line errors naming file and field,
YAML/JSON limits, atomic outputs (files and the ``cosearch --out`` folder), and ``naas-hw``'s top-level handler
(``OverflowError`` / ``RecursionError`` / ``MemoryError`` are one line and exit 2, other exceptions exit 1 unless
``--debug`` / ``NAAS_DEBUG=1``)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os

import pytest
import yaml

import hwmodel as hw
from hwmodel import cli
from hwmodel.mapping import Mapping
from hwmodel.safe_yaml import load_yaml_text
from hwmodel.validate import MAX_COVERAGE, MAX_DIM, MAX_FACTOR, load_json_text


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(argv))
    return rc, out.getvalue(), err.getvalue()


EYERISS = {"schema_version": 1, **hw.PRESETS["eyeriss"].to_dict()}


@pytest.mark.parametrize(("patch", "message"), [
    ({"systolic": "false"}, "Accelerator.systolic: must be true or false, got 'false'"),
    ({"double_buffer": ["false", "false"]}, "Accelerator.double_buffer[0]: must be true or false"),
    ({"array": "12"}, "Accelerator.array: must be a list, got '12'"),
    ({"array": ["12", "14"]}, "Accelerator.array[0]: must be an integer, got '12'"),
    ({"l2_bytes": 12.7}, "Accelerator.l2_bytes: must be an integer, got 12.7"),
    ({"l2_bytes": 4096.0}, "Accelerator.l2_bytes: must be an integer, got 4096.0"),
    ({"word_bits": 16.5}, "Accelerator.word_bits: must be an integer, got 16.5"),
    ({"word_bits": True}, "Accelerator.word_bits: must be an integer, got True"),
    ({"noc_bandwidth": math.inf}, "Accelerator.noc_bandwidth: must be a finite number, got inf"),
    ({"noc_bandwidth": True}, "Accelerator.noc_bandwidth: must be a number, got True"),
    ({"dram_bandwidth": 2e12}, "Accelerator.dram_bandwidth: must be less than or equal to 1000000000000"),
    ({"schema_version": 99}, "Accelerator.schema_version 99 is newer than this naas-trainer supports (1)"),
    ({"array": [10**18, 16]}, "Accelerator.array[0]: must be less than or equal to 65536"),
    ({"array": [2**16, 2**16]}, "Accelerator.array has 4294967296 PEs in all; allowed: at most 16777216"),
    ({"name": "x" * 300}, "Accelerator.name: "),
    ({"l1_words": 7}, "Accelerator.l1_words is 7 but l1_partition sums to 260"),
    ({"l1_words": None}, "Accelerator.l1_words: must be an integer, got None"),
    ({"l3_bytes": 1}, "unknown accelerator field 'l3_bytes' in Accelerator; allowed: schema_version, name"),
])
def test_accelerator_fields_are_exact(tmp_path, patch, message):
    for fmt in ("json", "yaml"):
        path = tmp_path / f"a.{fmt}"
        data = {**EYERISS, **patch}
        path.write_text(json.dumps(data) if fmt == "json" else yaml.safe_dump(data))
        with pytest.raises(ValueError) as info:
            hw.load_accelerator(path)
        text = str(info.value)
        assert text.startswith(f"accelerator file {path}: ") and message in text and "\n" not in text, text


def test_accelerator_round_trips_and_tuples_from_python():
    for accel in hw.PRESETS.values():
        assert hw.Accelerator.from_dict(json.loads(accel.to_json())) == accel
    data = hw.PRESETS["eyeriss"].to_dict()
    data["array"], data["l1_partition"] = tuple(data["array"]), (224, 12, 24)  # Python callers may pass tuples
    assert hw.Accelerator.from_dict(data) == hw.PRESETS["eyeriss"]


def test_python_constructor_refuses_truncation_and_truthy_values():
    base = dict(name="a", array=(4, 4), connectivity=(("K",), ("C",)), l1_words=64, l2_bytes=1 << 16,
                noc_bandwidth=8.0, dram_bandwidth=4.0)
    for field, value in (("l1_words", 12.7), ("word_bits", 16.5), ("systolic", "false"), ("double_buffer", (1, 0)),
                         ("noc_bandwidth", math.nan), ("array", (2**20, 2**20)), ("l2_bytes", 2**41)):
        with pytest.raises(ValueError, match=f"Accelerator.{field}"):
            hw.Accelerator(**{**base, field: value})


def test_layer_strings_are_exact():
    for spec, message in (("K=4,C=4,K=8", "Layer.K is given twice"), ("K=16777217,C=1", "Layer.K must be <= 16777216"),
                          ("K=1e3,C=1", "layer dim K must be an integer"), ("K=4,C=4,stride=65537", "Layer.stride"),
                          ("K=4,C=4,stride=2.5", "layer dim stride"), ("K=\u0663,C=1", "layer dim K"),
                          ("K=16777216,C=16777216,P=2", "has 562949953421312 MACs")):
        with pytest.raises(ValueError, match=message):
            hw.Layer.parse(spec)
    assert hw.Layer.parse("K=16777216,C=1").K == MAX_DIM
    with pytest.raises(ValueError, match="Layer.stride"):
        hw.Layer(K=1, C=1, stride=2.5)


def test_mapping_factors_are_bounded():
    with pytest.raises(ValueError, match=r"temporal.L1.K: must be less than or equal to 16777216, got 4052555153018976267"):
        Mapping.from_dict({"temporal": {"L1": {"K": 3**39}}})
    with pytest.raises(ValueError, match=rf"dim K multiply to {2**48}; allowed: at most {MAX_COVERAGE}"):
        Mapping.from_dict({"temporal": {"L1": {"K": MAX_FACTOR}, "L2": {"K": MAX_FACTOR}}})
    with pytest.raises(ValueError, match="temporal.L1.K: must be an integer, got 2.0"):
        Mapping.from_dict({"temporal": {"L1": {"K": 2.0}}})
    mapping = Mapping.from_dict({"temporal": {"DRAM": {d: 2**20 for d in "NGKCPQRS"}}})
    with pytest.raises(ValueError, match="padding included"):
        hw.evaluate(hw.Layer(K=4, C=4), hw.PRESETS["eyeriss"], mapping)


def test_json_and_yaml_limits():
    for text, message in (("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("[" * 80 + "]" * 80, "nested deeper"),
                          ('{"a": 1, "a": 2}', "duplicate key 'a'"), ("1" * 5000, "more than 4300 digits")):
        with pytest.raises(ValueError, match=message):
            load_json_text(text, "f.json")
    assert math.isinf(load_json_text("Infinity", "f.json"))  # read, then refused by the schema naming the field
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    for text, message in ((bomb, "alias bomb"), ("a: &x [*x]", "recursive alias"), ("a: 1\na: 2", "duplicate key 'a'"),
                          ("a: " + "[" * 100_000, "nested too deeply"), (f"a: {'9' * 5000}", "4300 digits")):
        with pytest.raises(ValueError, match=message):
            load_yaml_text(text, "f.yaml")
    assert load_yaml_text("b: &b {x: 1}\nd:\n  <<: *b\n  x: 2", "f.yaml") == {"b": {"x": 1}, "d": {"x": 2}}


def test_saves_are_atomic_and_refuse_non_files(tmp_path):
    accel, mapping = hw.PRESETS["eyeriss"], Mapping.from_dict({"temporal": {"L1": {"K": 2}}})
    accel.save(tmp_path / "a.json")
    mapping.save(tmp_path / "m.json")
    assert hw.load_accelerator(tmp_path / "a.json") == accel and hw.load_mapping(tmp_path / "m.json") == mapping
    os.mkfifo(tmp_path / "fifo")
    for save in (accel.save, mapping.save):
        with pytest.raises(ValueError, match="FIFO"):
            save(tmp_path / "fifo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "fifo", "m.json"]


@pytest.mark.parametrize(("exc", "code", "text"), [
    (OverflowError("int too large to convert"), 2, "a number in the input is too large to compute with"),
    (RecursionError("maximum recursion depth exceeded"), 2, "nested too deeply"),
    (MemoryError(), 2, "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "r.json"), 2, "No space left on device (r.json)"),
    (KeyError("x"), 1, "KeyError: 'x' (an internal error: run with NAAS_DEBUG=1"),
])
def test_top_level_handler(monkeypatch, exc, code, text):
    def boom(args):
        raise exc

    monkeypatch.delenv("NAAS_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_presets", boom)
    rc, out, err = run("presets")
    assert rc == code and err.count("\n") == 1 and text in err and "Traceback" not in err, err
    with pytest.raises(type(exc)):
        run("presets", "--debug")
    monkeypatch.setenv("NAAS_DEBUG", "1")
    with pytest.raises(type(exc)):
        run("presets")


COSEARCH = ["cosearch", "--layer", "K=8,C=8,P=4,Q=4", "--budget", "eyeriss", "--no-progress", "--generations", "1",
            "--mapping-budget", "8", "--final-mapping-budget", "8"]


def test_cosearch_out_is_whole_or_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    rc, _, err = run(*COSEARCH, "--out", str(out))
    assert rc == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(cli.COSEARCH_FILES)
    before = (out / "cosearch.json").read_bytes()

    def full_disk(result, path):  # the last file fails: nothing of this run may appear
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("hwmodel.cosearch.plot_convergence", full_disk)
    rc, _, err = run(*COSEARCH, "--seed", "1", "--out", str(out))
    assert rc == 2 and "No space left on device" in err
    assert (out / "cosearch.json").read_bytes() == before  # the earlier output, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left
    rc, _, err = run(*COSEARCH, "--seed", "1", "--out", str(tmp_path / "fresh"))
    assert rc == 2 and not (tmp_path / "fresh").exists()
