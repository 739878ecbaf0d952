"""Read Timeloop inputs (the dense subset): architecture (v0.2/v0.3 trees and the flattened form Timeloop
writes), problem, mapping, and an Accelergy ERT, into a :class:`Hierarchy`, a :class:`Layer` and a
:class:`NestMapping`.

Supported: storage levels (DRAM, SRAM, regfile, smartbuffer_*), instance ranges ``name[0..N]`` and
``meshX``, ``depth``/``memory_depth`` x ``width``/``memory_width``, ``word-bits``, ``block-size``,
``cluster-size``, read/write bandwidth, ``multiple-buffering``; an arithmetic unit (``intmac``,
``fpmac``, ``mac``, ``compute``); CNN-layer problems (any subset of C, M/K, R, S, N, P, Q with Timeloop's
stride/dilation coefficients); temporal, spatial (with ``split``) and bypass mapping directives.
Anything else (sparse features, other problem shapes, mapping constraints) is refused by name.

Energy: per vector access, the largest energy among the component's ERT actions (Timeloop 2020 charges
every read, fill and update the same vector energy; established on the exercises' reference outputs,
``tests/fixtures/timeloop/README.md``).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from hwmodel import nestkernel as nk
from hwmodel.hierarchy import Fanout, Hierarchy, StorageLevel
from hwmodel.layer import DIMS, Layer
from hwmodel.nestmodel import NestMapping
from hwmodel.safe_yaml import load_yaml_file

STORAGE_CLASSES = ("DRAM", "SRAM", "regfile", "smartbuffer_SRAM", "smartbuffer_RF", "storage", "buffer")
ARITHMETIC_CLASSES = ("intmac", "fpmac", "mac", "compute", "intmultiplier", "fpmultiplier")
#: Attributes that belong to Timeloop's sparse modelling; we model dense tensors only.
SPARSE_ATTRIBUTES = ("metadata_storage_width", "metadata_storage_depth", "metadata_datawidth",
                     "metadata_block_size", "decompression_supported", "compression_supported")
#: Timeloop problem dims -> ours (``M`` is Timeloop's output-channel name).
PROBLEM_DIMS: dict[str, str] = {"N": "N", "C": "C", "M": "K", "K": "K", "P": "P", "Q": "Q", "R": "R", "S": "S", "G": "G"}
TENSOR_NAMES = ("Weights", "Inputs", "Outputs")
_RANGE = re.compile(r"^(?P<base>[^\[\]]+)(\[(?P<lo>\d+)\.\.(?P<hi>\d+)\])?$")


def _name_range(name: Any, where: str) -> tuple[str, int]:
    if not isinstance(name, str):
        raise ValueError(f"{where}: name must be a string, got {type(name).__name__}")
    m = _RANGE.match(name.strip())
    if not m:
        raise ValueError(f"{where}: cannot read component name {name!r} (expected NAME or NAME[0..N])")
    if m.group("lo") is None:
        return m.group("base"), 1
    lo, hi = int(m.group("lo")), int(m.group("hi"))
    if hi < lo or hi - lo >= 2**20:
        raise ValueError(f"{where}: bad instance range in {name!r}")
    return m.group("base"), hi - lo + 1


def _num(attrs: dict, keys: tuple[str, ...], where: str, default: float | None = None) -> float | None:
    for k in keys:
        if k in attrs:
            v = attrs[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{where}: attribute {k} must be a positive finite number, got {v!r}")
            return float(v)
    return default


@dataclass
class _Component:
    name: str
    cls: str
    attrs: dict
    instances: int


def _walk(node: dict, mult: int, inherited: dict, out: list[_Component], where: str) -> None:
    if not isinstance(node, dict):
        raise ValueError(f"{where}: each subtree entry must be a mapping")
    base, count = _name_range(node.get("name", "root"), where)
    mult *= count
    attrs = {**inherited, **(node.get("attributes") or {})}
    for comp in node.get("local") or []:
        if not isinstance(comp, dict):
            raise ValueError(f"{where}: each local entry must be a mapping")
        cname, ccount = _name_range(comp.get("name"), f"{where}.{base}")
        cls = str(comp.get("class", ""))
        cattrs = {**attrs, **(comp.get("attributes") or {})}
        out.append(_Component(cname.split(".")[-1], cls, cattrs, mult * ccount))
    for sub in node.get("subtree") or []:
        _walk(sub, mult, attrs, out, f"{where}.{base}")


def _components(data: Any, where: str) -> list[_Component]:
    if not isinstance(data, dict) or "architecture" not in data:
        raise ValueError(f"{where}: expected a top-level 'architecture' key")
    arch = data["architecture"]
    if not isinstance(arch, dict):
        raise ValueError(f"{where}: 'architecture' must be a mapping")
    if "nodes" in arch:
        raise ValueError(f"{where}: Timeloop v0.4 'nodes' architectures are not supported yet; "
                         "give the flattened_architecture.yaml Timeloop writes, or a v0.2/v0.3 tree")
    out: list[_Component] = []
    if "subtree" in arch:
        for sub in arch["subtree"]:
            _walk(sub, 1, {}, out, where)
        return out
    # flattened: local components with dotted names carrying every range on the path
    for comp in arch.get("local") or []:
        if not isinstance(comp, dict) or "name" not in comp:
            raise ValueError(f"{where}: each flattened component needs a name")
        mult = 1
        for part in str(comp["name"]).split("."):
            _, c = _name_range(part, where)
            mult *= c
        leaf, _ = _name_range(str(comp["name"]).split(".")[-1], where)
        out.append(_Component(leaf, str(comp.get("class", "")), dict(comp.get("attributes") or {}), mult))
    # flattened files list inner levels first; Timeloop's order is outermost first by instance count
    out.sort(key=lambda c: c.instances)
    return out


def _ert_energy(ert: dict[str, dict[str, float]] | None, name: str) -> float | None:
    if ert is None or name not in ert or not ert[name]:
        return None
    return max(ert[name].values())


def read_architecture(path: str | os.PathLike, ert: dict[str, dict[str, float]] | None = None,
                      energy_table: str = "accelergy45") -> Hierarchy:
    """A :class:`Hierarchy` from a Timeloop architecture YAML; energies from ``ert`` (leaf component name ->
    action -> pJ) or, without one, from our energy table by size and width."""
    from hwmodel.energy import get_energy_table

    where = str(path)
    comps = _components(load_yaml_file(path), where)
    storage = [c for c in comps if c.cls in STORAGE_CLASSES]
    arith = [c for c in comps if c.cls in ARITHMETIC_CLASSES]
    unknown = [c for c in comps if c.cls not in STORAGE_CLASSES + ARITHMETIC_CLASSES]
    if unknown:
        raise ValueError(f"{where}: unsupported component class(es) "
                         f"{sorted({c.cls for c in unknown})} ({unknown[0].name}); supported storage: "
                         f"{', '.join(STORAGE_CLASSES)}; arithmetic: {', '.join(ARITHMETIC_CLASSES)}")
    if len(arith) != 1:
        raise ValueError(f"{where}: need exactly one arithmetic component, found {len(arith)}")
    if not storage:
        raise ValueError(f"{where}: no storage level (classes: {', '.join(STORAGE_CLASSES)})")
    table = get_energy_table(energy_table)
    levels: list[StorageLevel] = []
    mac = arith[0]
    bounds = [c.instances for c in storage] + [mac.instances]
    for i, comp in enumerate(storage):
        w = f"{where}: level {comp.name}"
        for attr in SPARSE_ATTRIBUTES:
            if attr in comp.attrs:
                raise ValueError(f"{w}: sparse attribute {attr!r} is not supported (dense tensors only)")
        if bounds[i + 1] % bounds[i]:
            raise ValueError(f"{w}: {bounds[i + 1]} inner instances do not divide evenly over {bounds[i]}")
        word_bits = int(_num(comp.attrs, ("word-bits", "word_bits", "datawidth"), w, 16))
        width = _num(comp.attrs, ("width", "memory_width"), w, float(word_bits))
        depth = _num(comp.attrs, ("depth", "memory_depth"), w, None)
        block = int(_num(comp.attrs, ("block-size", "block_size"), w, max(1.0, width // word_bits)))
        cluster = int(_num(comp.attrs, ("cluster-size", "cluster_size"), w, 1))
        mbuf = int(_num(comp.attrs, ("multiple-buffering", "multiple_buffering"), w, 1))
        outermost = i == 0  # holds whole tensors (Timeloop's backing store); its capacity is not checked
        if not outermost and depth is None:
            raise ValueError(f"{w}: needs depth (or memory_depth) for its capacity")
        e_vec = _ert_energy(ert, comp.name)
        if e_vec is None:
            bits = width
            e_vec = table.dram_pj(bits) if comp.cls == "DRAM" or depth is None else table.sram_pj(depth * width, bits)
        e_vec /= cluster
        fan = bounds[i + 1] // bounds[i]
        fanout = None
        if fan > 1:
            child_mesh = _num(storage[i + 1].attrs if i + 1 < len(storage) else mac.attrs, ("meshX",), w, None)
            own_mesh = _num(comp.attrs, ("meshX",), w, None)
            x = int(child_mesh // (own_mesh or 1)) if child_mesh else fan
            if x < 1 or fan % x:
                raise ValueError(f"{w}: meshX {child_mesh} does not divide the fanout {fan}")
            axes = (x,) if x == fan else (x, fan // x)
            fanout = Fanout(axes=axes, connectivity=tuple(DIMS for _ in axes))
        levels.append(StorageLevel(
            name=comp.name,
            capacity_bits=None if outermost else depth * width,
            word_bits=word_bits,
            block_size=block,
            read_bandwidth=_num(comp.attrs, ("read_bandwidth",), w, math.inf),
            write_bandwidth=_num(comp.attrs, ("write_bandwidth",), w, math.inf),
            multiple_buffering=mbuf if mbuf in (1, 2) else 1,
            read_pj=e_vec, fill_pj=e_vec, update_pj=e_vec,
            fanout=fanout,
            technology="DRAM" if comp.cls == "DRAM" else "SRAM",
        ))
    mac_bits = int(_num(mac.attrs, ("datawidth", "word-bits"), f"{where}: {mac.name}", 16))
    e_mac = _ert_energy(ert, mac.name)
    if e_mac is None:
        e_mac = table.mac_pj(mac_bits, mac_bits)
    return Hierarchy(name=os.path.basename(where), levels=tuple(levels), mac_pj=e_mac,
                     mac_bits=(mac_bits, mac_bits), source=where, extra={"mac_name": mac.name})


def read_problem(path: str | os.PathLike) -> Layer:
    """A :class:`Layer` from a Timeloop problem YAML (CNN-layer family)."""
    where = str(path)
    data = load_yaml_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("problem"), dict):
        raise ValueError(f"{where}: expected a top-level 'problem' mapping")
    prob = data["problem"]
    inst = prob.get("instance")
    if not isinstance(inst, dict):
        raise ValueError(f"{where}: problem.instance must map dims to sizes")
    shape = prob.get("shape") or {}
    dims = shape.get("dimensions") or [d for d in inst if d in PROBLEM_DIMS]
    for d in dims:
        if d not in PROBLEM_DIMS:
            raise ValueError(f"{where}: problem dimension {d!r} is not a CNN-layer dim ({', '.join(PROBLEM_DIMS)})")
    spaces = {s.get("name"): s for s in shape.get("data-spaces") or [] if isinstance(s, dict)}
    if spaces and set(spaces) != set(TENSOR_NAMES):
        raise ValueError(f"{where}: data-spaces must be exactly {', '.join(TENSOR_NAMES)}, got {sorted(map(str, spaces))}")
    if spaces:
        _check_projections(spaces, where)
    fields: dict[str, Any] = {}
    for d in dims:
        v = inst.get(d, 1)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**24:
            raise ValueError(f"{where}: problem.instance.{d} must be an integer in [1, 2**24], got {v!r}")
        fields[PROBLEM_DIMS[d]] = v
    coef = {c.get("name"): c.get("default", 1) for c in shape.get("coefficients") or [] if isinstance(c, dict)}
    for k in ("Wstride", "Hstride", "Wdilation", "Hdilation"):
        if k in inst:
            coef[k] = inst[k]
    for k, v in coef.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 2**16:
            raise ValueError(f"{where}: coefficient {k} must be an integer in [1, 65536], got {v!r}")
    # Timeloop pairs R/P with the W coefficients and S/Q with H; ours pairs (P, R) and (Q, S) by position
    fields["stride"] = (coef.get("Wstride", 1), coef.get("Hstride", 1))
    fields["dilation"] = (coef.get("Wdilation", 1), coef.get("Hdilation", 1))
    if "K" not in fields:
        fields["K"] = 1
    if "C" not in fields:
        fields["C"] = 1
    return Layer(name=str(shape.get("name", "")), **fields)


def _check_projections(spaces: dict, where: str) -> None:
    def dims_of(space: dict) -> list[list[str]]:
        out = []
        for term in space.get("projection") or []:
            out.append(sorted(str(f[0]) for f in term))
        return out

    expect = {"Weights": {"C", "M", "K", "R", "S", "G"}, "Outputs": {"N", "M", "K", "P", "Q", "G"}}
    for name, allowed in expect.items():
        for term in dims_of(spaces[name]):
            if len(term) != 1 or term[0] not in allowed:
                raise ValueError(f"{where}: {name} projection {term} is not supported (CNN-layer form only)")
    for term in dims_of(spaces["Inputs"]):
        if term not in (["N"], ["C"], ["G"], ["P", "R"], ["Q", "S"], ["P"], ["Q"], ["R"], ["S"]):
            raise ValueError(f"{where}: Inputs projection {term} is not supported (CNN-layer form only)")


def _factors(text: Any, where: str) -> dict[str, int]:
    if isinstance(text, dict):
        items = text.items()
    elif isinstance(text, str):
        items = []
        for part in text.split():
            if "=" not in part:
                raise ValueError(f"{where}: factor {part!r} is not DIM=VALUE")
            k, v = part.split("=", 1)
            items.append((k, v))
    else:
        raise ValueError(f"{where}: factors must be a string like 'K=2 R=3'")
    out: dict[str, int] = {}
    for k, v in items:
        if k not in PROBLEM_DIMS:
            raise ValueError(f"{where}: unknown dim {k!r} in factors")
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: factor {k}={v!r} is not an integer") from None
        if str(iv) != str(v).strip() or not 1 <= iv <= 2**24:
            raise ValueError(f"{where}: factor {k}={v!r} must be an integer in [1, 2**24] (0/'all' is a mapper "
                             "constraint, not a mapping)")
        out[PROBLEM_DIMS[k]] = iv
    return out


def read_mapping(path: str | os.PathLike, hier: Hierarchy) -> NestMapping:
    """A :class:`NestMapping` from a Timeloop mapping YAML (temporal / spatial / bypass directives)."""
    where = str(path)
    data = load_yaml_file(path)
    entries = data.get("mapping") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a 'mapping' list of directives")
    n = len(hier.levels)
    m = NestMapping.empty(n)
    for i, e in enumerate(entries):
        w = f"{where}: mapping[{i}]"
        if not isinstance(e, dict) or "target" not in e or "type" not in e:
            raise ValueError(f"{w}: needs 'target' and 'type'")
        target, _ = _name_range(str(e["target"]), w)
        l = hier.index(target)
        kind = e["type"]
        if kind == "temporal":
            for d, v in _factors(e.get("factors", ""), w).items():
                m.temporal[l, DIMS.index(d)] = v
            perm = _permutation(e.get("permutation", ""), w)
            rest = [d for d in range(nk.NUM_DIMS) if d not in perm]
            m.order[l] = rest + perm[::-1]  # Timeloop lists innermost first
        elif kind == "spatial":
            lv = hier.levels[l]
            if lv.fanout is None:
                raise ValueError(f"{w}: spatial directive at {target}, which has no fanout below it")
            facs = _factors(e.get("factors", ""), w)
            perm = _permutation(e.get("permutation", ""), w)
            split = e.get("split", len(perm))
            if isinstance(split, bool) or not isinstance(split, int) or split < 0:
                raise ValueError(f"{w}: split must be a non-negative integer")
            order = perm + [DIMS.index(d) for d in facs if DIMS.index(d) not in perm]
            for pos, d in enumerate(order):
                v = facs.get(DIMS[d], 1)
                axis = 0 if pos < split or len(lv.fanout.axes) == 1 else 1
                m.spatial[l, axis, d] *= v
        elif kind == "bypass":
            keep = e.get("keep") or []
            bypass = e.get("bypass") or []
            for t in list(keep) + list(bypass):
                if t not in TENSOR_NAMES:
                    raise ValueError(f"{w}: unknown tensor {t!r}; allowed: {', '.join(TENSOR_NAMES)}")
            for t in bypass:
                m.keep[l, TENSOR_NAMES.index(t)] = 0
        elif kind == "datatype":
            raise ValueError(f"{w}: 'datatype' directives are not supported; use 'bypass'")
        else:
            raise ValueError(f"{w}: unknown directive type {kind!r}; allowed: temporal, spatial, bypass")
    for l, lv in enumerate(hier.levels):
        for t, name in enumerate(("weights", "inputs", "outputs")):
            if name not in lv.keeps:
                m.keep[l, t] = 0
    return m


def _permutation(text: Any, where: str) -> list[int]:
    if not isinstance(text, str):
        raise ValueError(f"{where}: permutation must be a string of dim letters")
    out: list[int] = []
    for ch in text.replace(" ", ""):
        if ch not in PROBLEM_DIMS:
            raise ValueError(f"{where}: unknown dim {ch!r} in permutation")
        d = DIMS.index(PROBLEM_DIMS[ch])
        if d in out:
            raise ValueError(f"{where}: dim {ch} repeated in permutation")
        out.append(d)
    return out


def load_timeloop(arch: str | os.PathLike, problem: str | os.PathLike, mapping: str | os.PathLike | None = None,
                  ert: str | os.PathLike | None = None) -> tuple[Hierarchy, Layer, NestMapping | None]:
    """Architecture, problem and (optional) mapping files -> model inputs."""
    from hwmodel.ert import load_ert

    table = load_ert(ert) if ert is not None else None
    hier = read_architecture(arch, table)
    layer = read_problem(problem)
    nest = read_mapping(mapping, hier) if mapping is not None else None
    return hier, layer, nest


__all__ = ["load_timeloop", "read_architecture", "read_mapping", "read_problem"]
