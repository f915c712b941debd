"""The one reader of YAML files a user hands designkit: designs and checkpoints' ``model_config.yaml``.

YAML is read as data only (``yaml.SafeLoader``: no Python objects, no code) and within
bounds, checked on the composed node graph before any Python value is built:

- aliases may reuse a block, but the document they expand to holds at most
  ``MAX_EXPANDED_NODES`` values (a "billion laughs" file of 1 kB expands to 10^9);
  a recursive alias is refused;
- every mapping key appears once (YAML would silently keep the last one), named by its
  key path (``run.steps``, ``experiments[0].arms.x4``), as the design's errors are;
- the file is UTF-8.

Every refusal is one ``InputError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from designkit.errors import InputError, clip

MAX_EXPANDED_NODES = 100_000
"""Values a YAML document may hold once its aliases are expanded (a design holds a few hundred)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _line(node: Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _expanded_size(root: Node) -> int:
    """Values in the document once every alias is expanded; _Refused on a recursive alias.

    Shared nodes (what an alias composes to) are sized once, so this is linear in the file.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused(_line(node), "expected no recursive YAML alias (an alias inside its own anchor)")
        open_nodes.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _check_unique_keys(root: Node) -> None:
    """_Refused naming the key path of the first key given twice in one mapping."""
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:  # an aliased block: checked where it was defined
            continue
        seen_nodes.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((child, _join(path, i)) for i, child in reversed(list(enumerate(node.value))))
        elif isinstance(node, MappingNode):
            keys: dict[tuple[str, str], Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    name = (key_node.tag, key_node.value)
                    if name in keys:
                        raise _Refused(
                            _join(path, clip(key_node.value)),
                            f"expected each key once in a mapping, given at {_line(keys[name])} and again at {_line(key_node)}",
                        )
                    keys[name] = key_node
                    stack.append((value_node, _join(path, clip(key_node.value))))
                else:
                    stack.append((value_node, path))


class _BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that checks the composed document before building any value."""

    def compose_document(self) -> Node:
        node = super().compose_document()
        size = _expanded_size(node)
        if size > MAX_EXPANDED_NODES:
            raise _Refused(None, f"expected YAML aliases (*name) to expand to at most {MAX_EXPANDED_NODES:,} values, got {size:,}")
        _check_unique_keys(node)
        return node


def loads(text: str, file: str | Path | None = None) -> Any:
    """The data in YAML ``text``, bounded and checked as described above; ``file`` names it in errors."""
    try:
        # what yaml.load does, spelled out so no reader mistakes it for an unsafe loader:
        # _BoundedSafeLoader is a SafeLoader, it builds plain data only
        loader = _BoundedSafeLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise InputError(file, exc.field, exc.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise InputError(file, where, f"expected valid YAML ({clip(getattr(exc, 'problem', None) or exc)})") from None
    except RecursionError:
        raise InputError(file, None, "expected YAML nested less deeply") from None


def load(path: str | Path, *, what: str = "a YAML file") -> Any:
    """The data in the YAML file ``path``; InputError if it is missing, unreadable, not UTF-8 or not bounded YAML."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, None, f"expected {what}, found no file") from None
    except OSError as exc:
        raise InputError(path, None, f"expected {what} that can be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(path, f"line {line}", f"expected UTF-8 text, got byte 0x{data[exc.start]:02x} at offset {exc.start}") from None
    return loads(text, path)
