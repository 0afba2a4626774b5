"""The field types every model of the contract is built from.

A type carries its own checks (lengths, choices, formats) as msgspec
``Meta``, so the same declaration validates a request and appears in
``/openapi.json``. Free text carries ``extra={"text": ...}``: the body
reader (:mod:`vault.api.body`) trims it, refuses it empty, and scans it for
a BSN. That marker is the one list of fields the BSN check runs on; ids,
dates and choices are never scanned (random hex can hold nine digits).
Secrets (:data:`Password`, :data:`OneTimeCode`) carry ``extra={"secret":
True}`` instead: taken exactly as sent (never trimmed, normalised or
scanned), never echoed, and masked in a model's ``repr``
(:class:`SecretBody`).
"""

from __future__ import annotations

import functools
import typing
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec

from vault.policy import CONSENT_TYPES, KINDS, ROLES

#: Longest single free-text value (names, reasons, titles).
MAX_TEXT = 500
MAX_DIARY_TEXT = 20_000


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused, to catch typos."""


class Query(msgspec.Struct, kw_only=True):
    """Query parameters: unknown ones are ignored (cache busters), as browsers expect."""


class Answer(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An answer: fields with a default are left out while they hold it."""


class SecretBody(Body):
    """A body with a secret field: its ``repr`` names the fields and masks
    the secrets, so a body that reaches a log or a traceback shows none."""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}=***"
            if name in secret_fields(type(self))
            else f"{name}={getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__


@functools.cache
def secret_fields(model: type[msgspec.Struct]) -> frozenset[str]:
    """The fields of ``model`` typed as a secret."""
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(f.name for f in info.fields if _is_secret(f.type))


def _is_secret(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.UnionType):
        return any(map(_is_secret, t.types))
    return isinstance(t, msgspec.inspect.Metadata) and bool((t.extra or {}).get("secret"))


#: Models only a ``oneOf`` names (answers whose entries take one of two
#: shapes); the document lists them with the rest.
REFERENCED: list[type[msgspec.Struct]] = []


def one_of(*models: type[msgspec.Struct]) -> dict[str, Any]:
    """Schema for a list whose entries are one of ``models`` (msgspec only
    decodes tagged unions; these are answers, never decoded)."""
    REFERENCED.extend(models)
    refs = [{"$ref": f"#/components/schemas/{model.__name__}"} for model in models]
    return {"items": {"oneOf": refs}}


def _text(max_length: int, description: str, *, empty: bool = False) -> msgspec.Meta:
    return msgspec.Meta(
        min_length=0 if empty else 1,
        max_length=max_length,
        description=description,
        extra={"text": "empty" if empty else "free"},
    )


#: An opaque id of the vault's own (never scanned for a BSN).
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="An opaque id.")]
Name = Annotated[str, _text(MAX_TEXT, "A name; leading and trailing spaces are dropped.")]
Reason = Annotated[str, _text(MAX_TEXT, "Why; free text, never a citizen service number.")]
Title = Annotated[str, _text(MAX_TEXT, "A caption; empty means none.", empty=True)]
DiaryText = Annotated[str, _text(MAX_DIARY_TEXT, "The diary entry's text.")]
#: The privacy officer's reason for an access (shown in the child's access log).
AccessReason = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=500,
        description="Why the privacy officer needs this (3 to 500 characters); shown in the "
        "child's access log; never a citizen service number.",
        extra={"text": "free"},
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        pattern=r"^\s*[^@\s]+@[^@\s]+\s*$",  # trimmed after the check
        description="An e-mail address.",
        extra={"text": "free", "hint": "an e-mail address"},
    ),
]


def _secret(max_length: int, description: str) -> msgspec.Meta:
    return msgspec.Meta(
        min_length=1,
        max_length=max_length,
        description=description,
        extra={"secret": True},
        extra_json_schema={"format": "password", "writeOnly": True},
    )


#: A password exactly as typed: spaces count, nothing is trimmed or
#: normalised here, and no BSN scan refuses it (a password is never stored,
#: only its Argon2id hash). The rules for a new one are
#: vault/accounts/passwords.py's, which also refuses a BSN-shaped number in
#: it like a common password (docs/api-notes.md, "Passwords").
Password = Annotated[str, _secret(256, "A password, exactly as typed.")]
#: A one-time code from an authenticator app (six digits).
OneTimeCode = Annotated[str, _secret(16, "A one-time code (TOTP) from the authenticator app.")]
#: Seconds a link lives; a value over the configured cap is cut to the cap.
TtlSeconds = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
#: A timestamp that says its time zone (``2026-11-21T10:00:00Z``).
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
#: ``2026-11-21`` or a timestamp (``2026-11-21T10:00:00Z``).
DateOrTimestamp = Annotated[
    str,
    msgspec.Meta(
        min_length=10,
        max_length=40,
        pattern=r"^\d{4}-\d{2}-\d{2}([T ].+)?$",
        description="An ISO 8601 date or timestamp.",
        extra={"hint": "an ISO 8601 date or timestamp"},
    ),
]
Day = date

#: The days a request's date or moment may name (a moment in UTC): the
#: vault adds years and weeks to them (retention, a placement's window) and
#: reads them on the organisation's clocks, which years 1 and 9999 do not
#: survive (``0001-01-01T00:00:00+01:00`` is before year 1 in UTC). The body
#: and query readers (vault/api/body.py) and the command line check every
#: field typed ``date`` or ``datetime`` against it: 400 ``invalid_input``.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2999, 12, 31)
DAY_RANGE = f"between {EARLIEST_DAY} and {LATEST_DAY}"


def out_of_range(value: date) -> bool:
    """Whether ``value`` (a date, or a moment: its UTC day) is outside
    :data:`EARLIEST_DAY` to :data:`LATEST_DAY`."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:  # before year 1 or after 9999 in UTC
                return True
        value = value.date()
    return not EARLIEST_DAY <= value <= LATEST_DAY


Kind = Literal[
    "photo",
    "video",
    "diary",
    "observation",
    "medical",
    "child_protection",
    "invoice",
    "annual_statement",
    "contract",
]
Role = Literal[
    "guardian",
    "staff",
    "administration",
    "location_manager",
    "privacy_officer",
    "inspector",
    "admin",
]
ConsentType = Literal["photo", "diary", "external_publication", "school_handover"]
#: ``web``: a video's H.264/AAC rendition, for one some browser cannot play (issue 24).
Variant = Literal["original", "preview", "thumb", "web"]
Disposition = Literal["inline", "attachment"]

# The choices are the policy's own lists; a literal that drifted from them
# stops the import here rather than letting the document and the checks differ.
for _literal, _source in ((Kind, KINDS), (Role, ROLES), (ConsentType, CONSENT_TYPES)):
    if typing.get_args(_literal) != _source:  # pragma: no cover
        raise RuntimeError(f"{_literal} differs from vault.policy ({_source})")
