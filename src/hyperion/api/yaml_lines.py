"""YAML read with the line of every mapping key and list item, so a document's errors can name
their lines (``api.spec.load_documents``), and with duplicate keys reported instead of silently
replaced.

Glossary:
    path    a key's place in its document: keys and list indices as strings, outermost first.
    line    1-based.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import yaml


class RawDocument(NamedTuple):
    data: object
    lines: dict[tuple[str, ...], int]  # path -> 1-based line
    start: int
    duplicates: list[tuple[tuple[str, ...], int]]  # (path, line) of each key given twice in one mapping


class LineLoader(yaml.SafeLoader):
    """A safe loader that also records the line of every mapping key and list item."""

    def raw_documents(self) -> Iterator[RawDocument]:
        while self.check_node():
            node = self.get_node()
            lines: dict[tuple[str, ...], int] = {}
            duplicates: list[tuple[tuple[str, ...], int]] = []
            _walk(node, (), lines, duplicates, set())
            yield RawDocument(self.construct_document(node), lines, node.start_mark.line + 1, duplicates)


def _walk(node: yaml.Node, path: tuple[str, ...], lines: dict, duplicates: list, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its lines were recorded where it was defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.tag == "tag:yaml.org,2002:merge":
                continue
            p = (*path, k.value)
            if k.value in keys:
                duplicates.append((p, k.start_mark.line + 1))
            keys.add(k.value)
            lines[p] = k.start_mark.line + 1
            _walk(v, p, lines, duplicates, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            p = (*path, str(i))
            lines[p] = item.start_mark.line + 1
            _walk(item, p, lines, duplicates, seen)
