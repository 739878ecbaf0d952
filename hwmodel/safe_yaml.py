"""YAML loading for user files: bounded size, no alias bombs, unknown tags read as plain data.

Limits: the text (:data:`MAX_YAML_BYTES`), alias references (:data:`MAX_ALIASES`), the size of the document
with every alias expanded (:data:`MAX_EXPANDED_NODES`: "billion laughs" refused before anything is built),
recursive aliases, nesting depth (:data:`MAX_DEPTH`) and duplicate keys in one mapping. Every problem is one
``ValueError`` line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

#: Largest YAML file we read (architecture, problem, mapping, ERT files are kilobytes).
MAX_YAML_BYTES = 16 * 1024 * 1024
#: Most alias references in one document (real specs use a handful; "billion laughs" needs many).
MAX_ALIASES = 256
#: Most nodes of a document with its aliases expanded (what a consumer walking the data would visit).
MAX_EXPANDED_NODES = 1_000_000
#: Deepest nesting of lists / mappings.
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and reads tagged nodes (``!Component``) as plain mappings/lists."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (refusing a possible alias bomb)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark,
                            f"found duplicate key {key_node.value[:60]!r}", key_node.start_mark)
                    seen[key] = True
        return super().construct_mapping(node, deep=deep)


def _check_graph(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion exceeds :data:`MAX_EXPANDED_NODES` nodes or :data:`MAX_DEPTH` levels,
    or that contains itself (iterative, memoised per node: linear in the composed size, not the expanded one)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        if done:
            open_.discard(key)
            size[key] = min(1 + sum(size[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_EXPANDED_NODES:
                raise yaml.YAMLError(f"more than {MAX_EXPANDED_NODES} nodes with its aliases expanded (refusing a "
                                     "possible alias bomb)")
            if depth[key] > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels")
            continue
        if key in size:
            continue
        if key in open_:
            raise yaml.YAMLError("a recursive alias (a node that contains itself)")
        open_.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise yaml.YAMLError("a recursive alias (a node that contains itself)")
            if id(child) not in size:
                stack.append((child, False))


def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        data = loader.construct_mapping(node, deep=True)
        return {"_tag": suffix, **data}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_BoundedLoader.add_multi_constructor("!", _untagged)


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text; ``ValueError`` naming ``where`` on any problem."""
    if len(text) > MAX_YAML_BYTES:
        raise ValueError(f"{where}: YAML larger than {MAX_YAML_BYTES} bytes")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if getattr(exc, "problem", None) and mark is not None:
            msg = f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
        else:
            msg = str(exc)
        msg = " ".join(msg.split())
        raise ValueError(f"{where}: not valid YAML: {msg[:300]}") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid YAML: nested too deeply (allowed: at most {MAX_DEPTH} levels)") from None
    except (ValueError, OverflowError, TypeError) as exc:  # e.g. an integer beyond Python's digit limit
        msg = " ".join(str(exc).split())
        if msg.startswith("Exceeds the limit"):
            msg = "an integer with more than 4300 digits"
        raise ValueError(f"{where}: not valid YAML: {msg[:300]}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | os.PathLike) -> Any:
    """Read and parse a YAML file with the limits above."""
    p = Path(path)
    if not os.path.isfile(p):
        raise ValueError(f"{p}: no such file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ValueError(f"{p}: YAML larger than {MAX_YAML_BYTES} bytes")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read: {exc}") from None
    return load_yaml_text(text, str(p))
