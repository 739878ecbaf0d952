"""Top-1 accuracy of an ONNX model under onnxruntime on a data module's validation split."""

from __future__ import annotations

import os
from typing import Any

from naas_train.subnet_io import prepare_validation

__all__ = ["onnx_accuracy"]


def onnx_accuracy(onnx_path: str | os.PathLike[str], datamodule: Any, resolution: int,
                  max_batches: int | None = None) -> dict[str, Any]:
    """Top-1 of ``model.onnx`` under onnxruntime (CPU) on the whole validation split (``full_val_dataloader()``
    where the data module has one, else ``val_dataloader()`` outside any trainer), every image resized to
    ``resolution`` like the co-search did; the graph takes one image at a time."""
    import numpy as np
    import onnxruntime as ort

    from naas_train.data import resize

    prepare_validation(datamodule)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    correct = total = 0
    loader = getattr(datamodule, "full_val_dataloader", None) or datamodule.val_dataloader
    for i, (x, y) in enumerate(loader()):
        if max_batches is not None and i >= max_batches:
            break
        x = resize(x.float().cpu(), resolution).numpy()
        for image, target in zip(x, y.tolist()):
            logits = session.run(None, {name: image[None]})[0]
            correct += int(np.argmax(logits[0]) == target)
            total += 1
    if total == 0:
        raise ValueError("the validation split is empty")
    return {"top1": correct / total, "correct": correct, "images": total, "runtime": "onnxruntime",
            "split": "validation", "resolution": resolution}
