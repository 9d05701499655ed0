"""YAML to plain values with the line of every path, and exact decimals.

PyYAML turns ``127.08`` into a float; money must not pass through float, so
scalars are built from their source text: floats become Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

Path = tuple[str, ...]


class YamlSyntaxError(Exception):
    """The file is not valid YAML; carries the line."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


@dataclass
class Source:
    """Parsed document plus where each path came from."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    duplicates: list[tuple[Path, int]] = field(default_factory=list)

    def line(self, path: Path) -> int:
        """The line of path, or of its nearest parent that has one."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


_BOOL = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _scalar(node: yaml.ScalarNode) -> Any:
    tag, text = node.tag, node.value
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return _BOOL[text.lower()]
    if tag.endswith(":int"):
        try:
            return int(text.replace("_", ""), 0)
        except ValueError:
            return text
    if tag.endswith(":float"):
        try:
            return Decimal(text.replace("_", ""))
        except InvalidOperation:
            return text
    return text


def _build(node: yaml.Node, path: Path, src: Source) -> Any:
    src.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            sub = path + (key,)
            if key in out:
                src.duplicates.append((sub, key_node.start_mark.line + 1))
            src.lines[sub] = key_node.start_mark.line + 1
            out[key] = _build(value_node, sub, src)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (str(i),), src) for i, v in enumerate(node.value)]
    return _scalar(node)


def parse(text: str) -> Source:
    """Parse YAML text into a Source; raises YamlSyntaxError with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(str(exc.problem or exc), line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), 1) from None
    src = Source(data=None)
    src.data = {} if node is None else _build(node, (), src)
    return src
