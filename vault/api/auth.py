"""Authentication of ``/v1/`` calls by bearer token (an admin's or a session's).

A valid token always works (a location's shared address is never locked out
by one misbehaving tablet). A missing, wrong, revoked or expired token is
recorded with time, address and user agent, never the token; the address is
the client's as :func:`vault.api.trail.caller` gives it (behind a trusted
proxy, the one it forwarded), so clients behind a proxy are not pooled. Once
an address has made ``auth.max_failures`` failed attempts within
``auth.failure_window_seconds``, its failures answer 429 ``rate_limited``
with ``Retry-After`` instead of 401. Then the policy decides on the
credential: a blocked account gets ``blocked``, a password session of a role
that needs one-time codes and has none yet gets ``totp_required`` on every
call but those that set them up (:func:`enrolment`).

The sign-in calls themselves take no token (:func:`public`). Each call is a
login: its audit event carries the person, role, token id, address and user
agent; a failed one is recorded as ``login`` with its code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from vault.api.access import PRINCIPAL, now, rules
from vault.api.resources import DB, READER, SETTINGS
from vault.api.trail import TRAIL, attribute, caller
from vault.audit import Actor
from vault.directory.people import (
    TokenInfo,
    authenticate,
    failures_since,
    load_principal,
    record_failure,
)
from vault.errors import RateLimited, Unauthenticated
from vault.policy import Action, Credential, decide, enforce
from vault.tokens import parse_token

#: The token the call came with.
TOKEN = web.RequestKey("token", TokenInfo)

_H = TypeVar("_H", bound=Callable[..., Any])
_PUBLIC = "__kluis_public__"
_ENROLMENT = "__kluis_enrolment__"


def public(handler: _H) -> _H:
    """A ``/v1/`` call that takes no token (signing in)."""
    setattr(handler, _PUBLIC, True)
    return handler


def enrolment(handler: _H) -> _H:
    """A call a session may make before its required one-time codes are set up."""
    setattr(handler, _ENROLMENT, True)
    return handler


def _marked(request: web.Request, mark: str) -> bool:
    handler = getattr(request.match_info.route, "handler", None)
    return bool(getattr(handler, mark, False))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/") or _marked(request, _PUBLIC):
        response: web.StreamResponse = await handler(request)
        return response
    engine = request.app[DB]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    parsed = parse_token(token.strip()) if scheme.lower() == "bearer" else None
    token_id = parsed[0] if parsed else None
    info = await authenticate(engine, *parsed, now(request)) if parsed else None
    if info is None:
        await _failed(request, token_id)
    assert info is not None
    principal = await load_principal(request.app[READER], info.person_id)
    connection = caller(request)
    attribute(
        request,
        Actor(
            person=principal.id,
            role=principal.role,
            token=info.id,
            ip=connection.ip,
            agent=connection.agent,
        ),
    )
    credential = Credential(
        kind=info.kind,
        method=info.method,
        second_factor=info.second_factor,
        enrolment_call=_marked(request, _ENROLMENT),
    )
    enforce(decide(principal, Action.USE_API, credential, now(request), rules(request.app)))
    request[PRINCIPAL] = principal
    request[TOKEN] = info
    response = await handler(request)
    return response


async def _failed(request: web.Request, token_id: str | None) -> None:
    # A failed login is an event of its own; a well-formed token's id (never
    # its secret) tells the breach question which token was tried.
    trail = request.get(TRAIL)
    if trail is not None:
        trail.action = "login"
        trail.detail["token"] = token_id
    settings = request.app[SETTINGS].auth
    moment = now(request)
    connection = caller(request)
    ip = connection.ip or "unknown"
    await record_failure(request.app[DB], ip, connection.agent, moment)
    window = timedelta(seconds=settings.failure_window_seconds)
    count, oldest = await failures_since(request.app[DB], ip, moment - window)
    if count > settings.max_failures and oldest is not None:
        retry_after = int(((oldest + window) - moment).total_seconds()) + 1
        raise RateLimited(
            retry_after, f"Too many failed logins from this address; retry in {retry_after} s."
        )
    if not request.headers.get("Authorization"):
        raise Unauthenticated()
    raise Unauthenticated("The token is unknown, revoked or expired; sign in again.")
