"""hwmodel: analytical accelerator cost model (Timeloop-style problem / architecture / mapping / model split)."""

from hwmodel.accelerator import Accelerator
from hwmodel.bounds import LowerBound, lower_bound
from hwmodel.costmodel import Cost, evaluate, evaluate_batch
from hwmodel.energy import ENERGY_TABLES, EnergyTable
from hwmodel.layer import DIMS, TENSORS, Layer, merge_layers
from hwmodel.loading import load_accelerator
from hwmodel.mapping import Mapping, load_mapping, mapping_from_factors
from hwmodel.presets import PRESETS
from hwmodel.templates import DATAFLOWS, template_mapping
from hwmodel.version import __version__

__all__ = [
    "DATAFLOWS", "DIMS", "ENERGY_TABLES", "PRESETS", "TENSORS",
    "Accelerator", "Cost", "EnergyTable", "Layer", "Mapping",
    "LowerBound", "evaluate", "evaluate_batch", "load_accelerator", "lower_bound", "load_mapping", "mapping_from_factors",
    "__version__", "merge_layers", "template_mapping",
]
