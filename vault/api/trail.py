"""The record a call leaves: its trail, and how handlers add to it.

The audit middleware (:mod:`vault.api.audit`) starts a :class:`Trail` for
every audited call; handlers name what they touch (:func:`note`), who the
caller turned out to be (:func:`attribute`), spell out several events
(:func:`add`), or commit the record before a change or a stream
(:func:`record_now`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from aiohttp import web

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

    def pending(self, outcome: str) -> list[Event]:
        if self.events:
            return list(self.events)
        return [
            event(
                self.action,
                outcome=outcome,
                children=self.children,
                item=self.item,
                actor=self.actor,
                **self.detail,
            )
        ]


TRAIL = web.RequestKey("audit_trail", Trail)

#: Handlers whose event has a name of its own (the rest: ``module.handler``).
_NAMES = {
    "links.create_link": "link.issue",
    "links.create_links": "link.issue",
    "links.open_link": "link.use",
    "links.create_handover": "handover.issue",
    "links.open_handover": "handover.use",
    "exports.create_export": "export.create",
    "exports.open_export": "export.use",
    "accounts.sign_in": "signin.password",
    "accounts.accept_invitation": "signin.invitation",
    "oidc.callback": "signin.oidc",
    "oidc.login": "signin.oidc_start",
}


def action_name(request: web.Request) -> str:
    route = request.match_info.route
    handler = getattr(route, "handler", None)
    if handler is None or request.match_info.http_exception is not None:
        return "unmatched"
    name = f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__}"
    return _NAMES.get(name, name)


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


def client_ip(request: web.Request) -> str | None:
    """The caller's address, the one place it is read: the socket's peer.

    (Issue 21 makes this trust ``X-Forwarded-For`` from the proxies named
    in ``server.trusted_proxies``; everything asks here, nothing else reads
    ``request.remote``.)
    """
    return request.remote


def caller(request: web.Request) -> Actor:
    return Actor(ip=client_ip(request), agent=request.headers.get("User-Agent"))
