"""Tests of the supernet package: published OFA facts, exact extraction, configs, sorting, BN, profiling."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import supernet
from hwmodel import Layer
from supernet.profiling import main as profile_main
from torch_helpers import randomize_

torch.set_num_threads(2)
FAST = settings(max_examples=6, deadline=None, derandomize=True)


# --- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mbv3() -> supernet.OFAMobileNetV3:
    return randomize_(supernet.OFAMobileNetV3(num_classes=10), seed=0).eval()


@pytest.fixture(scope="module")
def resnet() -> supernet.OFAResNet50:
    return randomize_(supernet.OFAResNet50(num_classes=10), seed=1).eval()


def mbv3_configs(space: supernet.MBV3Space, resolutions=(32, 48)):
    n = space.n_blocks
    return st.builds(
        supernet.MBV3Config,
        ks=st.lists(st.sampled_from(space.ks_list), min_size=n, max_size=n),
        e=st.lists(st.sampled_from(space.expand_list), min_size=n, max_size=n),
        d=st.lists(st.sampled_from(space.depth_list), min_size=space.n_stages, max_size=space.n_stages),
        r=st.sampled_from(resolutions),
    )


def resnet_configs(space: supernet.ResNetSpace, resolutions=(32, 40)):
    return st.builds(
        supernet.ResNetConfig,
        d=st.lists(st.sampled_from(space.depth_list), min_size=space.n_stages + 1, max_size=space.n_stages + 1),
        e=st.lists(st.sampled_from(space.expand_list), min_size=space.n_blocks, max_size=space.n_blocks),
        w=st.lists(
            st.integers(0, len(space.width_mult_list) - 1), min_size=space.n_stages + 2, max_size=space.n_stages + 2
        ),
        r=st.sampled_from(resolutions),
    )


MBV3_SPACE, RESNET_SPACE = supernet.MBV3Space(), supernet.ResNetSpace()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counted_macs(net: nn.Module, resolution: int) -> int:
    """MACs from the shapes the layers actually see in a forward (reference for ``profile``)."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in handles:
        h.remove()
    return total


# --- published facts --------------------------------------------------------------------------------
def test_mbv3_published_params_and_macs():
    net = supernet.OFAMobileNetV3()
    assert n_params(net) == 7_678_880
    big, small = net.space.max_config(224), net.space.min_config(224)
    assert supernet.profile(net, big) == {"params": 7_664_760, "macs": 566_170_656}
    assert supernet.profile(net, small) == {"params": 3_410_792, "macs": 121_278_672}
    assert n_params(net.extract(big)) == 7_664_760 and n_params(net.extract(small)) == 3_410_792
    wide = supernet.OFAMobileNetV3(width_mult=1.2)
    assert supernet.profile(wide, wide.space.max_config())["params"] == 10_701_632
    assert n_params(wide.extract(wide.space.min_config())) == 4_602_456


def test_resnet50_published_params_and_macs():
    with torch.device("meta"):
        net = supernet.OFAResNet50()
    assert round(n_params(net) / 1e6, 2) == 48.11
    big, small = supernet.profile(net, net.space.max_config()), supernet.profile(net, net.space.min_config())
    assert round(big["macs"] / 1e9, 2) == 7.49
    assert round(small["params"] / 1e6, 2) == 6.54 and round(small["macs"] / 1e9, 2) == 0.96
    assert big["params"] == n_params(net) == 48_105_992


def test_mbv3_architecture_shape():
    net = supernet.OFAMobileNetV3()
    assert (net.space.n_blocks, net.space.n_stages, net.space.max_depth) == (20, 5, 4)
    widths = [net.blocks[1 + 4 * s].point_linear.conv.out_channels for s in range(5)]
    assert widths == [24, 40, 80, 112, 160]
    assert [net.blocks[1 + 4 * s].stride for s in range(5)] == [2, 2, 2, 1, 2]
    assert [net.blocks[1 + 4 * s].se is not None for s in range(5)] == [False, True, False, True, True]
    assert isinstance(net.blocks[9].depth_conv.act, nn.Hardswish) and isinstance(net.blocks[5].depth_conv.act, nn.ReLU)
    assert net.final_expand_layer.conv.out_channels == 960 and net.feature_mix_layer.conv.out_channels == 1280
    assert not hasattr(net.feature_mix_layer, "bn")


