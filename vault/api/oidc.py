"""Staff single sign-on (API.md 1.1): ``GET /auth/oidc/login`` sends the
browser to the identity provider, ``GET /auth/oidc/callback`` brings it back
with a session in the app's URL fragment (``{public_url}/app/#token=…``),
which no server and no log sees.

The browser carries a cookie (``HttpOnly``, ``SameSite=Lax``, ten minutes,
``Secure`` on https) whose value's hash the flow keeps: a callback in
another browser (a link someone was sent) is refused. A refusal answers
the API's error body with its status, as every call does. Both calls are
on the audit record (``/auth/`` is audited, vault/api/routes.py).
"""

from __future__ import annotations

import re

from aiohttp import web

from vault.accounts.oidc import FLOW_TTL
from vault.api.access import now
from vault.api.accounts import PolicyHooks, app_url, caller_of, signed_in
from vault.api.body import read_query
from vault.api.models.accounts import OidcCallback
from vault.api.openapi import operation
from vault.api.proxies import public_origin
from vault.api.routes import route
from vault.api.services import ACCOUNTS, OIDC
from vault.errors import InvalidInput, NotFound, Unauthenticated

COOKIE = "kluis_oidc"
_PATH = "/auth/oidc/"
#: An OAuth error code (RFC 6749 §4.1.2.1: printable ASCII, no quotes or
#: backslash); anything else the provider sent is not repeated to the browser.
_ERROR_CODE = re.compile(r"^[a-z0-9_.-]{1,64}$")
_UNAVAILABLE = {503: ("storage_unavailable",)}


def _client(request: web.Request) -> None:
    if OIDC not in request.app:
        raise NotFound("Single sign-on is not set up here (oidc.issuer); sign in with a password.")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


@operation(
    "Start staff single sign-on: a redirect to the identity provider. Not set up here "
    "(no oidc.issuer): not_found.",
    tags=["accounts"],
    answer=(302, None),
    refusals={**_UNAVAILABLE, 404: ("not_found",)},
    auth=False,
)
async def login(request: web.Request) -> web.Response:
    _client(request)
    started = await request.app[OIDC].begin(now(request))
    response = _redirect(started.url)
    response.set_cookie(
        COOKIE,
        started.browser,
        max_age=int(FLOW_TTL.total_seconds()),
        path=_PATH,
        httponly=True,
        samesite="Lax",
        secure=public_origin(request).startswith("https://"),
    )
    return response


def _callback_query(request: web.Request) -> tuple[str, str]:
    query = read_query(request, OidcCallback)
    if query.error is not None:
        # The provider's own refusal (the person cancelled, or may not use this app).
        told = f" ({query.error})" if _ERROR_CODE.match(query.error) else ""
        raise Unauthenticated(f"The identity provider did not sign you in{told}; try again.")
    if not query.code or not query.state:
        raise InvalidInput("The callback needs 'code' and 'state'; start again from the app.")
    return query.code, query.state


@operation(
    "End staff single sign-on: the provider's code is traded and its ID token checked; a "
    "redirect to {public_url}/app/#token=… (an existing staff person, bound by e-mail). "
    "A state this vault did not start, or from another browser: link_invalid; over ten "
    "minutes: link_expired; nobody with the address: unauthenticated; several: conflict.",
    tags=["accounts"],
    query=OidcCallback,
    answer=(302, None),
    refusals={
        **_UNAVAILABLE,
        401: ("unauthenticated",),
        403: ("link_invalid", "link_expired", "forbidden", "blocked"),
        404: ("not_found",),
        409: ("conflict",),
    },
    auth=False,
)
async def callback(request: web.Request) -> web.Response:
    _client(request)
    code, state = _callback_query(request)
    moment = now(request)
    identity = await request.app[OIDC].finish(code, state, request.cookies.get(COOKIE), moment)
    signed = await request.app[ACCOUNTS].sign_in_sso(
        identity, caller_of(request), moment, app_url(request), PolicyHooks(request)
    )
    signed_in(request, signed)
    response = _redirect(f"{app_url(request)}#token={signed.session.token}")
    response.del_cookie(COOKIE, path=_PATH)
    return response


def setup(app: web.Application) -> None:
    route(app, "GET", "/auth/oidc/login", login, audit="signin.oidc_start")
    route(app, "GET", "/auth/oidc/callback", callback, audit="signin.oidc")
