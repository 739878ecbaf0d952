"""Workload readers: torch modules, ONNX graphs, torchvision models -> hwmodel.Layer lists."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torchvision")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from hwmodel import Layer  # noqa: E402
from hwmodel.workloads import from_module, from_onnx, model_layers, torchvision_model  # noqa: E402

RESNET50_MACS = 4_089_184_256  # conv + fc MACs of torchvision resnet50 at 224x224, batch 1


def total_macs(layers: list[Layer]) -> int:
    return sum(layer.macs * layer.count for layer in layers)


def flop_counter_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Independent count: torch's aten-level FLOP counter (2 FLOPs per conv/mm MAC)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(shape))
    return counter.get_total_flops() // 2


def keys(layers: list[Layer]) -> list[tuple]:
    return [(layer.shape_key, layer.count) for layer in layers]


class Toy(nn.Module):
    """Strided, padded, depthwise-dilated, asymmetric-stride, 1-D conv and 2-D / 3-D linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, groups=8, dilation=2, padding=2)
        self.grouped = nn.Conv2d(8, 16, (3, 1), stride=(2, 1), groups=2)
        self.seq = nn.Conv1d(16, 12, 5, stride=2, dilation=2, padding=3)
        self.tok = nn.Linear(12, 6)
        self.fc = nn.Linear(6, 10)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.grouped(self.act(self.dw(self.stem(x))))  # [B, 16, 3, 8]
        y = self.seq(y.flatten(2))  # [B, 12, 11]
        z = self.tok(y.transpose(1, 2))  # [B, 11, 6]: 11 tokens
        return self.fc(z.mean(1))  # [B, 10]


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x)[0]


@pytest.fixture(scope="module")
def resnet50() -> nn.Module:
    return torchvision_model("resnet50")


def test_resnet50_total_macs(resnet50: nn.Module) -> None:
    layers = from_module(resnet50, (1, 3, 224, 224))
    assert total_macs(layers) == RESNET50_MACS
    assert flop_counter_macs(resnet50, (1, 3, 224, 224)) == RESNET50_MACS
    assert layers[0] == Layer(K=64, C=3, P=112, Q=112, R=7, S=7, stride=2, name="conv1")
    assert layers[-1] == Layer(K=1000, C=2048, name="fc")


def test_merge_keeps_macs_and_first_seen_order(resnet50: nn.Module) -> None:
    merged = from_module(resnet50, (2, 3, 64, 64))
    unmerged = from_module(resnet50, (2, 3, 64, 64), merge=False)
    assert len(unmerged) == 54 and len(merged) < len(unmerged)
    assert total_macs(merged) == total_macs(unmerged) == flop_counter_macs(resnet50, (2, 3, 64, 64))
    assert sum(layer.count for layer in merged) == len(unmerged)
    assert all(layer.count == 1 for layer in unmerged)
    first_seen = list(dict.fromkeys(layer.shape_key for layer in unmerged))
    assert [layer.shape_key for layer in merged] == first_seen
    assert all(layer.N == 2 for layer in merged)


def test_mobilenet_v2_depthwise() -> None:
    layers = model_layers("mobilenet_v2", resolution=96)
    depthwise = [layer for layer in layers if layer.G > 1]
    assert depthwise and all(layer.K == 1 and layer.C == 1 and layer.is_depthwise for layer in depthwise)
    assert depthwise[0] == Layer(K=1, C=1, G=32, P=48, Q=48, R=3, S=3, name="features.1.conv.0.0")


@pytest.mark.parametrize("name", ["vgg16", "squeezenet1_0", "mnasnet1_0"])
def test_torchvision_models_load(name: str) -> None:
    model = torchvision_model(name)
    layers = from_module(model, (1, 3, 112, 112))
    assert layers and all(isinstance(layer, Layer) for layer in layers)
    assert total_macs(layers) == flop_counter_macs(model, (1, 3, 112, 112))


def test_unknown_torchvision_model() -> None:
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet51'.*resnet50"):
        torchvision_model("resnet51")