# --- extraction --------------------------------------------------------------------------------------
@FAST
@given(cfg=mbv3_configs(MBV3_SPACE))
def test_mbv3_extract_matches_supernet(mbv3, cfg):
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
    mbv3.set_active(cfg)
    sub = mbv3.extract(cfg).eval()
    with torch.no_grad():
        ref, out = mbv3(x), sub(x)
    assert out.abs().max() > 1e-3
    assert (ref - out).abs().max() <= 1e-5
    assert all(type(m).__module__.startswith("torch.nn") for m in sub.modules() if not list(m.children()))


@FAST
@given(cfg=resnet_configs(RESNET_SPACE))
def test_resnet_extract_matches_supernet(resnet, cfg):
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
    resnet.set_active(cfg)
    sub = resnet.extract(cfg).eval()
    with torch.no_grad():
        ref, out = resnet(x), sub(x)
    assert out.abs().max() > 1e-3
    assert (ref - out).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_extract_leaves_active_config(mbv3):
    cfg = mbv3.space.min_config(32)
    mbv3.set_active(cfg)
    mbv3.extract(mbv3.space.max_config())
    assert mbv3.active_config == cfg


def test_elastic_kernel_is_transformed_centre_crop():
    conv = supernet.elastic_ops.ElasticDepthwiseConv2d(4, (3, 5, 7))
    assert torch.equal(conv.active_weight(4, 5), conv.weight[:, :, 1:6, 1:6])  # identity transforms
    assert torch.equal(conv.active_weight(4, 3), conv.weight[:, :, 2:5, 2:5])
    conv.active_weight(4, 3).sum().backward()
    assert conv.transforms["7to5"].grad.abs().sum() > 0 and conv.transforms["5to3"].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="kernel_size"):
        conv.active_weight(4, 9)


def test_elastic_bn_updates_active_slice_in_place():
    bn = supernet.elastic_ops.ElasticBatchNorm2d(8).train()
    bn(torch.randn(4, 3, 5, 5) + 2.0)
    assert (bn.running_mean[:3] != 0).all() and (bn.running_mean[3:] == 0).all()
    assert int(bn.num_batches_tracked) == 1


def test_extracted_subnet_exports(mbv3):
    cfg = mbv3.space.sample(np.random.default_rng(3), resolutions=(32,))
    sub = mbv3.extract(cfg).eval()
    x = torch.randn(1, 3, 32, 32)
    exported = torch.export.export(sub, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), sub(x), atol=1e-5)


def test_extracted_subnet_onnx_matches(mbv3, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    cfg = mbv3.space.sample(np.random.default_rng(4), resolutions=(32,))
    sub = mbv3.extract(cfg).eval()
    x = torch.randn(1, 3, 32, 32)
    path = tmp_path / "sub.onnx"
    torch.onnx.export(sub, (x,), str(path), dynamo=True)
    out = ort.InferenceSession(str(path)).run(None, {ort.InferenceSession(str(path)).get_inputs()[0].name: x.numpy()})[
        0
    ]
    with torch.no_grad():
        assert np.abs(out - sub(x).numpy()).max() <= 1e-4


# --- OFA checkpoint interop (the reference ``ofa`` package is a test-only oracle) ------------------
@pytest.fixture(scope="module")
def ofa_mbv3_pair():
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    ref = randomize_(
        networks.OFAMobileNetV3(n_classes=10, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]),
        seed=4,
    )
    ours = supernet.OFAMobileNetV3(num_classes=10)
    ours.load_ofa_state_dict(ref.state_dict())
    return ref.eval(), ours.eval()


@pytest.fixture(scope="module")
def ofa_resnet_pair():
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    ref = networks.OFAResNets(
        n_classes=10, depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35], width_mult_list=[0.65, 0.8, 1.0]
    )
    ref = randomize_(ref, seed=5)
    ours = supernet.OFAResNet50(num_classes=10)
    ours.load_ofa_state_dict(ref.state_dict())
    return ref.eval(), ours.eval()


@FAST
@given(cfg=mbv3_configs(MBV3_SPACE))
def test_ofa_mbv3_checkpoint_loads_and_matches(ofa_mbv3_pair, cfg):
    ref, ours = ofa_mbv3_pair
    ref.set_active_subnet(ks=cfg.ks, e=cfg.e, d=cfg.d)
    ours.set_active(cfg)
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
    with torch.no_grad():
        expected = ref(x)
        assert (ours(x) - expected).abs().max() <= 1e-5
        assert (ours.extract(cfg).eval()(x) - expected).abs().max() <= 1e-5


