"""Network-in-the-loop co-search: constraints, baselines, exact resume, DDP == 1 rank, the Lightning callback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from cosearch_result import run_search, tiny_net

import supernet
from naas_train.cosearch import CoSearchSettings, NetworkCoSearch, pareto_front
from naas_train.cosearch_callback import CoSearchCallback, ddp_map_fn

RES = (16,)


def fake_accuracy(cfgs):
    """A deterministic stand-in for measured accuracy: bigger subnets are more accurate."""
    return [0.5 + 0.04 * np.mean(c.e) / 6 + 0.03 * np.mean(c.ks) / 7 + 0.05 * sum(c.d) / 20 for c in cfgs]


def settings(**kw) -> CoSearchSettings:
    base = dict(budget="eyeriss", resolutions=RES, accel_generations=2, accel_popsize=3, population=6, generations=1,
                predictor_samples=16, predictor_epochs=40, mapping_budget=48, final_mapping_budget=150,
                min_accuracy=0.58, seed=3)
    base.update(kw)
    return CoSearchSettings(**base)


def make_search(net, map_fn=None, **kw) -> NetworkCoSearch:
    extra = {} if map_fn is None else {"map_fn": map_fn}
    return NetworkCoSearch(net.space, net.layer_shapes, fake_accuracy, settings(**kw), supernet.MBV3Config,
                           default_resolution=RES[0], **extra)


def summary(result: dict) -> tuple:
    return (json.dumps(result["subnet"], sort_keys=True), json.dumps(result["accelerator"], sort_keys=True),
            result["metrics"]["cycles"], result["metrics"]["energy_pj"], result["accuracy"])


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@pytest.fixture(scope="module")
def uninterrupted(net):
    return run_search(make_search(net))


def test_chosen_design_meets_constraint_and_beats_both_baselines(uninterrupted):
    r = uninterrupted
    assert r["accuracy"] >= 0.58
    assert r["metrics"]["edp"] < r["baselines"]["largest_subnet_on_budget"]["edp"]
    # the preset is a candidate: when it wins, the chosen subnet on it is the chosen design itself
    assert r["metrics"]["edp"] <= r["baselines"]["chosen_subnet_on_budget"]["edp"] * (1 + 1e-12)
    assert r["predictor"]["n_measured"] >= 16 and np.isfinite(r["predictor"]["heldout_spearman"])
    front = r["pareto"]
    assert front and all(a["edp"] <= b["edp"] and a["accuracy"] < b["accuracy"] for a, b in zip(front, front[1:]))


def test_the_budget_preset_is_a_candidate(net):
    """The first generation also searches subnets for the budget's own accelerator; the best design found is
    never worse (fitness) than the preset's best point."""
    search = make_search(net, accel_generations=1)
    search.step()
    preset = [p for p in search.points if p["accelerator"]["name"] == "eyeriss"]
    assert preset, "the preset's subnet search left no points"
    assert search.best["fitness"] <= min(p["fitness"] for p in preset)
    assert len(search.history) == 1 and search.es.generation == 1


def test_killed_search_resumes_to_the_same_result(net, uninterrupted):
    first = make_search(net)
    first.step()  # one generation, then "killed": only its state survives, as JSON
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make_search(net)
    resumed.load_state_dict(state)
    assert summary(run_search(resumed)) == summary(uninterrupted)


def test_split_evaluation_matches_one_rank(net, uninterrupted):
    def two_ranks(fn, items):  # what ddp_map_fn does, with both ranks' slices computed here
        out = [None] * len(items)
        for rank in range(2):
            for i in range(rank, len(items), 2):
                out[i] = fn(items[i])
        return out

    assert summary(run_search(make_search(net, map_fn=two_ranks))) == summary(uninterrupted)


def _ddp_worker(rank: int, world: int, port: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = run_search(make_search(tiny_net(), map_fn=ddp_map_fn(world, rank)))
        with open(f"{path}.{rank}", "w") as f:
            json.dump(list(summary(result)), f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_rank_ddp_gives_the_one_rank_result(tmp_path, uninterrupted):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "r")), nprocs=2, join=True)
    one = list(summary(uninterrupted))
    for rank in range(2):
        assert json.loads((tmp_path / f"r.{rank}").read_text()) == one


def test_pareto_front_is_non_dominated():
    pts = [{"edp": e, "accuracy": a} for e, a in [(1, 0.5), (2, 0.4), (3, 0.7), (4, 0.7), (5, 0.9)]]
    assert [(p["edp"], p["accuracy"]) for p in pareto_front(pts)] == [(1, 0.5), (3, 0.7), (5, 0.9)]


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="budget"):
        CoSearchSettings(budget="tpu9")
    with pytest.raises(ValueError, match="accuracy_source"):
        CoSearchSettings(accuracy_source="oracle")
    with pytest.raises(ValueError, match="run_at"):
        CoSearchCallback(run_at=["sometimes"])


def test_callback_search_on_the_embedded_default(tmp_path):
    """``NaasTrainer.search`` on digits (an untrained tiny supernet: the pipeline, not the accuracy, is tested)."""
    from naas_train.data import DigitsData
    from naas_train.module import SupernetModule
    from naas_train.phases import Phase
    from naas_train.trainer import NaasTrainer

    cb = CoSearchCallback(settings(accuracy_source="measured", min_accuracy=0.0, population=4,
                                   accel_popsize=2, accel_generations=1), run_at=[], search_batches=2)
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, default_root_dir=str(tmp_path), callbacks=[cb], limit_val_batches=1)
    module = SupernetModule(tiny_net(), [Phase("full", epochs=1, lr=0.1)], val_resolutions=list(RES), kd_ratio=0.0)
    data = DigitsData(resolutions=list(RES), batch_size=32, bn_samples=64, num_workers=0)
    result = trainer.search(module, datamodule=data)
    out = tmp_path / "cosearch"
    saved = json.loads((out / "result.json").read_text())
    assert saved["subnet"] == result["subnet"] and saved["metrics"]["edp"] < saved["baselines"]["largest_subnet_on_budget"]["edp"]
    assert {"schema_version", "provenance", "supernet_checkpoint", "space", "subnet", "accuracy", "accelerator",
            "mappings", "metrics", "baselines", "pareto"} <= set(saved)
    assert set(saved["metrics"]) >= {"cycles", "energy_pj", "edp", "macs", "params"}
    assert 0.0 <= saved["accuracy"] <= 1.0
    for png in ("pareto-final.png", "breakdown-final.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_measurement_overrules_an_optimistic_predictor(net):
    """The predicted best design is re-measured: if it misses ``min_accuracy`` the next verified one is chosen."""
    from hwmodel.presets import PRESETS
    from naas_train.cosearch import HardwareCost

    small, big = net.space.min_config(16), net.space.max_config(16)
    truth = {NetworkCoSearch.key(small): 0.40, NetworkCoSearch.key(big): 0.90}

    def search_with(top_k: int) -> NetworkCoSearch:
        search = NetworkCoSearch(net.space, net.layer_shapes, lambda cfgs: [truth[NetworkCoSearch.key(c)] for c in cfgs],
                                 settings(min_accuracy=0.8, verify_top_k=top_k), supernet.MBV3Config,
                                 default_resolution=16)
        for cfg, predicted, cycles in ((small, 0.85, 1e5), (big, 0.90, 1e6)):  # the predictor flatters `small`
            cost = HardwareCost(cycles, 10 * cycles, 0)
            search.points.append({"config": cfg.to_dict(), "accelerator": PRESETS["eyeriss"].to_dict(),
                                  "accuracy": predicted, "cycles": cost.cycles, "energy_pj": cost.energy_pj,
                                  "edp": cost.edp, "fitness": search.fitness(predicted, cost)})
        return search

    assert search_with(2).verified_best()["config"] == big.to_dict()
    assert search_with(1).verified_best()["config"] == small.to_dict()  # nothing else measured: kept, flagged
    with pytest.raises(ValueError, match="verify_top_k"):
        settings(verify_top_k=0)


def test_search_fingerprint_names_weights_and_settings():
    """A saved search state is resumed only with the same supernet weights and settings (BN statistics aside)."""
    from naas_train.cosearch_callback import search_fingerprint

    a, b = tiny_net(), tiny_net()
    key = search_fingerprint(a, settings())
    assert search_fingerprint(b, settings()) == key
    for m in b.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.add_(1.0)
    assert search_fingerprint(b, settings()) == key
    assert search_fingerprint(a, settings(seed=4)) != key
    with torch.no_grad():
        w = next(b.parameters())
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(1e9))
    assert search_fingerprint(b, settings()) != key


