"""YAML to plain values with the line of every path, and exact decimals.

PyYAML turns ``127.08`` into a float; money must not pass through float, so
scalars are built from their source text: floats become Decimal.

Input is bounded (issue 9): a file is read up to MAX_BYTES, and the values built from it,
aliases expanded, up to MAX_VALUES, nested up to MAX_DEPTH. A config file of 500
strategies is far below all three; an alias bomb ("billion laughs") or a file that is not
a config at all stops at the bound with YamlLimitError instead of taking the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Union

import yaml

Path = tuple[str, ...]

MAX_BYTES = 4 * 1024 * 1024
MAX_VALUES = 100_000  # every mapping, list and scalar built, each alias use counted again
MAX_DEPTH = 64


class YamlSyntaxError(Exception):
    """The file is not valid YAML; carries the line."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


class YamlLimitError(YamlSyntaxError):
    """The input is beyond a bound (size, values with aliases expanded, nesting): not read further."""


def read_text(path: Union[str, "os.PathLike[str]"]) -> str:
    """The text of a YAML file, read no further than MAX_BYTES (OSError as open() raises it).

    Raises YamlLimitError when the file is larger, YamlSyntaxError when it is not UTF-8.
    """
    with open(path, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlLimitError(f"is larger than {MAX_BYTES // (1024 * 1024)} MB, the most gridctl reads from a "
                             "YAML file (is it the right file?)", 0)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlSyntaxError(f"is not UTF-8 text (byte {exc.start})", data[:exc.start].count(b"\n") + 1) from None


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


class _Budget:
    """What is left of MAX_VALUES while one document is built."""

    def __init__(self) -> None:
        self.left = MAX_VALUES

    def take(self, node: yaml.Node, path: Path, src: "Source") -> None:
        """Count one value built at `path`; YamlLimitError past MAX_VALUES or MAX_DEPTH."""
        depth = len(path)
        self.left -= 1
        if self.left < 0:
            # the line of the top-level entry that expands (the alias use), not of its far anchor
            line = src.lines.get(path[:1], node.start_mark.line + 1)
            raise YamlLimitError(f"holds more than {MAX_VALUES:,} values once its aliases (*name) are expanded, "
                                 "the most gridctl reads (aliases that repeat aliases?)", line)
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"nests mappings and lists deeper than {MAX_DEPTH} levels, the most gridctl "
                                 "reads (an alias inside its own anchor?)", node.start_mark.line + 1)


def _build(node: yaml.Node, path: Path, src: Source, budget: _Budget) -> Any:
    budget.take(node, path, src)
    src.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            sub = path + (key,)
            if key in out:
                src.duplicates.append((sub, key_node.start_mark.line + 1))
            src.lines[sub] = key_node.start_mark.line + 1
            out[key] = _build(value_node, sub, src, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, path + (str(i),), src, budget) for i, v in enumerate(node.value)]
    return _scalar(node)


def parse(text: str) -> Source:
    """Parse YAML text into a Source; raises YamlSyntaxError with its line (YamlLimitError
    beyond the bounds of the module docstring)."""
    if len(text) > MAX_BYTES:
        raise YamlLimitError(f"is larger than {MAX_BYTES // (1024 * 1024)} MB, the most gridctl reads as YAML", 0)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        # PyYAML composes nested collections recursively: "[[[[..." runs out of stack first
        raise YamlLimitError(f"nests mappings and lists deeper than {MAX_DEPTH} levels, the most gridctl reads",
                             1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlSyntaxError(str(exc.problem or exc), line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), 1) from None
    src = Source(data=None)
    src.data = {} if node is None else _build(node, (), src, _Budget())
    return src
