"""Reading JSON request bodies: parsed, checked against declared fields.

Malformed JSON, a body that is not an object, an unknown field, a missing or
mistyped one: 400 ``invalid_input`` naming the field. A BSN anywhere: 422
``bsn_not_stored`` (field names always; values too in directory bodies).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from aiohttp import web

from vault.directory.bsn import BsnNotStored, contains_bsn, refuse_bsn
from vault.errors import InvalidInput

MAX_TEXT = 500


@dataclasses.dataclass(frozen=True)
class Field:
    #: text (free text, scanned for a BSN in directory bodies), id (an opaque
    #: id of the vault's own, never scanned: random hex can hold nine digits),
    #: secret (a password or code: taken as sent, never stripped or scanned),
    #: bool, int, date, list. ``choices`` limits a text, or every entry of a list.
    type: str = "text"
    required: bool = True
    nullable: bool = False
    choices: tuple[str, ...] | None = None
    max_length: int = MAX_TEXT


async def read_json(
    request: web.Request, fields: Mapping[str, Field], *, directory: bool = False
) -> dict[str, Any]:
    """The body's declared fields, checked; ``directory`` scans free text for a BSN."""
    try:
        body = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The body is not valid JSON; send a JSON object.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.")
    refuse_bsn(body, scan_values=False)  # a field named like a BSN, anywhere
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}; see /openapi.json.")
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise InvalidInput(f"The field '{name}' is missing.")
            continue
        out[name] = _value(name, body[name], spec, directory)
    return out


def _value(name: str, value: Any, spec: Field, directory: bool) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise InvalidInput(f"The field '{name}' must not be null.")
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise InvalidInput(f"The field '{name}' must be true or false.")
        return value
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"The field '{name}' must be a whole number.")
        return value
    if spec.type == "list":
        if not isinstance(value, list):
            raise InvalidInput(f"The field '{name}' must be a list.")
        if spec.choices is not None and (not value or any(v not in spec.choices for v in value)):
            raise InvalidInput(
                f"The field '{name}' must list one or more of: {', '.join(spec.choices)}."
            )
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"The field '{name}' must be a string.")
    if spec.type == "secret":
        if not value or len(value) > spec.max_length:
            raise InvalidInput(
                f"The field '{name}' must be 1 to {spec.max_length} characters long."
            )
        return value
    text = value.strip()
    if spec.type == "date":
        return parse_date(name, text)
    if not text:
        raise InvalidInput(f"The field '{name}' must not be empty.")
    if len(text) > spec.max_length:
        raise InvalidInput(f"The field '{name}' is longer than {spec.max_length} characters.")
    if spec.choices is not None and text not in spec.choices:
        raise InvalidInput(f"The field '{name}' must be one of: {', '.join(spec.choices)}.")
    if directory and spec.type == "text" and contains_bsn(text):
        raise BsnNotStored()
    return text


def iso_utc(moment: datetime) -> str:
    """A timestamp as API.md writes them: ISO 8601 UTC with a Z."""
    return moment.isoformat().replace("+00:00", "Z")


def parse_date(name: str, text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"The field '{name}' must be a date like 2026-11-21.") from None
