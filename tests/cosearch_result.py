"""Co-search test helpers: the tiny supernet, running a search to its result, and a ``result.json`` built the way
the callback builds it (random supernet weights, a tiny search) for the fine-tune and export tests."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

import supernet
from naas_train.cosearch import CoSearchSettings, NetworkCoSearch
from naas_train.cosearch_callback import CoSearchCallback, search_space
from naas_train.data import DigitsData

RES = 16


def tiny_net() -> supernet.OFAMobileNetV3:
    """The width-0.25, 10-class MobileNetV3 supernet, seed 0."""
    torch.manual_seed(0)
    return supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10)


def run_search(search: NetworkCoSearch) -> dict:
    """Every accelerator generation left, then the final result."""
    while not search.done:
        search.step()
    return search.finalize()


def digits() -> DigitsData:
    return DigitsData(resolutions=[RES], source_size=RES, batch_size=64, val_batch_size=128, bn_samples=64, seed=0)


def write_result(root: Path, **settings: Any) -> Path:
    """``root/supernet.ckpt`` (a width-0.25 MobileNetV3 supernet, seed 0) and ``root/cosearch/result.json`` of a
    measured-accuracy co-search (every subnet scores 0.5) with ``settings`` over the defaults; returns ``root``."""
    net = tiny_net()
    ckpt = root / "supernet.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    config = CoSearchSettings(**{**dict(budget="eyeriss", resolutions=(RES,), accel_generations=1, accel_popsize=2,
                                        population=3, generations=0, accuracy_source="measured", mapping_budget=16,
                                        final_mapping_budget=24, seed=1), **settings})
    space, layer_fn, config_cls = search_space(net, config)
    search = NetworkCoSearch(space, layer_fn, lambda cfgs: [0.5] * len(cfgs), config, config_cls,
                             default_resolution=RES)
    core = run_search(search)
    trainer = SimpleNamespace(ckpt_path=str(ckpt), datamodule=None)
    result = CoSearchCallback(config)._result(trainer, SimpleNamespace(net=net), core, "final")
    (root / "cosearch").mkdir()
    (root / "cosearch" / "result.json").write_text(json.dumps(result))
    return root