def test_toy_shapes() -> None:
    layers = from_module(Toy(), (2, 3, 16, 16), merge=False)
    assert layers == [
        Layer(K=8, C=3, P=8, Q=8, R=3, S=3, N=2, stride=2, name="stem"),
        Layer(K=1, C=1, P=8, Q=8, R=3, S=3, N=2, G=8, dilation=2, name="dw"),
        Layer(K=8, C=4, P=3, Q=8, R=3, S=1, N=2, G=2, stride=(2, 1), name="grouped"),
        Layer(K=12, C=16, P=1, Q=11, R=1, S=5, N=2, stride=(1, 2), dilation=(1, 2), name="seq"),
        Layer(K=6, C=12, N=2, P=11, name="tok"),
        Layer(K=10, C=6, N=2, name="fc"),
    ]
    assert total_macs(layers) == flop_counter_macs(Toy(), (2, 3, 16, 16))


def test_shared_module_called_twice_counts_twice() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(conv, nn.BatchNorm2d(4), conv).train()
    layers = from_module(model, (1, 4, 8, 8))
    assert len(layers) == 1 and layers[0].count == 2 and layers[0].name == "0"
    assert model.training and model[1].num_batches_tracked == 0  # mode restored, BN stats untouched


@pytest.mark.parametrize(
    ("model", "shape", "match"),
    [
        (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 4, 2)), (1, 3, 8, 8), r"'1' \(ConvTranspose2d\)"),
        (nn.Sequential(nn.Conv3d(1, 2, 3)), (1, 1, 4, 4, 4), r"'0' \(Conv3d\)"),
        (nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), (2, 4), r"'1' \(LSTM\)"),
        (Attention(), (3, 1, 8), r"'attn' \(MultiheadAttention\)"),
        (nn.Sequential(nn.TransformerEncoderLayer(8, 2)), (3, 1, 8), r"'0' \(TransformerEncoderLayer\)"),
    ],
)
def test_unsupported_module_raises(model: nn.Module, shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_module(model, shape)
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())


def export(model: nn.Module, shape: tuple[int, ...], path: Path, dynamo: bool = False, **kwargs: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), dynamo=dynamo, **kwargs)
    return path


@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_matches_module(tmp_path: Path, dynamo: bool) -> None:
    model, shape = Toy(), (2, 3, 16, 16)
    path = export(model, shape, tmp_path / "toy.onnx", dynamo=dynamo)
    assert keys(from_onnx(path, merge=False)) == keys(from_module(model, shape, merge=False))


def test_onnx_external_weights_deleted(tmp_path: Path) -> None:
    model, shape = torchvision_model("mobilenet_v2"), (1, 3, 64, 64)
    proto = onnx.load(str(export(model, shape, tmp_path / "full.onnx")))
    expected = keys(from_module(model, shape))
    assert keys(from_onnx(tmp_path / "full.onnx")) == expected
    onnx.save_model(
        proto, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0
    )
    (tmp_path / "ext.data").unlink()
    assert keys(from_onnx(tmp_path / "ext.onnx")) == expected


def test_onnx_symbolic_batch_needs_input_shape(tmp_path: Path) -> None:
    model = Toy()
    axes = {"x": {0: "batch"}}
    path = export(model, (2, 3, 16, 16), tmp_path / "dyn.onnx", input_names=["x"], dynamic_axes=axes)
    with pytest.raises(ValueError, match="pass input_shape"):
        from_onnx(path)
    assert keys(from_onnx(path, input_shape=(5, 3, 16, 16))) == keys(from_module(model, (5, 3, 16, 16)))


def test_onnx_unsupported_node_raises(tmp_path: Path) -> None:
    path = export(nn.Sequential(nn.ConvTranspose2d(3, 4, 2)), (1, 3, 8, 8), tmp_path / "ct.onnx")
    name = next(node.name for node in onnx.load(str(path)).graph.node if node.op_type == "ConvTranspose")
    with pytest.raises(ValueError, match=rf"{name!r} \(ConvTranspose\)"):
        from_onnx(path)