@FAST
@given(cfg=resnet_configs(RESNET_SPACE))
def test_ofa_resnet_checkpoint_loads_and_matches(ofa_resnet_pair, cfg):
    ref, ours = ofa_resnet_pair
    ref.set_active_subnet(d=cfg.d, e=cfg.e, w=cfg.w)
    ours.set_active(cfg)
    x = torch.randn(2, 3, cfg.r, cfg.r, generator=torch.Generator().manual_seed(cfg.r))
    with torch.no_grad():
        expected = ref(x)
        assert (ours(x) - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max().item())


def test_ofa_legacy_checkpoint_keys_convert():
    legacy = {
        "blocks.3.mobile_inverted_conv.depth_conv.bn.weight": torch.ones(1),
        "blocks.3.mobile_inverted_conv.depth_conv.conv.conv.weight": torch.ones(1),
        "blocks.5.conv.depth_conv.se.fc.reduce.bias": torch.ones(1),
        "blocks.1.conv.depth_conv.conv.7to5_matrix": torch.ones(1),
        "input_stem.1.conv.conv.conv.weight": torch.ones(1),
        "classifier.linear.linear.bias": torch.ones(1),
    }
    assert list(supernet.convert_ofa_state_dict(legacy)) == [
        "blocks.3.depth_conv.bn.weight",
        "blocks.3.depth_conv.conv.weight",
        "blocks.5.se.reduce.bias",
        "blocks.1.depth_conv.conv.transforms.7to5",
        "input_stem.1.conv.weight",
        "classifier.linear.bias",
    ]


# --- profiling and layer shapes -----------------------------------------------------------------------
@FAST
@given(cfg=mbv3_configs(MBV3_SPACE, resolutions=(64, 96)))
def test_mbv3_profile_matches_extracted(mbv3, cfg):
    sub = mbv3.extract(cfg)
    stats = supernet.profile(mbv3, cfg)
    assert stats["params"] == n_params(sub)
    assert stats["macs"] == counted_macs(sub, cfg.r)
    layers = mbv3.layer_shapes(cfg)
    assert all(isinstance(layer, Layer) and layer.count == 1 for layer in layers)
    assert len(layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in sub.modules())
    assert sum(layer.macs for layer in layers) == stats["macs"]


@FAST
@given(cfg=resnet_configs(RESNET_SPACE, resolutions=(64, 72)))
def test_resnet_profile_matches_extracted(resnet, cfg):
    sub = resnet.extract(cfg)
    stats = supernet.profile(resnet, cfg)
    assert stats["params"] == n_params(sub)
    assert stats["macs"] == counted_macs(sub, cfg.r)
    assert len(resnet.layer_shapes(cfg)) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in sub.modules())


def test_layer_shapes_conventions(mbv3):
    layers = {layer.name: layer for layer in mbv3.layer_shapes(mbv3.space.max_config(224))}
    assert layers["first_conv"].dims == dict(N=1, G=1, K=16, C=3, P=112, Q=112, R=3, S=3)
    dw = layers["blocks.1.dw"]
    assert (dw.G, dw.K, dw.C, dw.R, dw.P, dw.stride) == (96, 1, 1, 7, 56, (2, 2)) and dw.is_depthwise
    se = layers["blocks.5.se_reduce"]
    assert (se.K, se.C, se.P, se.Q) == (40, 144, 1, 1)
    assert (layers["classifier"].K, layers["classifier"].C, layers["classifier"].P) == (10, 1280, 1)


