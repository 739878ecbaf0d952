"""Bit genes in the co-search (issue 14 items 3, 5, 6): the space, resume, baselines, quantized accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cosearch_result import run_search, tiny_net

from naas_train.cosearch import CoSearchSettings, NetworkCoSearch
from naas_train.cosearch_callback import CoSearchCallback, search_space
from supernet.precision_space import MixedConfig, PrecisionSpace

RES = (16,)


def fake_accuracy(cfgs: list[MixedConfig]) -> list[float]:
    """Deterministic stand-in: bigger subnets and wider bits are more accurate (4-bit costs 2 points per layer share)."""
    out = []
    for c in cfgs:
        bits = np.mean([w + a for _, w, a in c.bits]) / 16
        out.append(0.5 + 0.05 * sum(c.subnet.d) / 20 + 0.04 * np.mean(c.subnet.e) / 6 + 0.1 * bits)
    return out


def settings(**kw) -> CoSearchSettings:
    base = dict(budget="eyeriss", resolutions=RES, accel_generations=2, accel_popsize=3, population=6, generations=1,
                predictor_samples=16, predictor_epochs=40, mapping_budget=48, final_mapping_budget=150,
                min_accuracy=0.6, seed=3, bits=(4, 6, 8), mac="bitfusion")
    base.update(kw)
    return CoSearchSettings(**base)


def make_search(net, **kw) -> NetworkCoSearch:
    s = settings(**kw)
    space, layer_fn, config_cls = search_space(net, s)
    return NetworkCoSearch(space, layer_fn, fake_accuracy, s, config_cls, default_resolution=RES[0])


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@pytest.fixture(scope="module")
def uninterrupted(net):
    return run_search(make_search(net))


def test_space_round_trip_and_genes(net) -> None:
    space, _, _ = search_space(net, settings())
    rng = np.random.default_rng(0)
    cfg = space.sample(rng, resolutions=RES)
    assert space.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert {w for _, w, _ in cfg.bits} <= {4, 6, 8} and len(cfg.bits) == len(space.names)
    child = space.mutate(cfg, rng, prob=1.0, resolutions=RES)
    assert child.bits != cfg.bits
    # the encoding grows by two features per supernet layer; bits of skipped layers read as zero
    small = space.min_config(16)
    enc = space.encode(small)
    assert len(enc) == len(net.space.encode(small.subnet)) + 2 * len(space.names)
    active = {layer.name for layer in net.layer_shapes(small.subnet)}
    tail = enc[len(net.space.encode(small.subnet)):].reshape(-1, 2)
    for (name, _, _), feats in zip(small.bits, tail):
        assert (feats > 0).all() == (name in active)


def test_bad_policies_name_the_layer(net) -> None:
    space, _, _ = search_space(net, settings())
    data = space.max_config(16).to_dict()
    bad = json.loads(json.dumps(data))
    bad["bits"]["blocks.99.dw"] = [8, 8]
    with pytest.raises(ValueError, match=r"layer 'blocks.99.dw' is not a layer of this supernet"):
        space.from_dict(bad)
    bad = json.loads(json.dumps(data))
    bad["bits"]["first_conv"] = [5, 8]
    with pytest.raises(ValueError, match=r"layer 'first_conv' weights bits 5 is not allowed; allowed: \[4, 6, 8\]"):
        space.from_dict(bad)
    bad = json.loads(json.dumps(data))
    del bad["bits"]["classifier"]
    with pytest.raises(ValueError, match=r"no bits for layer 'classifier'"):
        space.from_dict(bad)
    with pytest.raises(ValueError, match=r"cosearch bits: 0 is not a width"):
        settings(bits=(0, 8))
    with pytest.raises(ValueError, match=r"cosearch mac must be one of fixed, bitfusion"):
        settings(mac="analog")


def test_layers_carry_their_bits(net) -> None:
    space, layer_fn, _ = search_space(net, settings())
    cfg = space.sample(np.random.default_rng(1), resolutions=RES)
    for layer in layer_fn(cfg, 16):
        assert (layer.weight_bits, layer.input_bits) == cfg.policy[layer.name]


def test_result_records_precision_and_baselines(uninterrupted) -> None:
    r = uninterrupted
    assert r["accuracy"] >= 0.6
    for layer in r["layers"]:  # merged by shape and bits: the first layer's name stands for its group
        assert (layer.weight_bits, layer.input_bits) == tuple(r["precision"][layer.name].values())
    for name in ("uniform_int16", "uniform_int8", "bits_only"):
        b = r["baselines"][name]
        assert {"edp", "accuracy", "cycles", "energy_pj"} <= set(b), name
        assert b["edp_ratio"] == pytest.approx(b["edp"] / r["metrics"]["edp"])
    # on a Bit Fusion array uniform 16-bit is strictly slower and costlier than uniform 8-bit
    assert r["baselines"]["uniform_int16"]["edp"] > r["baselines"]["uniform_int8"]["edp"]
    assert r["accelerator"]["mac"] == "bitfusion"
    # every recorded layer's bits are among the choices
    assert all(v["weights"] in (4, 6, 8) and v["inputs"] in (4, 6, 8) for v in r["precision"].values())


def test_bit_genes_resume_to_the_same_result(net, uninterrupted) -> None:
    first = make_search(net)
    first.step()
    state = json.loads(json.dumps(first.state_dict()))
    assert any(k[3] != [None, None, None] for k in state["warm"])  # warm starts are keyed by bits too
    resumed = make_search(net)
    resumed.load_state_dict(state)
    again = run_search(resumed)
    for key in ("subnet", "precision", "accelerator", "metrics", "accuracy"):
        assert json.dumps(again[key], sort_keys=True) == json.dumps(uninterrupted[key], sort_keys=True), key


def test_callback_measures_quantized_accuracy(tmp_path) -> None:
    """The Lightning path: accuracy of a (subnet, policy) is that of the fake-quantized, calibrated subnet."""
    from naas_train.data import DigitsData
    from naas_train.module import SupernetModule
    from naas_train.phases import Phase
    from naas_train.trainer import NaasTrainer

    cb = CoSearchCallback(settings(accuracy_source="measured", min_accuracy=0.0, population=3, accel_popsize=2,
                                   accel_generations=1, generations=0), run_at=[], search_batches=2)
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, default_root_dir=str(tmp_path), callbacks=[cb], limit_val_batches=1)
    module = SupernetModule(tiny_net(), [Phase("full", epochs=1, lr=0.1)], val_resolutions=list(RES), kd_ratio=0.0)
    data = DigitsData(resolutions=list(RES), batch_size=32, bn_samples=64, num_workers=0)
    result = trainer.search(module, datamodule=data)
    saved = json.loads((tmp_path / "cosearch" / "result.json").read_text())
    assert saved["precision"] == result["precision"] and saved["precision"]
    assert {"uniform_int16", "uniform_int8", "bits_only"} <= set(saved["baselines"])
    # the mapping table reproduces the bits of every layer
    assert all(m["precision"]["weights"] in (4, 6, 8) for m in saved["mappings"])


def test_precision_space_frozen_subnet_evolves_bits_only(net) -> None:
    space, _, _ = search_space(net, settings())
    sub = net.space.min_config(16)
    frozen = PrecisionSpace(space.space, space.layer_names, space.config_cls, (4, 8), subnet=sub)
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = frozen.mutate(frozen.sample(rng, resolutions=RES), rng, 0.5, RES)
        assert c.subnet == sub
