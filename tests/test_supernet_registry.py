"""Supernet registry: specs round-trip, class paths of existing bundles still build, unknown classes say what is
registered."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

import supernet
from supernet import registry


def test_specs_of_both_supernets_round_trip():
    with torch.device("meta"):
        mbv3 = supernet.OFAMobileNetV3(width_mult=0.25, num_classes=10)
        resnet = supernet.OFAResNet50(num_classes=10, depth_list=(0, 2))
    assert supernet.supernet_spec(mbv3) == {  # the layout bundles' subnet.json hold
        "class_path": "supernet.OFAMobileNetV3",
        "init_args": {"width_mult": 0.25, "num_classes": 10, "ks_list": [3, 5, 7], "expand_list": [3, 4, 6],
                      "depth_list": [2, 3, 4], "dropout": 0.1}}
    assert supernet.supernet_spec(resnet) == {
        "class_path": "supernet.OFAResNet50",
        "init_args": {"num_classes": 10, "depth_list": [0, 2], "expand_list": [0.2, 0.25, 0.35],
                      "width_mult_list": [0.65, 0.8, 1.0], "dropout": 0.0}}
    for net in (mbv3, resnet):
        spec = supernet.supernet_spec(net)
        rebuilt = supernet.build_supernet(spec, device="meta")
        assert type(rebuilt) is type(net) and supernet.supernet_spec(rebuilt) == spec


def test_module_class_paths_build():
    spec = {"class_path": "supernet.mbv3.OFAMobileNetV3", "init_args": {"width_mult": 0.25, "num_classes": 3}}
    assert isinstance(supernet.build_supernet(spec, device="meta"), supernet.OFAMobileNetV3)


@pytest.mark.parametrize("class_path", ["supernet.NoSuchNet", "torch.nn.Linear", "os.system", "OFAResNet50x",
                                        "supernet.resnet.OFAMobileNetV3"])
def test_unknown_class_lists_the_registered(class_path):
    with pytest.raises(ValueError, match="registered: supernet.OFAMobileNetV3, supernet.OFAResNet50"):
        supernet.build_supernet({"class_path": class_path, "init_args": {}}, device="meta")


def test_unregistered_module_has_no_spec():
    with pytest.raises(ValueError, match="cannot describe supernet Linear: registered supernets are OFAMobileNetV3"):
        supernet.supernet_spec(nn.Linear(2, 2))


def test_register_a_new_supernet(monkeypatch):
    monkeypatch.setattr(registry, "_SUPERNETS", dict(registry._SUPERNETS))

    @supernet.register_supernet
    class TinyNet(nn.Module):
        def __init__(self, width: int = 4) -> None:
            super().__init__()
            self.width = width

        def init_args(self) -> dict[str, Any]:
            return {"width": self.width}

    spec = supernet.supernet_spec(TinyNet(width=6))
    assert spec == {"class_path": "supernet.TinyNet", "init_args": {"width": 6}}
    assert supernet.build_supernet(spec).width == 6
    assert "TinyNet" in supernet.list_supernets()

    class NoArgs(nn.Module):
        pass

    with pytest.raises(TypeError, match="init_args"):
        supernet.register_supernet(NoArgs)
