"""A ``.json`` input: one top-level array, decoded element by element as it is read, so
a large file never sits in memory whole; each element's line is tracked for its errors."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from agentflow_jobs.errors import InputError
from agentflow_jobs.io.readers import _MAX_ELEMENT, _READ_SIZE, InputItem, _as_record
from agentflow_jobs.wire import RowError

__all__ = ["read_json_array"]


class _JsonArrayStream:
    """Decodes one top-level JSON array incrementally, tracking line numbers."""

    def __init__(self, handle: BinaryIO, path: str) -> None:
        self._handle = handle
        self._path = path
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.line = 1  # line of buffer[pos]
        self.eof = False
        self._bytes_lines = 1

    def fill(self) -> bool:
        """Read more text into the buffer; False at end of file."""
        if self.eof:
            return False
        chunk = self._handle.read(_READ_SIZE)
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            line = self._bytes_lines + chunk[: exc.start].count(b"\n")
            raise InputError("not UTF-8", path=self._path, line=line) from exc
        self._bytes_lines += chunk.count(b"\n")
        self.buffer = self.buffer[self.pos :] + text
        self.pos = 0
        self.eof = not chunk
        return bool(chunk) or bool(text)

    def skip_space(self) -> str:
        """Advance past whitespace; the next character, or "" at end of file."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n":
                if self.buffer[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.fill():
                return ""

    def advance(self, count: int) -> None:
        self.line += self.buffer.count("\n", self.pos, self.pos + count)
        self.pos += count

    def value(self) -> Any:
        """Decode the next JSON value, reading more input until it is complete."""
        while True:
            try:
                value, end = self._json.raw_decode(self.buffer, self.pos)
            except RecursionError:
                # the element cannot be skipped without parsing it: refuse the file, located
                raise InputError(
                    "JSON nested too deeply", path=self._path, line=self.line
                ) from None
            except json.JSONDecodeError as exc:
                if not self.eof and len(self.buffer) - self.pos < _MAX_ELEMENT:
                    self.fill()
                    continue
                line = self.line + self.buffer.count("\n", self.pos, exc.pos)
                raise InputError(f"invalid JSON: {exc.msg}", path=self._path, line=line) from exc
            # a number at the end of the buffer may continue in the next chunk
            if end == len(self.buffer) and not self.eof:
                self.fill()
                continue
            self.advance(end - self.pos)
            return value


def read_json_array(handle: BinaryIO, path: str) -> Iterator[InputItem]:
    """A JSON array is streamed; a syntax error inside it stops the file (located)."""
    stream = _JsonArrayStream(handle, path)
    if stream.skip_space() == "\ufeff":
        stream.advance(1)
    first = stream.skip_space()
    if first != "[":
        # the shape of the whole file is wrong, not one line of it
        hint = " (one JSON object per line is JSON Lines: set input.format: jsonl)" if first == "{" else ""
        raise InputError("expected a JSON array" + hint, path=path)
    stream.advance(1)
    index = 0
    if stream.skip_space() == "]":
        _end_of_array(stream, path)
        return
    while True:
        line = stream.line
        parsed = _as_record(stream.value())
        if isinstance(parsed, RowError):
            yield InputItem(
                index, line, None, RowError(code=parsed.code, message=f"line {line}: {parsed.message}")
            )
        else:
            yield InputItem(index, line, parsed)
        index += 1
        nxt = stream.skip_space()
        if nxt == "]":
            _end_of_array(stream, path)
            return
        if nxt != ",":
            raise InputError("expected ',' or ']' in JSON array", path=path, line=stream.line)
        stream.advance(1)
        stream.skip_space()


def _end_of_array(stream: _JsonArrayStream, path: str) -> None:
    """Past the array's ``]`` only whitespace may follow: a second array appended to the
    file would otherwise be dropped, unsaid."""
    stream.advance(1)
    if stream.skip_space():
        raise InputError("unexpected data after the JSON array (a file holds one array)",
                         path=path, line=stream.line)
