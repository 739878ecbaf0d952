"""YAML loading for user files: bounded size, no alias bombs, unknown tags read as plain data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

#: Largest YAML file we read (architecture, problem, mapping, ERT files are kilobytes).
MAX_YAML_BYTES = 16 * 1024 * 1024
#: Most alias references in one document (real specs use a handful; "billion laughs" needs many).
MAX_ALIASES = 256


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
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        msg = " ".join(str(exc).split())
        raise ValueError(f"{where}: not valid YAML: {msg[:300]}") from None


def load_yaml_file(path: str | os.PathLike) -> Any:
    """Read and parse a YAML file with the limits above."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ValueError(f"{p}: YAML larger than {MAX_YAML_BYTES} bytes")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read: {exc}") from None
    return load_yaml_text(text, str(p))
