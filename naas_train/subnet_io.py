"""The co-searched subnet as a plain module: from a fine-tuned checkpoint or extracted from the supernet's."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping as MappingABC
from typing import Any

import torch
import torch.nn as nn

from naas_train.checkpoints import load_net_state, net_state, read_checkpoint
from supernet import build_supernet, recalibrate_bn, supernet_spec

__all__ = ["infer_supernet_spec", "load_subnet", "prepare_validation", "subnet_resolution"]

#: Width multipliers tried when a checkpoint's shapes must tell an OFAMobileNetV3's (OFA publishes 1.0 and 1.2).
MBV3_WIDTHS: tuple[float, ...] = (1.0, 1.2, 0.75, 0.5, 0.35, 0.25, 1.5, 2.0, 0.125)


def infer_supernet_spec(space: MappingABC[str, Any], state: MappingABC[str, torch.Tensor]) -> dict[str, Any]:
    """The spec of a supernet from ``result.json``'s ``space`` and a checkpoint's weight shapes (used when no
    recipe or fine-tuned checkpoint says it): the width multiplier is the listed one whose shapes all match."""
    cls = space.get("class")
    if cls not in ("OFAMobileNetV3", "OFAResNet50"):
        raise ValueError(f"result.json space class {cls!r} is not OFAMobileNetV3 or OFAResNet50")
    unknown = ValueError(f"cannot work out the {cls} arguments from the checkpoint's weight shapes; pass the recipe "
                         "(naas-train export --config RECIPE) or a fine-tuned checkpoint")
    if "classifier.linear.weight" not in state:
        raise unknown
    args = {"num_classes": int(state["classifier.linear.weight"].shape[0]),
            **{k: list(v) for k, v in space.items() if k.endswith("_list")}}
    if cls == "OFAMobileNetV3":
        candidates = [{"class_path": "supernet.OFAMobileNetV3", "init_args": {"width_mult": w, **args}}
                      for w in MBV3_WIDTHS]
    else:
        candidates = [{"class_path": "supernet.OFAResNet50", "init_args": args}]
    want = {k: tuple(v.shape) for k, v in state.items()}
    for spec in candidates:
        net = build_supernet(spec, device="meta")
        if {k: tuple(v.shape) for k, v in net.state_dict().items()} == want:
            return spec
    raise unknown


def load_subnet(
    result: MappingABC[str, Any],
    checkpoint: str | os.PathLike[str] | None = None,
    supernet_checkpoint: str | os.PathLike[str] | None = None,
    supernet: nn.Module | None = None,
    datamodule: Any = None,
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """The subnet of ``result`` as a plain module in eval mode: ``(model, supernet_spec, source)``.

    From a fine-tuned checkpoint (:class:`naas_train.finetune.FinetuneModule`: the subnet's weights, its config
    and the supernet spec in the hyper-parameters), else extracted from the supernet checkpoint (argument, or
    ``result["supernet_checkpoint"]``; any format :mod:`naas_train.checkpoints` reads) into ``supernet`` (the
    recipe's) or an architecture inferred from the weights (with no checkpoint at all, ``supernet``'s weights as
    they are, e.g. right after training), with BN recalibrated on ``datamodule.bn_dataloader()`` when a data
    module is given.
    """
    if checkpoint is not None:
        return _finetuned_subnet(result, checkpoint)
    path = supernet_checkpoint or result.get("supernet_checkpoint")
    if path is None and supernet is None:
        raise ValueError("no checkpoint: give the fine-tuned checkpoint or the supernet checkpoint "
                         "(result.json does not name one)")
    if path is not None:
        state = load_net_state(path)
        if supernet is None:
            supernet = build_supernet(infer_supernet_spec(result["space"], state))
        try:
            supernet.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {path} does not fit the supernet {supernet_spec(supernet)}: {exc}") from None
    assert supernet is not None
    spec = supernet_spec(supernet)  # complete (defaults such as dropout included)
    cfg = type(supernet.space.max_config()).from_dict(result["subnet"])
    model = supernet.extract(cfg).cpu()
    recalibrated = False
    batches: list[torch.Tensor] = []
    if datamodule is not None and hasattr(datamodule, "bn_dataloader"):
        from naas_train.data import resize

        prepare_validation(datamodule)
        batches = [resize(x, subnet_resolution(result)) for x, _ in datamodule.bn_dataloader()]
        recalibrate_bn(model, batches)
        recalibrated = True
    source = {"kind": "supernet", "checkpoint": None if path is None else str(path), "bn_recalibrated": recalibrated}
    if result.get("precision"):
        if not batches:
            raise ValueError("a mixed-precision result needs a data module to calibrate the quantized subnet's "
                             "activation ranges (or a fine-tuned checkpoint, which holds them)")
        from supernet.quant import calibrate

        model = calibrate(quantized_structure(supernet, result, model), batches)
        source["quantization"] = "calibrated on the BN batches (post-training)"
    return model.eval(), spec, source


def quantized_structure(supernet: nn.Module, result: MappingABC[str, Any], model: nn.Module) -> nn.Module:
    """``model`` (the result's subnet) fake-quantized with ``result["precision"]`` (BN folded; observers on)."""
    from supernet.precision_space import policy_from_dict
    from supernet.quant import quantize_subnet

    cfg = type(supernet.space.max_config()).from_dict(result["subnet"])
    layers = supernet.layer_shapes(cfg, subnet_resolution(result))
    policy = policy_from_dict(result["precision"])
    return quantize_subnet(model.eval(), layers, policy)


def _finetuned_subnet(result: MappingABC[str, Any],
                      checkpoint: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """:func:`load_subnet` from a FinetuneModule checkpoint, which must hold ``result``'s subnet."""
    obj = read_checkpoint(checkpoint)
    hp = obj.get("hyper_parameters", {})
    if "state_dict" not in obj or "supernet_spec" not in hp or "subnet" not in hp:
        raise ValueError(f"checkpoint {checkpoint} is not a fine-tuned subnet (FinetuneModule) checkpoint")
    if json.dumps(hp["subnet"], sort_keys=True) != json.dumps(result["subnet"], sort_keys=True):
        raise ValueError(f"checkpoint {checkpoint} fine-tuned subnet {hp['subnet']}, but the result's subnet is "
                         f"{result['subnet']}: the accelerator and mappings belong to the result's subnet")
    if json.dumps(hp.get("precision"), sort_keys=True) != json.dumps(result.get("precision"), sort_keys=True):
        raise ValueError(f"checkpoint {checkpoint} was fine-tuned with precision {hp.get('precision')}, but the "
                         f"result's is {result.get('precision')}: the hardware numbers belong to the result's bits")
    spec = hp["supernet_spec"]
    quantized = bool(hp.get("precision"))
    net = build_supernet(spec, device="cpu" if quantized else "meta")  # folding BN needs real tensors
    model = net.extract(type(net.space.max_config()).from_dict(hp["subnet"]))
    if quantized:
        model = quantized_structure(net, result, model)
    try:
        model.load_state_dict(net_state(obj, checkpoint), assign=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {checkpoint} does not fit subnet {hp['subnet']}: {exc}") from None
    if quantized:
        from supernet.quant import freeze

        freeze(model)  # the scales as trained: no observer moves them again
    return model.eval(), spec, {"kind": "finetuned", "checkpoint": str(checkpoint), "bn_recalibrated": True}


def subnet_resolution(result: MappingABC[str, Any]) -> int:
    """Input size the co-search costed the subnet at (``deploy_resolution`` or the config's ``r``)."""
    deploy = (result.get("settings") or {}).get("deploy_resolution")
    r = result["subnet"]["r"]
    return int(deploy or (r[0] if isinstance(r, list) else r))


def prepare_validation(datamodule: Any) -> None:
    """Set a data module up for validation (and its BN batches) unless it already is."""
    if getattr(datamodule, "val_set", None) is None:
        if hasattr(datamodule, "prepare_data"):
            datamodule.prepare_data()
        datamodule.setup("validate")