def test_profile_cli_json(capsys):
    assert profile_main(["--space", "mbv3", "--config", "min", "--resolution", "224", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["params"], out["macs"]) == (3_410_792, 121_278_672)
    assert sum(Layer.from_dict(d).macs for d in out["layers"]) == out["macs"]
    cfg = json.dumps(MBV3_SPACE.max_config(160).to_dict())
    assert profile_main(["--space", "mbv3", "--width-mult", "1.2", "--config", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 10_701_632
    assert profile_main(["--space", "resnet50", "--config", "max", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == 7_491_643_904
    with pytest.raises(SystemExit):
        profile_main(["--space", "mbv3", "--config", '{"ks": [3], "e": [3], "d": [2]}'])
    assert "ks must have 20 entries" in capsys.readouterr().err


# --- configs and search operators --------------------------------------------------------------------
def test_config_dict_round_trip_and_ofa_format():
    cfg = MBV3_SPACE.sample(np.random.default_rng(0), resolutions=(160, 192))
    d = cfg.to_dict()
    assert set(d) == {"ks", "e", "d", "r"} and d["r"] == [cfg.r]
    assert supernet.MBV3Config.from_dict(json.loads(json.dumps(d))) == cfg
    published = {"wid": None, "ks": [7] * 20, "e": [6.0] * 20, "d": [4] * 5, "r": 224}
    assert MBV3_SPACE.validate(supernet.MBV3Config.from_dict(published)) == MBV3_SPACE.max_config(224)
    rcfg = RESNET_SPACE.sample(np.random.default_rng(1))
    assert supernet.ResNetConfig.from_dict(rcfg.to_dict()) == rcfg


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"ks": [7] * 19, "e": [6] * 20, "d": [4] * 5}, "ks must have 20 entries"),
        ({"ks": [9] * 20, "e": [6] * 20, "d": [4] * 5}, r"ks\[0\] = 9 is not allowed; allowed: \[3, 5, 7\]"),
        ({"ks": [7] * 20, "e": [5] * 20, "d": [4] * 5}, r"e\[0\] = 5"),
        ({"ks": [7] * 20, "e": [6] * 20, "d": [1] * 5}, r"d\[0\] = 1 is not allowed; allowed: \[2, 3, 4\]"),
        ({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [0]}, "r must be a positive integer"),
    ],
)
def test_invalid_mbv3_config_names_field(data, match):
    with pytest.raises(ValueError, match=match):
        MBV3_SPACE.validate(supernet.MBV3Config.from_dict(data))


def test_invalid_inputs_raise_value_error():
    with pytest.raises(ValueError, match="unknown MBV3Config field"):
        supernet.MBV3Config.from_dict({"ks": [], "e": [], "d": [], "depth": []})
    with pytest.raises(ValueError, match="ks_list must hold odd"):
        supernet.OFAMobileNetV3(ks_list=(3, 4))
    with pytest.raises(ValueError, match="width_mult"):
        supernet.OFAMobileNetV3(width_mult=0)
    with pytest.raises(ValueError, match="expand_list has value"):
        MBV3_SPACE.sample(np.random.default_rng(0), expand_list=(8,))
    with pytest.raises(ValueError, match="w must have 6 entries"):
        RESNET_SPACE.validate(supernet.ResNetConfig([2] * 5, [0.35] * 18, [0] * 5))
    with pytest.raises(ValueError, match="expected a MBV3Config, got ResNetConfig"):
        MBV3_SPACE.validate(RESNET_SPACE.max_config())
    with pytest.raises(ValueError, match="resolutions"):
        MBV3_SPACE.sample(np.random.default_rng(0), resolutions=())


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_sample_mutate_crossover_stay_in_space(seed):
    rng = np.random.default_rng(seed)
    a = MBV3_SPACE.sample(rng, ks_list=(3, 7), expand_list=(6,), depth_list=(4,), resolutions=(128, 160))
    assert set(a.ks) <= {3, 7} and set(a.e) == {6} and set(a.d) == {4} and a.r in (128, 160)
    b = MBV3_SPACE.sample(rng)
    for cfg in (MBV3_SPACE.mutate(a, rng, prob=0.5, resolutions=(192,)), MBV3_SPACE.crossover(a, b, rng)):
        MBV3_SPACE.validate(cfg)
    assert MBV3_SPACE.mutate(a, rng, prob=0.0, resolutions=(192,)) == a
    child = MBV3_SPACE.crossover(a, b, rng)
    assert all(c in (x, y) for c, x, y in zip(child.ks + child.e + child.d, a.ks + a.e + a.d, b.ks + b.e + b.d))
    r = RESNET_SPACE.sample(rng, resolutions=(160,))
    assert r.d[0] in (0, 2)
    RESNET_SPACE.validate(RESNET_SPACE.crossover(r, RESNET_SPACE.mutate(r, rng, prob=1.0), rng))


def test_sampling_is_reproducible_and_encoding_fixed_length():
    a = MBV3_SPACE.sample(np.random.default_rng(7))
    assert a == MBV3_SPACE.sample(np.random.default_rng(7))
    assert MBV3_SPACE.encode(a).shape == MBV3_SPACE.encode(MBV3_SPACE.min_config()).shape == (20 * 6 + 13,)
    enc = MBV3_SPACE.encode(MBV3_SPACE.min_config(200))
    assert enc[:120].sum() == 2 * 2 * 5  # two active blocks per stage, one-hot ks and e
    assert np.allclose(enc[120:], [0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0])  # 200 px between the 192 and 208 hats
    renc = RESNET_SPACE.encode(RESNET_SPACE.max_config())
    assert renc.shape == RESNET_SPACE.encode(RESNET_SPACE.min_config()).shape


# --- channel sorting ---------------------------------------------------------------------------------
def _outputs(net, cfgs, x):
    outs = []
    with torch.no_grad():
        for cfg in cfgs:
            net.set_active(cfg)
            outs.append(net(x))
    return outs


@pytest.mark.parametrize("kind", ["mbv3", "resnet"])
def test_sort_channels_keeps_function_and_returns_permutations(kind):
    torch.manual_seed(0)
    net = supernet.OFAMobileNetV3(num_classes=10) if kind == "mbv3" else supernet.OFAResNet50(num_classes=10)
    net = randomize_(net, seed=2).eval()
    rng = np.random.default_rng(0)
    cfgs = [net.space.max_config(32)] + [net.space.sample(rng, resolutions=(32,)) for _ in range(3)]
    x = torch.randn(2, 3, 32, 32)
    before_state = copy.deepcopy(net.state_dict())
    before = _outputs(net, cfgs, x)
    perms = net.sort_channels(keep=64)  # every nested width keeps its channel set
    for b, a in zip(before, _outputs(net, cfgs, x)):
        assert torch.allclose(a, b, atol=1e-5)
    for name, steps in perms.items():  # the returned permutations reproduce the new state
        t = before_state[name]
        for dim, idx in steps:
            t = t.index_select(dim, idx)
        assert torch.equal(t, net.state_dict()[name])
    full = net.sort_channels(keep=0)
    assert full and torch.allclose(_outputs(net, cfgs[:1], x)[0], before[0], atol=1e-5)  # max subnet unchanged
    block = net.blocks[2]
    reader = block.point_linear.conv.weight if kind == "mbv3" else block.conv3.conv.weight
    importance = reader.abs().sum((0, 2, 3))
    assert (importance[:-1] >= importance[1:]).all()


def test_sort_permutations_apply_to_optimizer_state():
    net = supernet.OFAMobileNetV3(num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    name = "blocks.2.inverted_bottleneck.conv.weight"
    param = dict(net.named_parameters())[name]
    momentum = opt.state[param]["momentum_buffer"].clone()
    perms = net.sort_channels()
    for dim, idx in perms[name]:
        momentum = momentum.index_select(dim, idx)
    assert dict(net.named_parameters())[name] is param  # Parameter objects survive, optimizer keeps them
    assert momentum.shape == param.shape


# --- BN recalibration --------------------------------------------------------------------------------
def test_recalibrate_bn_is_exact_batch_average():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))
    batches = [torch.randn(4, 3, 8, 8) * (i + 1) for i in range(3)]
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    supernet.recalibrate_bn(model, [(b, 0) for b in batches])
    assert torch.allclose(model[1].running_mean, torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0), atol=1e-6)
    assert torch.allclose(model[1].running_var, torch.stack([f.var((0, 2, 3)) for f in feats]).mean(0), atol=1e-5)
    assert model.training  # mode restored


