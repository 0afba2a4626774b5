"""Staff single sign-on (API.md 1.1): ``GET /auth/oidc/login`` sends the
browser to the identity provider, ``GET /auth/oidc/callback`` brings it back
with a session in the app's URL fragment (``{public_url}/app/#token=…``),
which no server and no log sees.

The browser carries a cookie (``HttpOnly``, ``SameSite=Lax``, ten minutes,
``Secure`` on https) whose value's hash the flow keeps: a callback in
another browser (a link someone was sent) is refused. A refusal answers
the API's error body with its status, as every call does.
"""

from __future__ import annotations

from aiohttp import web

from vault.accounts.oidc import FLOW_TTL
from vault.api.access import now
from vault.api.accounts import PolicyHooks, app_url, caller_of
from vault.api.openapi import operation
from vault.api.resources import SETTINGS
from vault.api.services import ACCOUNTS, OIDC
from vault.api.trail import note
from vault.errors import InvalidInput, NotFound, Unauthenticated

COOKIE = "kluis_oidc"
_PATH = "/auth/oidc/"


def _client(request: web.Request) -> None:
    if OIDC not in request.app:
        raise NotFound("Single sign-on is not set up here (oidc.issuer); sign in with a password.")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


@operation(
    "Start staff single sign-on: a redirect to the identity provider.",
    tags=["accounts"],
    responses={302: "To the identity provider.", 404: "not_found", 503: "storage_unavailable"},
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
        secure=request.app[SETTINGS].links.public_url.startswith("https://"),
    )
    return response


def _callback_query(request: web.Request) -> tuple[str, str]:
    query = request.query
    if "error" in query:
        # The provider's own refusal (the person cancelled, or may not use this app).
        raise Unauthenticated(
            f"The identity provider did not sign you in ({query['error'][:64]}); try again."
        )
    code, state = query.get("code"), query.get("state")
    if not code or not state:
        raise InvalidInput("The callback needs 'code' and 'state'; start again from the app.")
    return code, state


@operation(
    "End staff single sign-on: the provider's code is traded and its ID token checked; a "
    "redirect to {public_url}/app/#token=… (an existing staff person, bound by e-mail).",
    tags=["accounts"],
    responses={
        302: "To the app, with the session in the fragment.",
        400: "invalid_input",
        401: "unauthenticated",
        403: "link_invalid, link_expired, forbidden or blocked",
        404: "not_found",
        409: "conflict",
    },
    auth=False,
)
async def callback(request: web.Request) -> web.Response:
    _client(request)
    code, state = _callback_query(request)
    moment = now(request)
    identity = await request.app[OIDC].finish(code, state, request.cookies.get(COOKIE), moment)
    hooks = PolicyHooks(request)
    signed = await request.app[ACCOUNTS].sign_in_sso(
        identity, caller_of(request), moment, app_url(request), hooks
    )
    hooks.known(signed.principal, signed.session.id)
    note(request, session=signed.session.id, new_device=signed.session.new_device)
    response = _redirect(f"{app_url(request)}#token={signed.session.token}")
    response.del_cookie(COOKIE, path=_PATH)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/auth/oidc/login", login)
    app.router.add_get("/auth/oidc/callback", callback)
