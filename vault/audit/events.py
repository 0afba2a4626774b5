"""Audit events: what one looks like, who caused it, and its hash.

An event names ids, never names or content: who (person id, role, token id,
address, user agent), what (an action such as ``link.use``), which children
and item, the outcome (``ok`` or the refusal's code) and a few numbers or
codes in ``detail``. Its hash covers its sequence number, every field and
the previous event's hash, so nothing in the chain can change unseen.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
_AGENT_MAX = 256
#: Ids as the vault makes them; anything else a client sent (a made-up id in
#: a path) is not stored as a subject.
_ID = re.compile(r"^[0-9a-f]{32}$")


def _ids(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if isinstance(v, str) and _ID.fullmatch(v)}))


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who an event is attributed to: a person with a token, or the system."""

    person: str | None = None
    role: str | None = None
    token: str | None = None
    ip: str | None = None
    agent: str | None = None


#: Operators at the command line and the vault's own jobs.
SYSTEM = Actor(role="system")

#: The actor of the work under way (a request, a CLI command); events made
#: without naming one take it from here, so the key service and the
#: retention job attribute destruction to whoever asked for it.
CURRENT: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=SYSTEM)


@dataclasses.dataclass(frozen=True)
class Event:
    action: str
    outcome: str = "ok"
    children: tuple[str, ...] = ()
    item: str | None = None
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    actor: Actor | None = None
    at: datetime | None = None


def event(
    action: str,
    *,
    outcome: str = "ok",
    children: Iterable[str] = (),
    item: str | None = None,
    actor: Actor | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> Event:
    """An event; the actor defaults to :data:`CURRENT` at the time of the call."""
    return Event(
        action=action,
        outcome=outcome,
        children=_ids(children),
        item=item if item is not None and _ID.fullmatch(item) else None,
        detail=detail,
        actor=actor or CURRENT.get(),
        at=at,
    )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_detail(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def draft_of(ev: Event, at: datetime) -> dict[str, Any]:
    """Everything stored of ``ev`` but its place in the chain, as plain text and
    numbers (``at`` in its canonical form): what a writer needs to chain it."""
    actor = ev.actor or SYSTEM
    return {
        "at": iso(at),
        "action": ev.action,
        "outcome": ev.outcome,
        "actor": actor.person,
        "role": actor.role,
        "token": actor.token,
        "ip": (actor.ip or "")[:64] or None,
        "agent": (actor.agent or "")[:_AGENT_MAX] or None,
        "children": json.dumps(list(ev.children), separators=(",", ":")),
        "item": ev.item,
        "detail": canonical_detail(ev.detail),
    }


def linked(seq: int, prev: str, draft: Mapping[str, Any]) -> dict[str, Any]:
    """``draft`` as event number ``seq`` after ``prev``, hash included (``at`` as text)."""
    row = {"seq": seq, **draft, "prev": prev}
    row["hash"] = _digest(prev, [row[name] for name in _FIELDS])
    return row


def row_of(seq: int, prev: str, ev: Event, at: datetime) -> dict[str, Any]:
    """The stored row of ``ev`` as event number ``seq`` after ``prev``, hash included."""
    row = linked(seq, prev, draft_of(ev, at))
    row["at"] = at
    return row


_FIELDS = (
    "seq",
    "at",
    "action",
    "outcome",
    "actor",
    "role",
    "token",
    "ip",
    "agent",
    "children",
    "item",
    "detail",
)
#: The columns of a stored event, in order.
COLUMNS = (*_FIELDS, "prev", "hash")


def hash_of(row: Mapping[str, Any]) -> str:
    """SHA-256 over the previous hash and the event's canonical form."""
    return _digest(row["prev"], [iso(row["at"]) if name == "at" else row[name] for name in _FIELDS])


def _digest(prev: str, values: list[Any]) -> str:
    body = json.dumps(values, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


@dataclasses.dataclass
class Chained:
    """Drafts chained onto a head: the rows, the access-log index, the events
    whose place calls for a signed checkpoint, and the new head."""

    rows: list[dict[str, Any]]
    subjects: list[tuple[str, int]]
    checkpoints: list[tuple[int, str]]
    seq: int
    digest: str


def chain(seq: int, digest: str, drafts: Iterable[Mapping[str, Any]], every: int) -> Chained:
    """Chain ``drafts`` onto the head ``(seq, digest)``; a checkpoint every ``every`` events."""
    out = Chained([], [], [], seq, digest)
    for draft in drafts:
        out.seq += 1
        row = linked(out.seq, out.digest, draft)
        out.digest = row["hash"]
        out.rows.append(row)
        out.subjects.extend((child, out.seq) for child in json.loads(draft["children"]))
        if out.seq % every == 0:
            out.checkpoints.append((out.seq, out.digest))
    return out


#: What every message the audit key signs starts with.
HEAD_LABEL = b"kluis-audit-v1\n"


def head_message(seq: int, digest: str) -> bytes:
    """What the keyring's HMAC signs for a head or a checkpoint."""
    return HEAD_LABEL + f"{seq}\n{digest}".encode()
