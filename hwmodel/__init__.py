"""hwmodel: analytical accelerator cost model (Timeloop-style problem / architecture / mapping / model split)."""

from hwmodel.layer import DIMS, TENSORS, Layer, merge_layers

__all__ = ["DIMS", "TENSORS", "Layer", "merge_layers"]
