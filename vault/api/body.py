"""Reading requests into their models, and writing answers from theirs.

A JSON body passes, in order: its ``Content-Type`` (415 ``unsupported_type``
unless JSON), its size and read time-out (413, 408), the text gate
(:mod:`vault.api.gate`: UTF-8, no lone surrogates or NUL, no duplicate keys,
bounded depth), then its model (msgspec: unknown fields, types, lengths,
choices, dates), then the free-text pass: every field the model marks as
free text is trimmed, refused empty and scanned for a BSN (422
``bsn_not_stored``), as is a field whose *name* says it carries one. An
empty body is the model's defaults where every field is optional.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from datetime import date
from typing import Any, TypeVar
from urllib.parse import unquote

import msgspec
from aiohttp import web

from vault.api.gate import bad_text, parse_json, refuse_too_deep
from vault.api.models.types import DAY_RANGE, out_of_range
from vault.api.resources import SETTINGS
from vault.directory.bsn import BsnNotStored, contains_bsn, refuse_bsn
from vault.errors import InvalidInput, KluisError, TooLarge

M = TypeVar("M", bound=msgspec.Struct)

#: JSON bodies are small; uploads stream and set their own limits per kind.
MAX_JSON_BODY = 1024 * 1024
_ENCODER = msgspec.json.Encoder()
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


class RequestTimeout(KluisError):
    """The client stopped sending its body; the connection is closed."""

    status, code = 408, "request_timeout"
    default_message = "The request body stopped arriving; send it again without pausing."


class UnsupportedBody(KluisError):
    status, code = 415, "unsupported_type"
    default_message = "Send this call's body as application/json."


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as ``model``, checked."""
    raw = await read_limited(request, MAX_JSON_BODY)
    if not raw.strip():
        if _all_optional(model):
            return _defaults(model)
        raise InvalidInput("This call needs a JSON object as its body; see /openapi.json.")
    if not is_json(request.content_type):
        raise UnsupportedBody(
            f"This call takes application/json, not {request.content_type}; "
            "send the body as JSON with that Content-Type."
        )
    return decode(raw, model)


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes, with the idle time-out of [server]."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"The body is larger than {limit // 1024} KiB; send less.")
    timeout = request.app[SETTINGS].server.body_timeout_seconds
    out = bytearray()
    while True:
        chunk = await idle_limited(request.content.readany(), timeout)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > limit:
            raise TooLarge(f"The body is larger than {limit // 1024} KiB; send less.")


async def idle_limited(read: Any, idle: float) -> Any:
    """``await read``, or :class:`RequestTimeout` after ``idle`` seconds without data."""
    try:
        async with asyncio.timeout(idle or None):
            return await read
    except TimeoutError:
        raise RequestTimeout() from None


def decode(raw: bytes, model: type[M], what: str = "The body") -> M:
    """``raw`` JSON as ``model``: the text gate, the model's checks, the free-text pass."""
    value = parse_json(raw, what, depth=False)
    try:
        obj = msgspec.convert(value, model, strict=True)
    except msgspec.ValidationError as exc:
        refuse_too_deep(raw.decode("utf-8"), what)  # before anything walks the value
        refuse_bsn(value, scan_values=False)  # a field named like a BSN: 422, not 400
        raise InvalidInput(explain(str(exc), model, what)) from None
    _refuse_out_of_range(obj, "field")
    _free_text(obj)
    return obj


def read_query(request: web.Request, model: type[M]) -> M:
    """The query parameters as ``model``; an empty value counts as absent.
    Free text (the privacy officer's ``reason``) passes the body's checks:
    no control character, trimmed, no BSN."""
    query = request.query
    values = {key: query.getone(key) for key in query if query.getone(key) != ""}
    for name in moment_fields(model):
        # Not strict (a query is all text), msgspec would read a bare number
        # as Unix seconds: 20261202 as a moment in 1970.
        if name in values and not _ISO_DATE.match(values[name]):
            raise InvalidInput(
                f"The query parameter '{name}' must be a timestamp in ISO 8601 with its time "
                "zone, like 2026-11-21T10:00:00Z (write a '+' in the zone as %2B)."
            )
    try:
        obj = msgspec.convert(values, model, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidInput(explain(str(exc), model, "The query")) from None
    _refuse_out_of_range(obj, "query parameter")
    for name, _ in text_fields(model):
        value = getattr(obj, name)
        if isinstance(value, str) and (problem := bad_text(value)) is not None:
            raise InvalidInput(f"The query parameter '{name}' holds {problem}.")
    _free_text(obj)
    return obj


def _refuse_out_of_range(value: object, what: str, path: str = "") -> None:
    """400 for a date or moment anywhere in ``value`` (a decoded model) that
    lies outside :data:`~vault.api.models.types.DAY_RANGE`: the one check
    for every model's dates and moments (``9999-12-31`` as a placement's
    end, ``0001-01-01T00:00:00+01:00`` as a retention run's ``now``)."""
    if isinstance(value, date):
        if out_of_range(value):
            raise InvalidInput(
                f"The {what} '{path}' must be a date or moment {DAY_RANGE} (in UTC); "
                "send one in that range."
            )
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            inner = getattr(value, name)
            _refuse_out_of_range(inner, what, f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            _refuse_out_of_range(inner, what, f"{path}[{index}]")


def answer(value: msgspec.Struct, status: int = 200) -> web.Response:
    """A JSON answer from its model."""
    return web.Response(body=_ENCODER.encode(value), status=status, content_type="application/json")


def check_file_name(name: str | None) -> str | None:
    """An upload's file name as sent, if it is text the vault may keep.

    Percent-escapes are decoded first (aiohttp's and other clients escape
    the whole name, browsers only quotes and line breaks), so that neither
    a BSN nor a control character hides behind them. Control characters
    (NUL above all) and lone surrogates: 400; a BSN: 422. The name itself
    never goes into a message or a log.
    """
    if name is None or name == "":
        return None
    if _PERCENT.search(name):
        with contextlib.suppress(UnicodeDecodeError):
            name = unquote(name, errors="strict")
    reason = bad_text(name)
    if reason is not None:
        raise InvalidInput(f"The file name holds {reason}; rename the file and send it again.")
    if len(name) > 255:
        raise InvalidInput("The file name is longer than 255 characters; rename the file.")
    if contains_bsn(name):
        raise BsnNotStored()
    return name


# -- the free-text pass ---------------------------------------------------------


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.cache
def moment_fields(model: type[msgspec.Struct]) -> tuple[str, ...]:
    """The top-level fields of ``model`` that hold a timestamp."""
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.encode_name for f in info.fields if _is_moment(f.type))


def _is_moment(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return _is_moment(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(map(_is_moment, t.types))
    return isinstance(t, msgspec.inspect.DateTimeType)


@functools.cache
def text_fields(model: type[msgspec.Struct]) -> tuple[tuple[str, bool], ...]:
    """(field, may be empty) for each free-text field of ``model``.

    Only top-level fields carry free text in this API; one nested deeper
    would be missed, so it stops the import instead.
    """
    found = []
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        marker = _text_marker(field.type)
        if marker is not None:
            found.append((field.encode_name, marker == "empty"))
        elif _nested_text(field.type):  # pragma: no cover
            raise TypeError(f"{model.__name__}.{field.name}: free text only at the top level")
    return tuple(found)


def _text_marker(t: msgspec.inspect.Type) -> str | None:
    if isinstance(t, msgspec.inspect.UnionType):
        markers = [m for m in map(_text_marker, t.types) if m is not None]
        return markers[0] if markers else None
    if isinstance(t, msgspec.inspect.Metadata) and t.extra:
        marker = t.extra.get("text")
        return str(marker) if marker is not None else None
    return None


def _nested_text(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.Metadata):
        return _nested_text(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return any(map(_nested_text, t.types))
    if isinstance(t, msgspec.inspect.ListType):
        return _text_marker(t.item_type) is not None or _nested_text(t.item_type)
    if isinstance(t, msgspec.inspect.StructType):
        return any(_text_marker(f.type) is not None or _nested_text(f.type) for f in t.fields)
    return False


def _free_text(obj: msgspec.Struct) -> None:
    for name, may_be_empty in text_fields(type(obj)):
        value = getattr(obj, name)
        if value is None or value is msgspec.UNSET:
            continue
        text = value.strip()
        if not text:
            if not may_be_empty:
                raise InvalidInput(f"The field '{name}' must not be empty.")
            setattr(obj, name, None)
            continue
        if contains_bsn(text):
            raise BsnNotStored()
        setattr(obj, name, text)


@functools.cache
def _all_optional(model: type[msgspec.Struct]) -> bool:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return all(not f.required for f in info.fields)


def _defaults(model: type[M]) -> M:
    return msgspec.convert({}, model)


# -- messages -------------------------------------------------------------------

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIELD_IN = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<f>[^`]+)`")
_LENGTH = re.compile(r"^Expected `(?P<t>str|array|object)` of length (?P<op>[<>]=) (?P<n>\d+)")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>[<>]=) (?P<n>-?\d+)")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_READABLE = {
    "str": "a string",
    "int": "a whole number",
    "bool": "true or false",
    "array": "a list",
    "object": "a JSON object",
    "null": "null",
    "float": "a number",
}


def explain(message: str, model: type[msgspec.Struct], what: str) -> str:
    """msgspec's message about ``model`` in API terms: the field and what to send."""
    at = _AT.search(message)
    path = at.group("path").lstrip(".") if at else ""
    text = message[: at.start()] if at else message
    field = _FIELD_IN.match(text)
    if field:
        name = ".".join(p for p in (path, field.group("f")) if p)
        if field.group("what") == "missing required":
            return f"The field '{name}' is missing; see /openapi.json."
        return f"Unknown field '{name}'; see /openapi.json for this call's fields."
    if not path:
        if text.startswith("Expected `object`"):
            return f"{what} must be a JSON object."
        return f"{what} does not match this call: {text}."
    subject = f"The field '{path}'"
    hint = _hint(model, path)
    if length := _LENGTH.match(text):
        n, longest = length.group("n"), length.group("op") == "<="
        if length.group("t") == "str":
            if longest:
                return f"{subject} is longer than {n} characters."
            if n == "1":
                return f"{subject} must not be empty."
            return f"{subject} must be at least {n} characters long."
        if n == "1" and not longest:
            return f"{subject} must list at least one entry."
        noun = "entry" if n == "1" else "entries"
        return f"{subject} must list at {'most' if longest else 'least'} {n} {noun}."
    if bound := _BOUND.match(text):
        word = "at most" if bound.group("op") == "<=" else "at least"
        return f"{subject} must be {word} {bound.group('n')}."
    if hint is not None:
        return f"{subject} must be {hint}."
    if typed := _TYPE.match(text):
        wanted = [_READABLE.get(w.strip(), w.strip()) for w in typed.group("want").split("|")]
        return f"{subject} must be {' or '.join(w for w in wanted if w != 'null')}."
    return f"{subject}: {text}; see /openapi.json."


def _hint(model: type[msgspec.Struct], path: str) -> str | None:
    """What the field at ``path`` takes, in words: its choices, format or hint."""
    t: msgspec.inspect.Type | None = msgspec.inspect.type_info(model)
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        t = _step(t, part)
        if t is None:
            return None
    return _describe(t) if t is not None else None


def _step(t: msgspec.inspect.Type | None, part: str) -> msgspec.inspect.Type | None:
    if isinstance(t, msgspec.inspect.Metadata):
        return _step(t.type, part)
    if isinstance(t, msgspec.inspect.UnionType):
        for option in t.types:
            found = _step(option, part)
            if found is not None:
                return found
        return None
    if part.startswith("["):
        return t.item_type if isinstance(t, msgspec.inspect.ListType) else None
    if isinstance(t, msgspec.inspect.StructType):
        return next((f.type for f in t.fields if f.encode_name == part), None)
    return None


def _describe(t: msgspec.inspect.Type) -> str | None:
    if isinstance(t, msgspec.inspect.Metadata):
        if t.extra and "hint" in t.extra:
            return str(t.extra["hint"])
        return _describe(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        described = [d for d in map(_describe, t.types) if d is not None]
        return " or ".join(described) if described else None
    if isinstance(t, msgspec.inspect.LiteralType):
        return "one of: " + ", ".join(str(v) for v in t.values)
    if isinstance(t, msgspec.inspect.DateType):
        return "a date like 2026-11-21"
    if isinstance(t, msgspec.inspect.DateTimeType):
        return "a timestamp with its time zone, like 2026-11-21T10:00:00Z"
    return None