def test_predictor_measurements_are_split_over_ranks(net):
    """Every measured subnet goes through ``map_fn`` (each rank measures a slice), never ``accuracy_fn`` directly
    on every rank; the search-time measurements of ``accuracy_source='measured'`` stay inside the population items."""
    calls: list[int] = []

    def spy_map(fn, items):
        calls.append(len(items))
        return [fn(x) for x in items]

    search = NetworkCoSearch(net.space, net.layer_shapes, fake_accuracy, settings(predictor_samples=12),
                             supernet.MBV3Config, map_fn=spy_map, default_resolution=16)
    search.prepare_predictor()
    assert calls == [12]  # the 12 predictor subnets, distributed in one map
    search.step()
    # one population map (the ES's candidates and, in the first generation, the preset); no measurement outside it
    assert calls[1:] == [settings().accel_popsize + 1]


def test_fit_end_cosearch_runs_on_the_training_device_before_teardown(tmp_path):
    """The fit-end co-search runs while the strategy still holds the model on the training device (Lightning
    moves it to the CPU at teardown, before ``on_fit_end``), on the data module's search split."""
    from naas_train.data import DigitsData
    from naas_train.module import SupernetModule
    from naas_train.phases import Phase
    from naas_train.trainer import NaasTrainer

    events: list[tuple] = []

    class Spy(CoSearchCallback):
        def run(self, trainer, pl_module, tag="final", progress=None):
            events.append(("search", next(pl_module.net.parameters()).device, trainer.strategy.root_device))
            return super().run(trainer, pl_module, tag, progress)

    cb = Spy(settings(accuracy_source="measured", min_accuracy=0.0, population=4, accel_popsize=2,
                      accel_generations=1), run_at=["fit_end"])
    trainer = NaasTrainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, default_root_dir=str(tmp_path), callbacks=[cb],
                          limit_train_batches=1, limit_val_batches=0, max_epochs=1)
    teardown = trainer.strategy.teardown
    trainer.strategy.teardown = lambda: (events.append(("teardown",)), teardown())[1]
    module = SupernetModule(tiny_net(), [Phase("full", epochs=1, lr=0.1)], val_resolutions=list(RES), kd_ratio=0.0)
    data = DigitsData(resolutions=list(RES), batch_size=32, bn_samples=64, num_workers=0)
    trainer.fit(module, datamodule=data)
    assert [e[0] for e in events] == ["search", "teardown"]
    assert events[0][1] == events[0][2]
    result = json.loads((tmp_path / "cosearch" / "result.json").read_text())
    assert result["accuracy_split"] == "search" and result["data_splits"]["search"] == 100
    accuracy_grid = {round(k / 100, 10) for k in range(101)}  # 100 search images: multiples of 1/100
    assert round(result["accuracy"], 10) in accuracy_grid


def test_accuracy_measurement_runs_nchw_and_hands_a_channels_last_net_back(tmp_path):
    """The measurement of a channels_last supernet (the GPU recipes) runs in NCHW (5x faster on an H200), gives the
    accuracies of the NCHW net, leaves every weight as it was and puts the net back in channels_last for training."""
    from types import SimpleNamespace

    from pytorch_lightning.plugins.precision import Precision

    from naas_train.data import DigitsData

    data = DigitsData(resolutions=list(RES), batch_size=32, bn_samples=64, num_workers=0)
    data.setup("fit")
    trainer = SimpleNamespace(datamodule=data, strategy=SimpleNamespace(root_device=torch.device("cpu")),
                              precision_plugin=Precision())
    configs = [tiny_net().space.sample(np.random.default_rng(i), resolutions=RES) for i in range(3)]
    nchw, cl = tiny_net(), tiny_net().to(memory_format=torch.channels_last)
    weights = {k: v.clone() for k, v in cl.state_dict().items()}
    formats_seen: list[bool] = []
    hook = cl.register_forward_pre_hook(lambda m, args: formats_seen.append(
        any(p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1 and p.is_contiguous(memory_format=torch.channels_last)
            and not p.is_contiguous() for p in m.parameters())))
    expected = CoSearchCallback(search_batches=2)._accuracy_fn(trainer, nchw)(configs)
    measured = CoSearchCallback(search_batches=2)._accuracy_fn(trainer, cl, torch.channels_last)(configs)
    hook.remove()
    assert measured == expected and len(set(expected)) > 1
    assert formats_seen and not any(formats_seen)
    convs = [p for p in cl.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    for key, value in cl.state_dict().items():
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)