def test_hwmodel_imports_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = sys.modules['onnx'] = None; import hwmodel.workloads"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_onnx_hand_built_graph_without_weights(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], name="gemm", transA=1),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="matmul"),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 3]),  # transposed: 3 rows of 16 features
            helper.make_tensor_value_info("w1", TensorProto.FLOAT, [16, 32]),
            helper.make_tensor_value_info("w2", TensorProto.FLOAT, [32, 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    onnx.save_model(helper.make_model(graph), str(tmp_path / "g.onnx"))
    assert from_onnx(tmp_path / "g.onnx") == [Layer(K=32, C=16, N=3, name="gemm"), Layer(K=8, C=32, N=3, name="matmul")]
    with pytest.raises(ValueError, match="rank 3; the graph input has rank 2"):
        from_onnx(tmp_path / "g.onnx", input_shape=(1, 16, 3))


# --- hostile files ----------------------------------------------------------------------------------------
def _graph_file(tmp_path: Path, node: onnx.NodeProto, inputs: dict[str, list[int]]) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                            for n, s in inputs.items()],
                              [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)])
    path = tmp_path / f"{node.name}.onnx"
    onnx.save_model(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("kind", ["truncated", "random", "text", "png", "empty"])
def test_onnx_corrupt_file_is_a_value_error_naming_it(tmp_path: Path, kind: str) -> None:
    from onnx import helper

    good = _graph_file(tmp_path, helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
                       {"x": [1, 8, 8, 8], "w": [4, 8, 3, 3]}).read_bytes()
    rng = random.Random(0)
    data = {"truncated": good[: len(good) // 2], "random": rng.randbytes(512), "text": b"hello, not a model\n",
            "png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(200), "empty": b""}[kind]
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=str(path)):
        from_onnx(path)
    with pytest.raises(ValueError, match="does not exist"):
        from_onnx(tmp_path / "missing.onnx")


@pytest.mark.parametrize(("op", "attrs", "inputs", "match"), [
    ("Conv", {"group": 3}, {"x": [1, 8, 8, 8], "w": [6, 2, 3, 3]}, "group=3 does not divide the 8 input channels"),
    ("Conv", {"group": 4}, {"x": [1, 8, 8, 8], "w": [6, 2, 3, 3]}, "group=4 does not divide the 6 output channels"),
    ("Conv", {}, {"x": [1, 8, 8, 8], "w": [16, 4, 3, 3]}, r"takes 4 x group 1 = 4 input channels, the data has 8"),
    ("Gemm", {}, {"a": [2, 8], "b": [4, 3]}, "inner dims differ"),
    ("Gemm", {"transB": 1}, {"a": [2, 8], "b": [3, 4]}, "inner dims differ"),
    ("MatMul", {}, {"a": [2, 5, 8], "b": [4, 3]}, r"inner dims differ: \[2, 5, 8\] x \[4, 3\]"),
])
def test_onnx_inconsistent_shapes_name_the_node(tmp_path: Path, op: str, attrs: dict, inputs: dict,
                                                match: str) -> None:
    from onnx import helper

    node = helper.make_node(op, list(inputs), ["y"], name=f"bad_{op.lower()}", **attrs)
    with pytest.raises(ValueError, match=rf"'bad_{op.lower()}' \({op}\).*{match}"):
        from_onnx(_graph_file(tmp_path, node, inputs))


def test_onnx_consistent_grouped_conv_and_transposed_gemm_still_read(tmp_path: Path) -> None:
    from onnx import helper

    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="grouped", group=2)
    assert from_onnx(_graph_file(tmp_path, conv, {"x": [1, 8, 8, 8], "w": [6, 4, 3, 3]}))[0].G == 2
    gemm = helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm_t", transB=1)
    assert from_onnx(_graph_file(tmp_path, gemm, {"a": [2, 8], "b": [3, 8]})) == [Layer(K=3, C=8, N=2, name="gemm_t",
                                                                                        op="linear")]