def test_recalibrate_bn_supernet_equals_extracted():
    net = randomize_(supernet.OFAMobileNetV3(num_classes=10), seed=3)
    cfg = net.space.sample(np.random.default_rng(5), resolutions=(32,))
    net.set_active(cfg)
    sub = net.extract(cfg)
    batches = [torch.randn(4, 3, 32, 32) for _ in range(2)]
    block = net.blocks[net.active_block_ids()[0]]
    mid = block.mid_channels(block.in_channels, block.active_expand_ratio)
    inactive = block.depth_conv.bn.running_mean[mid:].clone()
    supernet.recalibrate_bn(net, batches)
    supernet.recalibrate_bn(sub, batches)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (net.eval()(x) - sub.eval()(x)).abs().max() <= 1e-4
    assert torch.equal(block.depth_conv.bn.running_mean[mid:], inactive)


# --- accuracy predictor ------------------------------------------------------------------------------
def test_accuracy_predictor_ranks_held_out_subnets():
    from scipy.stats import spearmanr

    with torch.device("meta"):
        net = supernet.OFAMobileNetV3()
    rng = np.random.default_rng(0)
    cfgs = [net.space.sample(rng, resolutions=(160, 176, 192, 208, 224)) for _ in range(500)]
    X = np.stack([net.space.encode(c) for c in cfgs])
    # A nonlinear target: log latency of a roofline-like model, max(compute, traffic) per layer, summed.
    y = np.array(
        [
            np.log(sum(max(layer.macs / 256, sum(layer.tensor_sizes.values()) / 16) for layer in net.layer_shapes(c)))
            for c in cfgs
        ]
    )
    pred = supernet.AccuracyPredictor(X.shape[1], seed=0).fit(X[:400], y[:400], epochs=30)
    rho = spearmanr(pred.predict(X[400:]), y[400:]).statistic
    assert rho >= 0.9
