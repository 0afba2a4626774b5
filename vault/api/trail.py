"""The record a call leaves: its trail, and how handlers add to it.

The audit middleware (:mod:`vault.api.audit`) starts a :class:`Trail` for
every audited call; handlers name what they touch (:func:`note`), who the
caller turned out to be (:func:`attribute`), spell out several events
(:func:`add`), commit the record before a change or a stream
(:func:`record_now`), or with the change (:func:`for_transaction`).
:func:`caller` is where every part of the service takes the client's
address from (the trusted-proxy rules are
:mod:`vault.api.proxies`). Under ``kluis serve --workers N`` each event
carries the serving process's id in its detail (``worker``), which says
which process answered and nothing about anyone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from vault.api.proxies import client_of
from vault.api.resources import AUDIT
from vault.audit import CURRENT, Actor, Event, event


@dataclasses.dataclass
class Trail:
    """What the current call will put on the record."""

    action: str
    actor: Actor
    children: set[str] = dataclasses.field(default_factory=set)
    item: str | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Events a handler spelled out; they replace the one default event.
    events: list[Event] = dataclasses.field(default_factory=list)
    written: bool = False
    #: The serving worker's process id, when several serve (``--workers``).
    worker: int | None = None

    def pending(self, outcome: str) -> list[Event]:
        if self.events:
            events = list(self.events)
        else:
            events = [
                event(
                    self.action,
                    outcome=outcome,
                    children=self.children,
                    item=self.item,
                    actor=self.actor,
                    **self.detail,
                )
            ]
        if self.worker is None:
            return events
        return [
            dataclasses.replace(ev, detail={**ev.detail, "worker": self.worker}) for ev in events
        ]


TRAIL = web.RequestKey("audit_trail", Trail)
#: Set by ``create_app(..., worker=n)``: events name the process that served.
WORKER = web.AppKey("worker", int)


def start_trail(request: web.Request, action: str) -> Trail:
    """The trail of a call that is about to be handled."""
    worker = os.getpid() if WORKER in request.app else None
    trail = Trail(action=action, actor=caller(request), worker=worker)
    request[TRAIL] = trail
    return trail


def note(
    request: web.Request,
    *,
    children: Iterable[str] = (),
    item: str | None = None,
    **detail: Any,
) -> None:
    """Name what the call touches (for its default event)."""
    trail = request.get(TRAIL)
    if trail is None:
        return
    trail.children.update(children)
    if item is not None:
        trail.item = item
    trail.detail.update(detail)


def attribute(request: web.Request, actor: Actor) -> None:
    """The caller is known (a token, or a link's principal): events carry them."""
    trail = request.get(TRAIL)
    if trail is not None:
        trail.actor = actor
    CURRENT.set(actor)


def add(request: web.Request, *events: Event) -> None:
    """Spell out the call's events (link issuing: one per item)."""
    trail = request.get(TRAIL)
    if trail is not None:
        trail.events.extend(events)


async def record_now(request: web.Request) -> None:
    """Commit the call's event(s) now, before the access or change happens."""
    trail = request[TRAIL]
    await request.app[AUDIT].record(*trail.pending("ok"))
    trail.written = True


def for_transaction(request: web.Request) -> list[Event]:
    """The call's event(s), for the caller to append in the transaction of its
    change (the record and the change commit together); the trail counts as
    written, and a refusal after it is still recorded as one."""
    trail = request[TRAIL]
    trail.written = True
    return trail.pending("ok")


def caller(request: web.Request) -> Actor:
    """Who is calling, as far as the connection tells: the client's address
    (behind a trusted proxy, the one it forwarded) and user agent."""
    return Actor(ip=client_of(request).ip, agent=request.headers.get("User-Agent"))
