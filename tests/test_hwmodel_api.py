"""The hwmodel API edge: Layer / Accelerator / Mapping JSON and YAML round trips, and bad input that must raise
``ValueError`` naming the field (never another exception type), fuzzed with hypothesis."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwmodel as hw
from hwmodel.layer import DIMS
from hwmodel.mapping import Mapping

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
ACCEL_REQUIRED = dict(name="a", array=(4, 4), connectivity=(("K",), ("C",)), l1_words=64, l2_bytes=1 << 16,
                      noc_bandwidth=8.0, dram_bandwidth=4.0)


@st.composite
def layers(draw):
    dims = {d: draw(st.integers(1, 9)) for d in DIMS}
    pair = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
    return hw.Layer(**dims, stride=draw(pair), dilation=draw(pair), count=draw(st.integers(1, 5)),
                    name=draw(st.text(min_size=0, max_size=8)))


@st.composite
def accelerators(draw):
    n_axes = draw(st.integers(1, 3))
    kwargs = dict(
        name=draw(st.text(min_size=1, max_size=8)),
        array=tuple(draw(st.integers(1, 64)) for _ in range(n_axes)),
        connectivity=tuple(tuple(draw(st.lists(st.sampled_from(DIMS), min_size=1, max_size=4, unique=True)))
                           for _ in range(n_axes)),
        l2_bytes=draw(st.integers(1, 1 << 24)),
        noc_bandwidth=draw(st.floats(0.125, 512, allow_nan=False)),
        dram_bandwidth=draw(st.floats(0.125, 512, allow_nan=False)),
        word_bits=draw(st.sampled_from([4, 8, 16])),
        psum_bits=draw(st.sampled_from([16, 24, 32])),
        systolic=draw(st.booleans()),
        double_buffer=(draw(st.booleans()), draw(st.booleans())),
        energy_table=draw(st.sampled_from(sorted(hw.ENERGY_TABLES))),
    )
    if draw(st.booleans()):
        kwargs["l1_partition"] = tuple(draw(st.integers(1, 512)) for _ in range(3))
        kwargs["l1_words"] = sum(kwargs["l1_partition"])
    else:
        kwargs["l1_words"] = draw(st.integers(1, 512))
    return hw.Accelerator(**kwargs)


@st.composite
def mappings(draw):
    temporal = np.array(draw(st.lists(st.integers(1, 16), min_size=24, max_size=24))).reshape(3, 8)
    spatial = np.array(draw(st.lists(st.integers(1, 8), min_size=24, max_size=24))).reshape(3, 8)
    order = np.stack([draw(st.permutations(range(8))) for _ in range(3)])
    return Mapping(temporal=temporal, spatial=spatial, order=order)


# --- round trips ---------------------------------------------------------------------------------------
@FAST
@given(layer=layers())
def test_layer_round_trips(layer):
    data = layer.to_dict()
    assert hw.Layer.from_dict(json.loads(json.dumps(data))) == layer
    assert hw.Layer.from_dict(yaml.safe_load(yaml.safe_dump(data))) == layer
    assert hw.Layer.from_dict(data).op == layer.op
    if "," not in layer.name and "=" not in layer.name and layer.name.strip() == layer.name and layer.name:
        spec = ",".join(f"{d}={v}" for d, v in layer.dims.items())
        spec += f",stride={layer.stride[0]}x{layer.stride[1]},dilation={layer.dilation[0]}x{layer.dilation[1]}"
        assert hw.Layer.parse(f"{spec},count={layer.count},name={layer.name}") == layer


@FAST
@given(accel=accelerators())
def test_accelerator_round_trips(accel, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acc")
    assert hw.Accelerator.from_dict(json.loads(accel.to_json())) == accel
    for suffix in (".json", ".yaml", ".yml"):
        path = tmp / f"acc{suffix}"
        accel.save(path)
        assert hw.load_accelerator(path) == accel
    assert hw.Accelerator.from_dict(yaml.safe_load(yaml.safe_dump(accel.to_dict()))) == accel


def test_presets_and_systolic_round_trip(tmp_path):
    for name, accel in hw.PRESETS.items():
        assert hw.load_accelerator(name) is accel
        path = tmp_path / f"{name}.yaml"
        accel.save(path)
        assert hw.load_accelerator(path) == accel
    sys_ = hw.load_accelerator("systolic:8x4")
    assert sys_.array == (8, 4) and sys_.systolic
    assert hw.Accelerator.from_dict(json.loads(sys_.to_json())) == sys_


@FAST
@given(mapping=mappings())
def test_mapping_round_trips(mapping, tmp_path_factory):
    data = mapping.to_dict()
    assert Mapping.from_dict(json.loads(json.dumps(data))) == mapping
    assert Mapping.from_dict(yaml.safe_load(yaml.safe_dump(data))) == mapping
    path = tmp_path_factory.mktemp("map") / "m.json"
    mapping.save(path)
    assert hw.load_mapping(path) == mapping


def test_template_mappings_round_trip(tmp_path):
    layer = hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3, name="c")
    dw = hw.Layer(K=1, C=1, G=32, P=14, Q=14, R=3, S=3, name="dw")
    for accel in [*hw.PRESETS.values(), hw.load_accelerator("systolic:16x16")]:
        for flow in hw.DATAFLOWS:
            per_layer = {lay.name: hw.template_mapping(lay, accel, flow) for lay in (layer, dw)}
            path = tmp_path / "layers.json"
            path.write_text(json.dumps({"layers": [{"name": n, "mapping": m.to_dict()} for n, m in per_layer.items()]}))
            loaded = hw.load_mapping(path)
            assert loaded == per_layer
            for lay in (layer, dw):
                assert hw.evaluate(lay, accel, loaded[lay.name]).valid


# --- bad input -----------------------------------------------------------------------------------------
def raises_naming(fn, *names: str) -> str:
    """``fn()`` raises ValueError (and nothing else) whose message contains every one of ``names``."""
    with pytest.raises(ValueError) as info:
        fn()
    msg = str(info.value)
    for name in names:
        assert name in msg, f"{name!r} not in {msg!r}"
    return msg


GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 0), st.floats(allow_nan=True), st.text(max_size=4),
    st.lists(st.integers(-2, 3), max_size=4), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.just(math.inf), st.integers(2**31, 2**70),
)


@FAST
@given(dim=st.sampled_from(DIMS), value=st.integers(-10**6, 0))
def test_zero_or_negative_layer_dim(dim, value):
    raises_naming(lambda: hw.Layer(**{"K": 4, "C": 4, dim: value}), f"Layer.{dim}")
    raises_naming(lambda: hw.Layer.parse(f"K=4,C=4,{dim}={value}"), f"Layer.{dim}")


@FAST
@given(key=st.text(alphabet="ABDEFHIJLMOTUVWXYZabcxyz_", min_size=1, max_size=4))
def test_unknown_dim(key):
    if key in ("name", "count", "stride", "dilation", "op"):
        return
    raises_naming(lambda: hw.Layer.parse(f"K=4,C=4,{key}=2"), repr(key))
    raises_naming(lambda: hw.Layer.from_dict({"K": 4, "C": 4, key: 2}), repr(key))
    raises_naming(lambda: hw.mapping_from_factors(l1={key: 2}), repr(key))
    raises_naming(lambda: hw.mapping_from_factors(spatial=[{key: 2}]), repr(key))
    raises_naming(lambda: hw.mapping_from_factors(order={"L1": [key, *DIMS[1:]]}), repr(key))
    raises_naming(lambda: hw.Accelerator(**{**ACCEL_REQUIRED, "connectivity": (("K", key), ("C",))}),
                  "connectivity[0]", repr(key))


@FAST
@given(field=st.sampled_from(["K", "C", "P", "Q", "R", "S", "N", "G", "stride", "dilation", "count"]), value=GARBAGE)
def test_garbage_layer_field(field, value):
    try:
        hw.Layer(**{"K": 4, "C": 4, field: value})
    except ValueError as exc:
        assert f"Layer.{field}" in str(exc)


@FAST
@given(key=st.text(min_size=1, max_size=10))
def test_unknown_accelerator_field(key):
    data = {**hw.PRESETS["eyeriss"].to_dict(), key: 1}
    if key in hw.PRESETS["eyeriss"].to_dict() or key == "schema_version":
        return
    raises_naming(lambda: hw.Accelerator.from_dict(data), "unknown accelerator field", repr(key))


@FAST
@given(sizes=st.lists(st.integers(-4, 8), min_size=1, max_size=3).filter(lambda s: min(s) < 1))
def test_zero_pes(sizes):
    conn = tuple(("K",) for _ in sizes)
    raises_naming(lambda: hw.Accelerator(**{**ACCEL_REQUIRED, "array": tuple(sizes), "connectivity": conn}),
                  "Accelerator.array")


@FAST
@given(field=st.sampled_from(["l1_words", "l2_bytes", "noc_bandwidth", "dram_bandwidth", "word_bits", "psum_bits"]),
       value=st.one_of(st.integers(-10, 0), st.floats(max_value=0.0), st.just(float("nan"))))
def test_nonpositive_accelerator_sizes(field, value):
    raises_naming(lambda: hw.Accelerator(**{**ACCEL_REQUIRED, field: value}), f"Accelerator.{field}")


@FAST
@given(field=st.sampled_from(["array", "connectivity", "l1_words", "l2_bytes", "noc_bandwidth", "dram_bandwidth",
                              "l1_partition", "word_bits", "psum_bits", "double_buffer", "energy_table"]),
       value=GARBAGE)
def test_garbage_accelerator_field(field, value):
    for build in (lambda: hw.Accelerator(**{**ACCEL_REQUIRED, field: value}),
                  lambda: hw.Accelerator.from_dict({**hw.Accelerator(**ACCEL_REQUIRED).to_dict(), field: value})):
        try:
            build()
        except ValueError as exc:
            assert field in str(exc), str(exc)


@FAST
@given(data=st.data())
def test_factors_that_do_not_cover(data):
    layer = data.draw(layers())
    accel = hw.Accelerator(name="a", array=(4, 4), connectivity=(DIMS, DIMS), l1_words=10**6, l2_bytes=10**9,
                           noc_bandwidth=8, dram_bandwidth=4)
    mapping = hw.template_mapping(layer, accel, data.draw(st.sampled_from(list(hw.DATAFLOWS))))
    short = [d for d in range(8) if layer.dim_array[d] > 1]
    if not short:
        return
    d = data.draw(st.sampled_from(short))
    mapping.temporal[:, d] = 1
    mapping.spatial[:, d] = 1
    mapping.temporal[data.draw(st.integers(0, 2)), d] = data.draw(st.integers(1, int(layer.dim_array[d]) - 1))
    raises_naming(lambda: hw.evaluate(layer, accel, mapping), f"dim {DIMS[d]}", f"{DIMS[d]}={layer.dim_array[d]}")
    codes, _, _ = hw.evaluate_batch(layer, accel, mapping.temporal[None], mapping.spatial[None], mapping.order[None])
    assert codes[0] == 1


@FAST
@given(data=st.data())
def test_unroll_outside_connectivity_or_axis(data):
    layer = hw.Layer(K=8, C=8, P=8, Q=8, R=3, S=3, N=2, G=2)
    accel = data.draw(accelerators())
    n_axes = len(accel.array)
    a = data.draw(st.integers(0, 2))
    base = hw.mapping_from_factors(dram=layer.dims)
    if a >= n_axes:
        base.spatial[a, data.draw(st.integers(0, 7))] = 2
        raises_naming(lambda: hw.evaluate(layer, accel, base), f"axis {a}", f"{n_axes} axes")
        return
    outside = [d for d in DIMS if d not in accel.connectivity[a]]
    if outside and data.draw(st.booleans()):
        d = data.draw(st.sampled_from(outside))
        base.spatial[a, DIMS.index(d)] = data.draw(st.integers(2, 4))
        raises_naming(lambda: hw.evaluate(layer, accel, base), f"unrolls {d} on axis {a}", "connectivity")
    else:
        d = data.draw(st.sampled_from(accel.connectivity[a]))
        base.spatial[a, DIMS.index(d)] = accel.array[a] + data.draw(st.integers(1, 3))
        raises_naming(lambda: hw.evaluate(layer, accel, base), f"on axis {a} of size {accel.array[a]}")


@FAST
@given(layer=layers(), flow=st.sampled_from(list(hw.DATAFLOWS)), part=st.booleans(),
       single=st.booleans())
def test_buffers_too_small_for_any_mapping(layer, flow, part, single):
    """L1 that cannot hold one weight, input and partial sum (twice if double-buffered), or an L2 smaller than
    the array's tiles: ``template_mapping`` raises naming the field to raise."""
    db = (not single, True)
    kwargs = dict(ACCEL_REQUIRED, double_buffer=db, connectivity=(DIMS, DIMS))
    need = 2 if db[0] else 1
    tiny_l1 = dict(l1_partition=(need, need, need - 1 if need > 1 else 1), l1_words=1) if part else dict(l1_words=3 * need - 1)
    if part and need == 1:
        return  # a (1, 1, 1) partition fits single-buffered tiles
    accel = hw.Accelerator(**{**kwargs, **tiny_l1})
    msg = raises_naming(lambda: hw.template_mapping(layer, accel, flow), "l1_words" if not part else "l1_partition")
    assert "L1" in msg
    tiny_l2 = hw.Accelerator(**{**kwargs, "l2_bytes": 1})
    raises_naming(lambda: hw.template_mapping(layer, tiny_l2, flow), "l2_bytes")


@FAST
@given(data=st.data())
def test_garbage_mapping_json(data):
    """Whatever a mapping file holds: a Mapping or a ValueError (never a KeyError/TypeError/AttributeError)."""
    leaf = st.one_of(st.integers(-3, 4), st.text(alphabet="NGKCPQRSxDRAML12", max_size=4), st.none(), st.floats())
    tree = st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["temporal", "order", "spatial", "DRAM", "L2", "L1", "K", "C", "layers",
                                         "name", "mapping", "x"]), inner, max_size=3)), max_leaves=12)
    value = data.draw(tree)
    try:
        Mapping.from_dict(value)
    except ValueError:
        pass


def test_garbage_mapping_files(tmp_path):
    for i, text in enumerate(['[1]', '{"layers": [{"mapping": {}}]}', '{"layers": 5}', 'null', '"x"', "{",
                              '{"layers": [{"name": "a", "mapping": {"temporal": {"L1": {"K": "2"}}}}]}']):
        path = tmp_path / f"m{i}.json"
        path.write_text(text)
        raises_naming(lambda: hw.load_mapping(path), str(path))
