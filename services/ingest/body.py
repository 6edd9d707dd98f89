"""Request bodies of `POST /v1/events`: read within limits, split into inputs within limits.

Nothing here holds more than one body: the size is checked against Content-Length before
reading and against the bytes received while reading (chunked bodies), and the number of
inputs is counted before any per-input object is built, so a hostile body costs its bytes
and no more.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web

from services.ingest.publish import Parsed

_CHUNK = 64 * 1024
# a run of strings (an unterminated one runs to the end) and other non-structural bytes, or one
# structural character: the splitter's Python loop turns once per structural character only
_TOKEN = re.compile(rb'(?:"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\Z)|[^"\[\]{},]++)++|[\[\]{},]', re.DOTALL)
# the splitter gives up past this many structural characters per event allowed (a legitimate event
# has a few dozen; a body of millions of brackets would otherwise hold the event loop for seconds)
_TOKENS_PER_EVENT = 64
# bodies with at most this many commas per event allowed are parsed whole at once; beyond it
# the top-level elements are counted first (a body of millions of tiny elements)
_COMMAS_PER_EVENT = 16


class BodyRefused(Exception):
    """A body that is not processed at all: `status` with a message (and headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, or BodyRefused: 413 beyond `limit` bytes (before reading it when
    Content-Length says so), 408 when it has not all arrived within `timeout_s`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, f"body of {request.content_length} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, f"body exceeds the {limit}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {timeout_s:g} s") from None
    return b"".join(chunks)


class TooComplex(Exception):
    """A body with more structure (brackets, commas) than `_TOKENS_PER_EVENT` per event allowed."""


def _too_many(limit: int) -> BodyRefused:
    return BodyRefused(413, f"more than {limit} events in one request: send at most {limit} per request "
                            "(max_events_per_request)")


def array_elements(body: bytes, limit: int) -> list[bytes] | None:
    """The exact bytes of each top-level element of the JSON array `body`, or None when it is not
    a well-formed array of at most `limit` elements... as far as structure goes (the elements
    themselves are not parsed). Raises BodyRefused (413) past `limit` elements."""
    depth = 0
    elements: list[bytes] = []
    start = None
    budget = _TOKENS_PER_EVENT * limit
    for m in _TOKEN.finditer(body):
        tok = m.group()
        if len(tok) > 1 or tok not in b"[]{},":  # strings and other bytes
            continue
        budget -= 1
        if budget < 0:
            raise TooComplex()
        if tok in (b"[", b"{"):
            depth += 1
            if depth == 1:
                if tok != b"[":
                    return None
                start = m.end()
        elif tok in (b"]", b"}"):
            if depth == 1:
                piece = body[start:m.start()].strip()
                if piece or elements:
                    elements.append(piece)
                return elements if not body[m.end():].strip() else None
            depth -= 1
        elif depth == 1:  # a comma between elements
            elements.append(body[start:m.start()].strip())
            if len(elements) > limit:
                raise _too_many(limit)
            start = m.end()
    return None


def split_body(body: bytes, max_events: int, max_event_bytes: int | None = None) -> list[bytes | Parsed]:
    """A JSON array becomes one input per element; anything else is JSON Lines (one per non-blank
    line). An array is parsed once here; each element keeps a way to its exact bytes for a dead
    letter. An array with an element that does not parse is split by its structure (strings and
    brackets) and each element validated alone; one whose structure is broken is one input
    (rejected; its dead letter keeps its first max_event_bytes). More than
    `max_events` inputs: BodyRefused (413)."""
    stripped = body.strip()
    if stripped.startswith(b"["):
        if stripped.count(b",") >= _COMMAS_PER_EVENT * max_events:
            try:
                array_elements(stripped, max_events)  # 413 before a huge list is built
            except TooComplex:
                raise BodyRefused(413, f"the body has more structure than {max_events} events can have "
                                       "(max_events_per_request)") from None
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            # an element that does not parse: the others still count, each on its own
            try:
                elements = array_elements(stripped, max_events)
            except TooComplex:
                elements = None
            return elements if elements else [stripped]  # not even an array: one input, rejected
        if isinstance(items, list):
            if len(items) > max_events:
                raise _too_many(max_events)
            return _parsed(stripped, items, max_events, max_event_bytes)
        return [stripped]
    if body.count(b"\n") >= max_events:
        lines = []
        pos = 0
        while pos < len(body):
            end = body.find(b"\n", pos)
            end = len(body) if end < 0 else end
            if body[pos:end].strip():
                if len(lines) == max_events:
                    raise _too_many(max_events)
                lines.append(body[pos:end].rstrip(b"\r"))
            pos = end + 1
        return lines
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]


def _parsed(body: bytes, items: list[Any], max_events: int, max_event_bytes: int | None) -> list[bytes | Parsed]:
    spans: list[bytes] = []

    def raw_of(i: int) -> bytes:
        if not spans:
            try:
                spans.extend(array_elements(body, max_events) or ())
            except TooComplex:
                pass
        return spans[i] if i < len(spans) else orjson.dumps(items[i])

    if max_event_bytes is not None and len(body) > max_event_bytes:
        # an element may be over the event limit: those go as their bytes, to be refused for their size
        return [raw_of(i) if len(raw_of(i)) > max_event_bytes else Parsed(item, (lambda i=i: raw_of(i)))
                for i, item in enumerate(items)]
    return [Parsed(item, (lambda i=i: raw_of(i))) for i, item in enumerate(items)]
