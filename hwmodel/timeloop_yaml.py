"""Timeloop v4 architecture text (``accelerator.yaml``) of an :class:`hwmodel.Accelerator`, and its reader.

The text mirrors ``accelerator.json`` (what ``naas-hw --accelerator`` reads) for Timeloop users: the node tree
``DRAM -> L2 -> PE array axes -> L1 -> MAC`` with this cost model's sizes, bandwidths and per-access energies as
``naas_*`` attributes (https://timeloop.csail.mit.edu/v4).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hwmodel.accelerator import Accelerator

__all__ = ["read_timeloop_yaml", "timeloop_yaml"]


def timeloop_yaml(accel: Accelerator) -> str:
    """``accelerator.yaml``: the accelerator as a Timeloop v4 architecture (``architecture: version 0.4``,
    ``nodes`` outermost first with ``!Container`` / ``!Component`` tags), commented, with the per-access
    energies our cost model uses. Load with a YAML loader that accepts the tags (see :func:`read_timeloop_yaml`)."""
    table = accel.energy
    unit = table.unit
    l2_words = accel.l2_bytes / accel.word_bytes
    e_l1 = accel.l1_access_energy()
    e_l2 = accel.l2_access_energy()
    axes = ["meshX", "meshY", "meshZ"]
    lines = [
        "# Accelerator found by the NAAS co-search, written as a Timeloop v4 architecture description",
        "# (https://timeloop.csail.mit.edu/v4: architecture -> nodes, outermost first). It mirrors",
        "# accelerator.json, which is what `naas-hw --accelerator` reads; the numbers are the same.",
        "#",
        "# Hierarchy: DRAM -> L2 global buffer (shared) -> PE array (one spatial container per axis)",
        "#            -> L1 scratchpad (per PE) -> MAC.",
        f"# Energies are per access in {unit} from energy table '{accel.energy_table}' ({table.source}).",
        "# `naas_*` attributes and constraints are this cost model's; Timeloop ignores keys it does not know.",
        "architecture:",
        "  version: \"0.4\"",
        "  nodes:",
        "  - !Container",
        "    name: system",
        "    attributes:",
        f"      datawidth: {accel.word_bits}        # bits per weight / input word",
        f"      naas_psum_bits: {accel.psum_bits}   # bits per partial sum (outputs held in L2)",
        f"      naas_name: {json.dumps(accel.name)}",
        "  - !Component",
        "    name: DRAM",
        "    class: DRAM",
        "    attributes:",
        "      type: LPDDR4",
        f"      datawidth: {accel.word_bits}",
        f"      read_bandwidth: {accel.dram_bandwidth}   # words / cycle, reads + writes share it (naas)",
        f"      write_bandwidth: {accel.dram_bandwidth}",
        f"      naas_energy_per_access: {table.dram}   # {unit} per word",
        "  - !Component",
        "    name: L2",
        "    class: SRAM           # the shared global buffer",
        "    attributes:",
        f"      depth: {int(l2_words)}          # words ({accel.l2_bytes} bytes of {accel.word_bits}-bit words)",
        f"      width: {accel.word_bits}",
        f"      datawidth: {accel.word_bits}",
        f"      naas_size_bytes: {accel.l2_bytes}",
        f"      naas_double_buffered: {str(accel.double_buffer[1]).lower()}   # holds two tiles, refills overlap compute",
        f"      read_bandwidth: {accel.noc_bandwidth}    # words / cycle to and from the PE array (the NoC)",
        f"      write_bandwidth: {accel.noc_bandwidth}",
        f"      naas_energy_per_access: {e_l2:.6g}   # {unit}",
        f"      naas_noc_energy_per_word: {table.noc}   # {unit} per word delivered over the array's network",
    ]
    for a, (size, dims) in enumerate(zip(accel.array, accel.connectivity)):
        lines += [
            "  - !Container",
            f"    name: PE_axis{a}",
            f"    spatial: {{{axes[min(a, 1)]}: {size}}}   # array axis {a}: {size} PEs",
            "    constraints:",
            "      spatial:",
            f"        naas_unrollable_dims: [{', '.join(dims)}]   # dims this axis may unroll (jointly, product <= {size})",
        ]
    l1_attrs = [f"      depth: {accel.l1_words}          # entries per PE (a word or a partial sum)"]
    if accel.l1_partition is not None:
        l1_attrs.append(f"      naas_partition: {{weights: {accel.l1_partition[0]}, inputs: {accel.l1_partition[1]}, "
                        f"outputs: {accel.l1_partition[2]}}}")
    lines += [
        "  - !Component",
        "    name: L1",
        "    class: regfile        # per-PE scratchpad",
        "    attributes:",
        *l1_attrs,
        f"      width: {accel.word_bits}",
        f"      datawidth: {accel.word_bits}",
        f"      naas_double_buffered: {str(accel.double_buffer[0]).lower()}",
        f"      naas_energy_per_access: {{weights: {e_l1[0]:.6g}, inputs: {e_l1[1]:.6g}, outputs: {e_l1[2]:.6g}}}   # {unit}",
        "  - !Component",
        "    name: MAC",
        "    class: intmac",
        "    attributes:",
        f"      multiplier_width: {accel.word_bits}",
        f"      adder_width: {accel.psum_bits}",
        f"      naas_energy_per_compute: {table.mac}   # {unit} per multiply-accumulate",
        f"      naas_systolic: {str(accel.systolic).lower()}   # each spatial fold pays pipeline fill and drain",
    ]
    return "\n".join(lines) + "\n"


def read_timeloop_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``accelerator.yaml`` (Timeloop's ``!Container`` / ``!Component`` tags become a ``"!"`` key)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        return {"!": suffix, **loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", tagged)
    return yaml.load(Path(path).read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass
