"""Read Accelergy energy reference tables (ERTs).

Timeloop + Accelergy write two files per run: ``*.ERT.yaml``, every action of every component with each
argument variant::

    ERT:
      version: 0.3
      tables:
      - name: system.eyeriss.PE[0..167].ifmap_spad
        actions:
        - name: read
          arguments: {address_delta: 1, data_delta: 1}     # or null / {} / absent
          energy: 0.237

and ``*.ERT_summary.yaml``, one line per action (``energy``, or ``average_energy``/``max_energy``/
``min_energy`` where the action has argument variants)::

    ERT_summary:
      table_summary:
      - name: system.eyeriss.shared_glb
        actions:
        - name: read
          average_energy: 37.1
          max_energy: 74.144
          min_energy: 0.055

:func:`load_ert` returns ``{leaf: {action: pJ}}``: ``leaf`` is the component's last dotted segment with index
ranges removed (``system.eyeriss.PE[0..167].ifmap_spad`` -> ``ifmap_spad``; ``system_top_level.DRAM[1..1]``
-> ``DRAM``). Both versions seen in timeloop-accelergy-exercises (0.3, 0.4) are read.

One energy per action, by this rule:

* ERT, several entries for one action (argument variants): the entry whose arguments have
  ``data_delta == 1`` and ``address_delta == 1`` (a new word at a new address: the random access that an
  analytical model charges per access), the largest of them if several; without such an entry, the
  largest energy of all variants (conservative).
* ERT, one entry: its energy, whatever its arguments.
* ERT_summary: ``energy`` where given, else ``max_energy`` (the summary no longer says which variant is
  which, so the same "else the max" rule applies).

Every problem is a one-line :class:`ValueError` naming the file and the field. Files are parsed with a
``yaml.SafeLoader`` subclass that refuses aliases (ERT files never use them, and refusing them rules out
alias-expansion bombs) after a size check (:data:`MAX_ERT_BYTES`).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml

__all__ = ["MAX_ERT_BYTES", "ert_from_mapping", "leaf_name", "load_ert"]

#: Largest ERT file read. The biggest ERT in timeloop-accelergy-exercises is ~0.2 MB (an Eyeriss-like
#: design with four NoCs tabulated for every multicast shape); 16 MB leaves ample room.
MAX_ERT_BYTES = 16 * 1024 * 1024

_INDEX = re.compile(r"\[[^\[\]]*\]")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class _AliasRefused(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loader that stops at the first alias (``*name``), so no alias expansion can blow up."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            raise _AliasRefused(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def leaf_name(full_name: str) -> str:
    """``system.eyeriss.PE[0..167].ifmap_spad`` -> ``ifmap_spad`` (index ranges dropped first, since they
    contain dots themselves)."""
    return _INDEX.sub("", full_name).split(".")[-1].strip()


def _energy(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected an energy in pJ, got {value!r}")
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads ``1e-05`` (no dot) as a string
    if not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected an energy in pJ, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: expected a finite energy >= 0 pJ, got {value!r}")
    return v


def _is_random_access(args: Any) -> bool:
    return isinstance(args, dict) and args.get("data_delta") == 1 and args.get("address_delta") == 1


def _table_energies(actions: Any, where: str, summary: bool) -> dict[str, float]:
    if not isinstance(actions, list):
        raise ValueError(f"{where}.actions: expected a list, got {type(actions).__name__}")
    variants: dict[str, list[tuple[bool, float]]] = {}
    for j, act in enumerate(actions):
        w = f"{where}.actions[{j}]"
        if not isinstance(act, dict):
            raise ValueError(f"{w}: expected a mapping, got {type(act).__name__}")
        name = act.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{w}.name: expected an action name, got {name!r}")
        if summary:
            if "energy" in act:
                e = _energy(act["energy"], f"{w}.energy")
            elif "max_energy" in act:
                e = _energy(act["max_energy"], f"{w}.max_energy")
            else:
                raise ValueError(f"{w}: no energy or max_energy")
            variants.setdefault(name, []).append((False, e))
            continue
        if "energy" not in act:
            raise ValueError(f"{w}.energy: missing")
        args = act.get("arguments")
        if args is not None and not isinstance(args, dict):
            raise ValueError(f"{w}.arguments: expected a mapping or null, got {type(args).__name__}")
        variants.setdefault(name, []).append((_is_random_access(args), _energy(act["energy"], f"{w}.energy")))
    out = {}
    for name, vs in variants.items():
        preferred = [e for random_access, e in vs if random_access]
        out[name] = max(preferred) if preferred else max(e for _, e in vs)
    return out


def ert_from_mapping(data: Any, source: str = "<mapping>") -> dict[str, dict[str, float]]:
    """``{leaf: {action: pJ}}`` from an already-parsed ERT or ERT_summary document (see the module doc
    for the rules). ``source`` names the document in error messages."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: top level: expected a mapping with an ERT or ERT_summary key, "
                         f"got {type(data).__name__}")
    if "ERT" in data:
        root, key, list_key, summary = data["ERT"], "ERT", "tables", False
    elif "ERT_summary" in data:
        root, key, list_key, summary = data["ERT_summary"], "ERT_summary", "table_summary", True
    else:
        raise ValueError(f"{source}: top level: no ERT or ERT_summary key (found {sorted(map(str, data))[:5]})")
    if not isinstance(root, dict):
        raise ValueError(f"{source}: {key}: expected a mapping, got {type(root).__name__}")
    tables = root.get(list_key)
    if not isinstance(tables, list) or not tables:
        raise ValueError(f"{source}: {key}.{list_key}: expected a non-empty list, got {tables!r:.60}")
    out: dict[str, dict[str, float]] = {}
    full_names: dict[str, str] = {}
    for i, table in enumerate(tables):
        where = f"{source}: {key}.{list_key}[{i}]"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(table).__name__}")
        full = table.get("name")
        if not isinstance(full, str) or not leaf_name(full):
            raise ValueError(f"{where}.name: expected a component name, got {full!r}")
        leaf = leaf_name(full)
        if leaf in full_names:
            raise ValueError(f"{where}.name: {full!r} has the same leaf name {leaf!r} as {full_names[leaf]!r}")
        full_names[leaf] = full
        out[leaf] = _table_energies(table.get("actions"), where, summary)
    return out


def load_ert(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Read a Timeloop/Accelergy ``*.ERT.yaml`` or ``*.ERT_summary.yaml`` file: ``{leaf: {action: pJ}}``."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_ERT_BYTES:
                raise ValueError(f"{p}: file: {size} bytes, more than the {MAX_ERT_BYTES}-byte limit for an ERT")
            raw = f.read(MAX_ERT_BYTES + 1)
    except OSError as e:
        raise ValueError(f"{p}: file: cannot read ({e.strerror or e})") from None
    if len(raw) > MAX_ERT_BYTES:
        raise ValueError(f"{p}: file: more than the {MAX_ERT_BYTES}-byte limit for an ERT")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: file: not UTF-8 text (byte {e.start})") from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except _AliasRefused as e:
        raise ValueError(f"{p}: line {e.line}: YAML alias refused (ERT files never use anchors/aliases)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "YAML"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{p}: {line}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ValueError(f"{p}: YAML: nested too deeply") from None
    return ert_from_mapping(data, source=p)
