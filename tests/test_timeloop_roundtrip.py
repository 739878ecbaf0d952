"""Our designs written as Timeloop inputs (hwmodel.timeloop_export) and read back (hwmodel.timeloop_import)
evaluate to the same counts: the files a bundle ships let Timeloop re-run the design."""

from __future__ import annotations

import pytest

import hwmodel as hw
from hwmodel.family import family_hierarchy, nest_mapping
from hwmodel.nestmodel import evaluate_nest_mapping
from hwmodel.timeloop_export import (
    architecture_yaml, ert_summary_yaml, mapping_yaml, problem_yaml, timeloop_name,
)
from hwmodel.timeloop_import import load_timeloop

LAYERS = [
    hw.Layer(K=32, C=16, P=14, Q=14, R=3, S=3, name="conv"),
    hw.Layer(K=1, C=1, G=16, P=14, Q=14, R=3, S=3, stride=2, name="dw"),
    hw.Layer(K=10, C=64, name="fc"),
]


def _write(tmp_path, hier, layer, nest):
    files = {
        "arch.yaml": architecture_yaml(hier), "prob.yaml": problem_yaml(layer),
        "map.yaml": mapping_yaml(hier, nest), "ert.yaml": ert_summary_yaml(hier),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [tmp_path / n for n in ("arch.yaml", "prob.yaml", "map.yaml", "ert.yaml")]


@pytest.mark.parametrize("preset", ["eyeriss", "nvdla-256", "shidiannao"])
@pytest.mark.parametrize("dataflow", ["ws", "os", "rs"])
def test_family_roundtrip(tmp_path, preset, dataflow):
    accel = hw.PRESETS[preset]
    hier = family_hierarchy(accel)
    for layer in LAYERS:
        mapping = hw.template_mapping(layer, accel, dataflow)
        nest = nest_mapping(accel, mapping)
        ours = evaluate_nest_mapping(layer, hier, nest)
        if ((nest.spatial[1] > 1).sum(axis=0) > 1).any():
            with pytest.raises(ValueError, match="no Timeloop split form"):
                mapping_yaml(hier, nest)
            continue
        h2, l2, m2 = load_timeloop(*_write(tmp_path, hier, layer, nest))
        theirs = evaluate_nest_mapping(l2, h2, m2)
        assert l2.dim_array.tolist() == layer.dim_array.tolist()
        assert (l2.stride, l2.dilation) == (layer.stride, layer.dilation)
        assert theirs.valid == ours.valid, theirs.reason
        if not ours.valid:
            continue
        for level, per in ours.levels.items():
            for tensor, v in per.items():
                got = theirs.levels[timeloop_name(level)][tensor]
                assert [got[k] for k in ("reads", "fills", "updates")] == [v[k] for k in ("reads", "fills", "updates")], (
                    layer.name, level, tensor)
        assert theirs.compute_cycles == ours.compute_cycles and theirs.macs == ours.macs
        if accel.psum_bits == accel.word_bits:
            # same vector energies; the format has no per-word NoC energy
            noc = ours.energy_by_level["L2"] - sum(
                v["reads"] + v["fills"] + v["updates"] for v in ours.levels["L2"].values()) * hier.levels[1].read_pj
            assert theirs.energy_pj == pytest.approx(ours.energy_pj - noc, rel=1e-9)


def test_two_axis_split_roundtrip(tmp_path):
    """A 2-axis fanout: X/Y factors survive through ``split``."""
    accel = hw.PRESETS["eyeriss"]
    hier = family_hierarchy(accel)
    layer = LAYERS[0]
    nest = nest_mapping(accel, hw.template_mapping(layer, accel, "rs"))
    assert (nest.spatial[1, 0] > 1).any() and (nest.spatial[1, 1] > 1).any()
    _, _, m2 = load_timeloop(*_write(tmp_path, hier, layer, nest))
    assert (m2.spatial[1, :2] == nest.spatial[1, :2]).all()
