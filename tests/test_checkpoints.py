"""One checkpoint loader (``naas_train.checkpoints``): Lightning checkpoints of the supernet and of a fine-tuned
subnet, plain state dicts, the reference ``ofa`` package's published format; errors that name the file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn

import supernet
from naas_train.checkpoints import load_net_state, read_checkpoint
from torch_helpers import randomize_

torch.set_num_threads(2)
WIDTH, CLASSES = 0.5, 7
KS, EXPAND, DEPTH = [3, 5, 7], [3, 4, 6], [2, 3, 4]


def ours() -> supernet.OFAMobileNetV3:
    return supernet.OFAMobileNetV3(width_mult=WIDTH, num_classes=CLASSES, ks_list=KS, expand_list=EXPAND,
                                   depth_list=DEPTH)


@pytest.fixture(scope="module")
def ofa_net() -> nn.Module:
    """The reference package's supernet with random weights (a stand-in for a published checkpoint)."""
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    ref = networks.OFAMobileNetV3(n_classes=CLASSES, width_mult=WIDTH, ks_list=KS, expand_ratio_list=EXPAND,
                                  depth_list=DEPTH)
    return randomize_(ref, seed=0).eval()


def configs() -> list[supernet.MBV3Config]:
    space = ours().space
    rng = np.random.default_rng(0)
    return [space.max_config(48), space.min_config(32), *(space.sample(rng, resolutions=(32, 40)) for _ in range(2))]


# --- OFA's published format -----------------------------------------------------------------------------
def test_ofa_published_checkpoint_loads_and_matches_ofa(ofa_net, tmp_path):
    """OFA's ``.pth`` files hold ``{"state_dict": ...}`` in ofa's key layout; loaded into our supernet, it computes
    what ofa's does for the same active subnet (and so does the extracted subnet)."""
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w0.5.pth"
    torch.save({"state_dict": ofa_net.state_dict()}, path)
    net = ours()
    net.load_state_dict(load_net_state(path))  # strict: every key converted and matched
    net.eval()
    for cfg in configs():
        ofa_net.set_active_subnet(ks=cfg.ks, e=cfg.e, d=cfg.d)
        net.set_active(cfg)
        x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
        with torch.no_grad():
            expected = ofa_net(x)
            assert (net(x) - expected).abs().max() <= 1e-5, cfg
            assert (net.extract(cfg).eval()(x) - expected).abs().max() <= 1e-5, cfg


def test_bare_ofa_state_dict_loads_the_same(ofa_net, tmp_path):
    torch.save({"state_dict": ofa_net.state_dict()}, tmp_path / "published.pth")
    torch.save(ofa_net.state_dict(), tmp_path / "bare.pth")
    assert_same_state(load_net_state(tmp_path / "bare.pth"), load_net_state(tmp_path / "published.pth"))


def test_ofa_layout_detected_by_key_names(ofa_net):
    assert supernet.is_ofa_state_dict(ofa_net.state_dict())
    assert supernet.is_ofa_state_dict({"blocks.3.mobile_inverted_conv.depth_conv.bn.weight": torch.ones(1)})
    net = ours()
    assert not supernet.is_ofa_state_dict(net.state_dict())
    assert not supernet.is_ofa_state_dict(net.extract(net.space.min_config(32)).state_dict())
    with torch.device("meta"):
        resnet = supernet.OFAResNet50(num_classes=CLASSES)
    assert not supernet.is_ofa_state_dict(resnet.state_dict())
    assert not supernet.is_ofa_state_dict(resnet.extract(resnet.space.min_config(32)).state_dict())


# --- this package's formats -----------------------------------------------------------------------------
def assert_same_state(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_lightning_and_plain_checkpoints(tmp_path):
    net = randomize_(ours(), seed=1)
    want = net.state_dict()
    teacher = {f"teacher.{k}": torch.zeros_like(v) for k, v in want.items()}
    files = {
        "supernet_module.ckpt": {"state_dict": {**{f"net.{k}": v for k, v in want.items()}, **teacher},
                                 "epoch": 3, "hyper_parameters": {"kd_ratio": 1.0}},
        "plain.pt": want,
        "wrapped.pt": {"state_dict": want},
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
        assert_same_state(load_net_state(tmp_path / name), want)


def test_finetune_checkpoint_gives_the_subnet(tmp_path):
    """A FinetuneModule checkpoint holds the extracted subnet under ``net.*`` (and the teacher, left out)."""
    net = randomize_(ours(), seed=2)
    sub = net.extract(net.space.min_config(32))
    teacher = net.extract(net.space.max_config(32))
    obj = {"state_dict": {**{f"net.{k}": v for k, v in sub.state_dict().items()},
                          **{f"teacher.{k}": v for k, v in teacher.state_dict().items()}},
           "hyper_parameters": {"subnet": net.space.min_config(32).to_dict()}}
    torch.save(obj, tmp_path / "finetuned.ckpt")
    state = load_net_state(tmp_path / "finetuned.ckpt")
    assert_same_state(state, sub.state_dict())
    assert read_checkpoint(tmp_path / "finetuned.ckpt")["hyper_parameters"] == obj["hyper_parameters"]


# --- errors ---------------------------------------------------------------------------------------------
def write_truncated(path):
    torch.save({"state_dict": ours().state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_FILES = {
    "missing": (lambda path: None, "does not exist"),
    "empty": (lambda path: path.write_bytes(b""), "is empty"),
    "truncated": (write_truncated, "cannot read checkpoint"),
    "garbage": (lambda path: path.write_bytes(b"PK\x03\x04 not a checkpoint"), "cannot read checkpoint"),
    "text": (lambda path: path.write_text("state_dict: none\n"), "cannot read checkpoint"),
    "pickled module": (lambda path: torch.save(nn.Linear(2, 2), path), "cannot read checkpoint"),
    "list": (lambda path: torch.save([torch.ones(1)], path), "holds a list, not a state dict"),
    "empty dict": (lambda path: torch.save({}, path), "holds an empty dict"),
    "no tensors": (lambda path: torch.save({"state_dict": {"epoch": 1}}, path), "holds no network weights"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_named_in_the_error(tmp_path, kind):
    write, reason = BAD_FILES[kind]
    path = tmp_path / f"{kind.replace(' ', '_')}.ckpt"
    write(path)
    with pytest.raises(ValueError, match=re.escape(str(path))) as info:
        load_net_state(path)
    assert reason in str(info.value)
