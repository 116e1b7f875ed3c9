"""Safe YAML loading that remembers where every key and value came from.

Only the YAML core types are built (what ``yaml.safe_load`` builds, minus anchors and
aliases, which are refused so a small file cannot expand into a huge one). Anything but
a regular file (a pipe, ``/dev/zero``, a directory), files over ``MAX_FILE_BYTES``, nesting deeper than ``MAX_DEPTH``, non-UTF-8 bytes, tabs and syntax
errors become located problems, never exceptions. ``${VAR}`` references in string values
are expanded here, because only here is the exact position of each one known.
"""

from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentflow_jobs.errors import (
    InterpolationError,
    NotRegularFileError,
    Problem,
    UnsupportedYAMLError,
)
from agentflow_jobs.interpolate import expand
from agentflow_jobs.log import is_secret_key, register_secret

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "JsonPath",
    "Mark",
    "load_documents",
    "read_limited",
]

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32

JsonPath = tuple[str | int, ...]

_MAP, _SEQ, _STR = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    "!",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
# plain scalars an expanded `${VAR}` may turn into, as if written literally
_RETYPED_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    column: int


def _mark(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


@dataclass
class Document:
    """One YAML document of a spec file, with the position of every node."""

    path: Path
    display: str
    index: int
    text: str
    data: Any = None
    nodes: dict[JsonPath, yaml.Node] = field(default_factory=dict)
    keys: dict[JsonPath, Mark] = field(default_factory=dict)
    variables: dict[JsonPath, tuple[str, ...]] = field(default_factory=dict)

    def value_mark(self, path: JsonPath) -> Mark:
        """Where the value at ``path`` starts (or its nearest located ancestor)."""
        for cut in range(len(path), -1, -1):
            node = self.nodes.get(path[:cut])
            if node is not None:
                return _mark(node.start_mark)
        return Mark(1, 1)

    def key_mark(self, path: JsonPath) -> Mark:
        """Where the key of the entry at ``path`` is (its value's position otherwise)."""
        return self.keys.get(path) or self.value_mark(path)

    def offset_mark(self, path: JsonPath, offset: int) -> Mark:
        """The position of character ``offset`` inside the string value at ``path``."""
        node = self.nodes.get(path)
        if not isinstance(node, yaml.ScalarNode) or path in self.variables:
            return self.value_mark(path)
        return _scalar_offset(self.text, node, offset) or _mark(node.start_mark)

    def problem(self, mark: Mark, message: str, hint: str | None = None) -> Problem:
        name = self.data.get("name") if isinstance(self.data, dict) else None
        job = name if isinstance(name, str) else None
        return Problem(self.display, mark.line, mark.column, message, hint, job)


def _scalar_offset(text: str, node: yaml.ScalarNode, offset: int) -> Mark | None:
    """Map an offset in a scalar's value to the source, when the source shows it verbatim."""
    start, end, value = node.start_mark, node.end_mark, node.value
    if node.style in (None, "'", '"') and start.line == end.line:
        quote = 0 if node.style is None else 1
        if text[start.index + quote : start.index + quote + len(value)] == value:
            return Mark(start.line + 1, start.column + 1 + quote + offset)
        return None
    if node.style != "|":
        return None
    row = value.count("\n", 0, offset)
    col = offset - (value.rfind("\n", 0, offset) + 1)
    lines = text.splitlines()
    content = [ln for ln in lines[start.line + 1 : end.line + 1] if ln.strip()]
    if not content:
        return None
    indent = len(content[0]) - len(content[0].lstrip(" "))
    source_row = start.line + 1 + row
    wanted = value.split("\n")[row]
    if source_row < len(lines) and lines[source_row][indent:] == wanted:
        return Mark(source_row + 1, indent + col + 1)
    return None


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors, aliases and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise UnsupportedYAMLError(
                f"alias `*{event.anchor}` is not supported in job specs; write the value out",
                event.start_mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise UnsupportedYAMLError(
                f"anchor `&{anchor}` is not supported in job specs; write the value out "
                "(or split shared settings into separate jobs)",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise UnsupportedYAMLError(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_documents(path: Path, display: str) -> tuple[list[Document], list[Problem]]:
    """Read one spec file into documents; every problem found is returned, located."""
    text, problem = _read_text(path, display)
    if text is None:
        return [], [problem] if problem else []
    builder = _Builder(path, display, text)
    return builder.run()


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(next((kind for test, kind in _KINDS if test(mode)), "not a file"))


def read_limited(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file at ``path`` (more than ``limit``
    means too big). A pipe or ``/dev/zero`` raises NotRegularFileError instead of
    blocking or reading forever; the mode is checked before opening, so no device is
    opened, and again on the open file, in case the path was swapped in between."""
    _require_regular(path.stat().st_mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as file:
        _require_regular(os.fstat(file.fileno()).st_mode)
        return file.read(limit + 1)


def _read_text(path: Path, display: str) -> tuple[str | None, Problem | None]:
    try:
        raw = read_limited(path, MAX_FILE_BYTES)
    except NotRegularFileError as exc:
        message = f"not a regular file ({exc.kind}); job specs must be plain files"
        return None, Problem(display, 1, 1, message)
    except OSError as exc:
        return None, Problem(display, 1, 1, f"cannot read file: {exc.strerror or exc}")
    if len(raw) > MAX_FILE_BYTES:
        return None, Problem(display, 1, 1, "file is over 1 MiB; job spec files are limited to 1 MiB")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        return None, Problem(display, line, column, message)


class _Builder:
    """Composes a file's YAML nodes and turns them into plain values plus positions."""

    def __init__(self, path: Path, display: str, text: str) -> None:
        self.path, self.display, self.text = path, display, text
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def run(self) -> tuple[list[Document], list[Problem]]:
        documents: list[Document] = []
        try:
            for index, root in enumerate(self._nodes()):
                doc = Document(self.path, self.display, index, self.text)
                doc.data = self._value(doc, root, ())
                documents.append(doc)
        except UnsupportedYAMLError as exc:
            self._add(exc.mark, exc.message)
        except yaml.MarkedYAMLError as exc:
            self._add(exc.problem_mark or exc.context_mark, _syntax_message(exc))
        except yaml.reader.ReaderError as exc:
            line = self.text.count("\n", 0, exc.position) + 1
            column = exc.position - (self.text.rfind("\n", 0, exc.position) + 1) + 1
            self.problems.append(
                Problem(self.display, line, column, f"character U+{exc.character:04X} is not allowed in YAML")
                if isinstance(exc.character, int)
                else Problem(self.display, line, column, "character is not allowed in YAML")
            )
        except RecursionError:  # pragma: no cover - MAX_DEPTH stops this first
            self._add(None, "nesting is too deep")
        return documents, self.problems

    def _nodes(self) -> Iterator[yaml.Node]:
        loader = _Loader(self.text)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    yield node
        finally:
            loader.dispose()

    def _add(self, mark: yaml.Mark | None, message: str, hint: str | None = None) -> None:
        where = _mark(mark) if mark is not None else Mark(1, 1)
        self.problems.append(Problem(self.display, where.line, where.column, message, hint))

    def _value(self, doc: Document, node: yaml.Node, path: JsonPath) -> Any:
        doc.nodes[path] = node
        if isinstance(node, yaml.MappingNode):
            self._check_tag(node, (_MAP, "!"))
            return self._mapping(doc, node, path)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, (_SEQ, "!"))
            return [self._value(doc, item, (*path, i)) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.ScalarNode) or not self._check_tag(node, _SCALAR_TAGS):
            return str(node.value)  # reported; keep the text so nothing else cascades
        return self._scalar(doc, node, path)

    def _check_tag(self, node: yaml.Node, allowed: Container[str]) -> bool:
        if node.tag in allowed:
            return True
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        self._add(node.start_mark, f"YAML tag `{tag}` is not supported in job specs")
        return False

    def _mapping(self, doc: Document, node: yaml.MappingNode, path: JsonPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._add(key_node.start_mark, "keys must be plain strings, not lists or mappings")
                continue
            # the raw text, not the resolved value: `on:` or `1:` stay the string the user wrote
            key = str(key_node.value)
            if key in result:
                first = doc.keys[(*path, key)]
                self._add(key_node.start_mark, f"duplicate key `{key}` (first defined at line {first.line})")
                continue
            doc.keys[(*path, key)] = _mark(key_node.start_mark)
            result[key] = self._value(doc, value_node, (*path, key))
        return result

    def _scalar(self, doc: Document, node: yaml.ScalarNode, path: JsonPath) -> Any:
        if node.tag in ("tag:yaml.org,2002:timestamp", "!"):
            value: Any = str(node.value)  # a date is text to us; never a datetime object
        else:
            try:
                value = self.constructor.construct_object(node)
            except Exception:  # PyYAML's constructors fail in many ways on odd input (`!!int ''`)
                kind = node.tag.rsplit(":", 1)[-1]
                self._add(node.start_mark, f"`{node.value}` is not a valid {kind}")
                return None
        if isinstance(value, datetime.date | bytes):
            return str(node.value)
        if not isinstance(value, str) or "$" not in value:
            return value
        return self._interpolate(doc, node, path, value)

    def _interpolate(self, doc: Document, node: yaml.ScalarNode, path: JsonPath, value: str) -> Any:
        try:
            expansion = expand(value)
        except InterpolationError as exc:
            mark = _scalar_offset(self.text, node, exc.offset) or _mark(node.start_mark)
            self.problems.append(Problem(self.display, mark.line, mark.column, exc.message))
            return value
        if not expansion.changed:
            return expansion.value
        doc.variables[path] = expansion.variables
        if path and is_secret_key(path[-1]):
            register_secret(expansion.value)
        if node.style is None:
            # a plain `${N}` may stand for a number or a boolean, as if written literally
            tag = self.constructor.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, expansion.value, (True, False)
            )
            if tag in _RETYPED_TAGS:
                return self.constructor.construct_object(yaml.ScalarNode(tag, expansion.value))
        return expansion.value


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    if "'\\t'" in problem or "tab" in problem:
        return "tab character; YAML indents with spaces only"
    if context and exc.context_mark is not None and exc.problem_mark is not None:
        line = exc.context_mark.line + 1
        if line != exc.problem_mark.line + 1:
            return f"invalid YAML: {problem} ({context} at line {line})"
        return f"invalid YAML: {problem} ({context})"
    return f"invalid YAML: {problem}" if problem else "invalid YAML"
