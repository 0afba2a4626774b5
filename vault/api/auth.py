"""Authentication of ``/v1/`` calls by bearer token.

A valid token always works (a location's shared address is never locked out
by one misbehaving tablet). A missing or wrong token is recorded with time,
address and user agent, never the token; the address is the client's as
:func:`vault.api.trail.caller` gives it (behind a trusted proxy, the one it
forwarded), so clients behind a proxy are not pooled. Once an address has made
``auth.max_failures`` failed attempts within ``auth.failure_window_seconds``,
its failures answer 429 ``rate_limited`` with ``Retry-After`` instead of 401.
A blocked account gets ``blocked`` on every call (the policy says so).
Each call is a login: its audit event carries the person, role, token id,
address and user agent; a failed one is recorded as ``login`` with its code.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

from vault.api.access import PRINCIPAL, now, rules
from vault.api.resources import DB, READER, SETTINGS
from vault.api.trail import TRAIL, attribute, caller
from vault.audit import Actor
from vault.directory.people import authenticate, failures_since, load_principal, record_failure
from vault.errors import Blocked, RateLimited, Unauthenticated
from vault.policy import Action, DirectoryTarget, decide
from vault.tokens import parse_token


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        response: web.StreamResponse = await handler(request)
        return response
    engine = request.app[DB]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    parsed = parse_token(token.strip()) if scheme.lower() == "bearer" else None
    token_id = parsed[0] if parsed else None
    person_id = await authenticate(engine, *parsed) if parsed else None
    if person_id is None:
        await _failed(request, token_id)
    principal = await load_principal(request.app[READER], str(person_id))
    connection = caller(request)
    attribute(
        request,
        Actor(
            person=principal.id,
            role=principal.role,
            token=token_id,
            ip=connection.ip,
            agent=connection.agent,
        ),
    )
    decision = decide(
        principal, Action.USE_API, DirectoryTarget(), now(request), rules(request.app)
    )
    if not decision.allowed:
        raise Blocked(decision.reason)
    request[PRINCIPAL] = principal
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
    raise Unauthenticated("The token is unknown or revoked; ask for a new one.")
