"""Accounts and sign-in (API.md 1.1, "Accounts and sign-in"): invitations,
password sign-in with one-time codes, sessions, one's own account.

Each call reads its body in one small function (``_..._body``) and answers
in one (``_..._answer``); the work is :class:`vault.accounts.signin.Accounts`'
and who may is :func:`vault.policy.decide`'s (through :class:`PolicyHooks`
and :func:`vault.api.access.check`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from vault.accounts import sessions as session_store
from vault.accounts import throttle
from vault.accounts.invitations import invite
from vault.accounts.passwords import MAX_LENGTH
from vault.accounts.signin import Caller, SignedIn
from vault.api.access import PRINCIPAL, check, enforce, now, rules
from vault.api.auth import TOKEN, enrolment, public
from vault.api.body import Field, iso_utc, read_json
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, READER, SETTINGS
from vault.api.services import ACCOUNTS
from vault.api.trail import attribute, client_ip, note, record_now
from vault.audit import Actor
from vault.directory.people import load_principal
from vault.errors import InvalidInput, NotFound
from vault.policy import Action, DirectoryTarget, Principal, Target, decide

_PASSWORD = Field(type="secret", max_length=MAX_LENGTH)
_CODE = Field(type="secret", max_length=16)
_ERRORS = {400: "invalid_input", 401: "unauthenticated", 403: "forbidden or blocked"}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": _schema(properties, required)}},
    }


_STRING = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_SESSION_ANSWER = _schema({"token": _STRING, "expires_at": _TIME}, ["token", "expires_at"])


class PolicyHooks:
    """What the sign-in service asks of the request: principals, the policy,
    and the audit trail's actor once the person is known."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    async def principal(self, person_id: str) -> Principal:
        return await load_principal(self.request.app[READER], person_id)

    def known(self, principal: Principal, token: str | None = None) -> None:
        attribute(
            self.request,
            Actor(
                person=principal.id,
                role=principal.role,
                token=token,
                ip=client_ip(self.request),
                agent=self.request.headers.get("User-Agent"),
            ),
        )

    def check(self, principal: Principal, action: Action, target: Target) -> None:
        request = self.request
        enforce(decide(principal, action, target, now(request), rules(request.app)))


def base_url(request: web.Request) -> str:
    """Where links in mail point: ``links.public_url``, else this request's origin."""
    return request.app[SETTINGS].links.public_url.rstrip("/") or str(request.url.origin())


def app_url(request: web.Request) -> str:
    return f"{base_url(request)}/app/"


def caller_of(request: web.Request) -> Caller:
    return Caller(client_ip(request), request.headers.get("User-Agent"))


def _signed_in_answer(request: web.Request, signed: SignedIn) -> web.Response:
    PolicyHooks(request).known(signed.principal, signed.session.id)
    note(request, session=signed.session.id, new_device=signed.session.new_device)
    return web.json_response(
        {"token": signed.session.token, "expires_at": iso_utc(signed.session.expires_at)},
        status=201,
    )


def _no_content() -> web.Response:
    return web.Response(status=204)


# -- invitations ---------------------------------------------------------------


@operation(
    "Invite a person by e-mail: a one-time link ({public_url}/invite/{token}), valid 7 days, "
    "to choose a password (admin).",
    tags=["accounts"],
    responses={201: "{id, expires_at}", 404: "not_found", 409: "conflict", **_ERRORS},
    response_schema=_schema({"id": _STRING, "expires_at": _TIME}, ["id", "expires_at"]),
)
async def create_invitation(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_DIRECTORY, DirectoryTarget())
    person_id = request.match_info["id"]
    note(request, target=person_id)
    await record_now(request)
    invited = await invite(
        request.app[DB],
        request.app[KEYRING],
        person_id,
        request[PRINCIPAL].id,
        now(request),
        base_url(request),
    )
    return web.json_response(
        {"id": invited.id, "expires_at": iso_utc(invited.expires_at)}, status=201
    )


async def _accept_body(request: web.Request) -> str:
    return str((await read_json(request, {"password": _PASSWORD}))["password"])


@operation(
    "Accept an invitation: choose a password (at least 12 characters, not a common one); "
    "answers a session. A used or expired invitation: link_expired; unknown: link_invalid.",
    tags=["accounts"],
    responses={201: "{token, expires_at}", 409: "conflict", **_ERRORS},
    auth=False,
    request_body=_json_body({"password": _STRING}, ["password"]),
    response_schema=_SESSION_ANSWER,
)
@public
async def accept_invitation(request: web.Request) -> web.Response:
    password = await _accept_body(request)
    signed = await request.app[ACCOUNTS].accept(
        request.match_info["token"],
        password,
        caller_of(request),
        now(request),
        app_url(request),
        PolicyHooks(request),
    )
    return _signed_in_answer(request, signed)


async def invite_page(request: web.Request) -> web.Response:
    """The link in the mail opens the app, which accepts (the token stays in the fragment)."""
    token = request.match_info["token"]
    return web.Response(status=302, headers={"Location": f"/app/#invite={token}"})


# -- sessions ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _SignInBody:
    email: str
    password: str = dataclasses.field(repr=False)
    totp: str | None = dataclasses.field(repr=False)


async def _sign_in_body(request: web.Request) -> _SignInBody:
    body = await read_json(
        request,
        {
            "email": Field(max_length=320),
            "password": _PASSWORD,
            "totp": Field(type="secret", max_length=16, required=False, nullable=True),
        },
    )
    if "@" not in body["email"] or " " in body["email"]:
        raise InvalidInput("The field 'email' must be an e-mail address.")
    return _SignInBody(body["email"], body["password"], body.get("totp"))


@operation(
    "Sign in with e-mail address and password (and the one-time code when switched on): a "
    "session. Wrong: unauthenticated (no hint which part); code missing or wrong: "
    "totp_required; too many failures: rate_limited.",
    tags=["accounts"],
    responses={201: "{token, expires_at}", 429: "rate_limited", **_ERRORS},
    auth=False,
    request_body=_json_body(
        {"email": _STRING, "password": _STRING, "totp": {"type": ["string", "null"]}},
        ["email", "password"],
    ),
    response_schema=_SESSION_ANSWER,
)
@public
async def sign_in(request: web.Request) -> web.Response:
    body = await _sign_in_body(request)
    note(request, account=throttle.account_key(body.email))
    signed = await request.app[ACCOUNTS].sign_in(
        body.email,
        body.password,
        body.totp,
        caller_of(request),
        now(request),
        app_url(request),
        PolicyHooks(request),
    )
    return _signed_in_answer(request, signed)


@operation(
    "Sign out: the token this call comes with stops at once.",
    tags=["accounts"],
    responses={204: "Signed out.", 401: "unauthenticated"},
)
@enrolment
async def sign_out(request: web.Request) -> web.Response:
    await record_now(request)
    await session_store.revoke_token(request.app[DB], request[TOKEN].id, now(request))
    return _no_content()


def _sessions_answer(request: web.Request, found: list[session_store.Session]) -> web.Response:
    current = request[TOKEN].id
    return web.json_response(
        {
            "sessions": [
                {
                    "id": s.id,
                    "created_at": iso_utc(s.created_at),
                    "last_used_at": iso_utc(s.last_used_at) if s.last_used_at else None,
                    "expires_at": iso_utc(s.expires_at) if s.expires_at else None,
                    "ip": s.ip,
                    "user_agent": s.user_agent,
                    "current": s.id == current,
                }
                for s in found
            ]
        }
    )


@operation(
    "The caller's own sessions that still work, newest first.",
    tags=["accounts"],
    responses={200: "{sessions: [{id, created_at, last_used_at, ip, user_agent, current}]}"}
    | _ERRORS,
)
async def my_sessions(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    found = await session_store.live_sessions(request.app[DB], request[PRINCIPAL].id, now(request))
    return _sessions_answer(request, found)


@operation(
    "End one of the caller's own sessions.",
    tags=["accounts"],
    responses={204: "Ended.", 404: "not_found", **_ERRORS},
)
async def end_my_session(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    session_id = request.match_info["id"]
    note(request, session=session_id)
    await record_now(request)
    ended = await session_store.end_session(
        request.app[DB], request[PRINCIPAL].id, session_id, now(request)
    )
    if not ended:
        raise NotFound("You have no live session with this id.")
    return _no_content()


# -- one's own password and one-time codes ----------------------------------------


async def _password_body(request: web.Request) -> tuple[str, str]:
    body = await read_json(request, {"current": _PASSWORD, "new": _PASSWORD})
    return body["current"], body["new"]


@operation(
    "Change one's password; every other session of the caller ends.",
    tags=["accounts"],
    responses={204: "Changed.", 409: "conflict", 429: "rate_limited", **_ERRORS},
    request_body=_json_body({"current": _STRING, "new": _STRING}, ["current", "new"]),
)
async def change_password(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    current, new = await _password_body(request)
    await record_now(request)
    await request.app[ACCOUNTS].change_password(
        request[PRINCIPAL].id, current, new, request[TOKEN].id, caller_of(request), now(request)
    )
    return _no_content()


@operation(
    "Start setting up one-time codes (TOTP): the secret to put in an authenticator app, "
    "switched on by POST /v1/me/totp/confirm.",
    tags=["accounts"],
    responses={201: "{secret, otpauth_uri}", 409: "conflict", **_ERRORS},
    response_schema=_schema({"secret": _STRING, "otpauth_uri": _STRING}, ["secret", "otpauth_uri"]),
)
@enrolment
async def start_totp(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    await record_now(request)
    setup = await request.app[ACCOUNTS].start_totp(request[PRINCIPAL].id)
    return web.json_response({"secret": setup.secret, "otpauth_uri": setup.uri}, status=201)


async def _code_body(request: web.Request) -> str:
    return str((await read_json(request, {"code": _CODE}))["code"])


@operation(
    "Switch one-time codes on with a code from the app (this session counts as two-step).",
    tags=["accounts"],
    responses={204: "Switched on.", 409: "conflict", 429: "rate_limited", **_ERRORS},
    request_body=_json_body({"code": _STRING}, ["code"]),
)
@enrolment
async def confirm_totp(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    code = await _code_body(request)
    await record_now(request)
    await request.app[ACCOUNTS].confirm_totp(
        request[PRINCIPAL].id, code, request[TOKEN].id, caller_of(request), now(request)
    )
    return _no_content()


@operation(
    "Switch one-time codes off, with a current code (not for roles that require them).",
    tags=["accounts"],
    responses={204: "Switched off.", 409: "conflict", 429: "rate_limited", **_ERRORS},
    request_body=_json_body({"code": _STRING}, ["code"]),
)
async def disable_totp(request: web.Request) -> web.Response:
    check(request, Action.DISABLE_TOTP, DirectoryTarget())
    code = await _code_body(request)
    await record_now(request)
    await request.app[ACCOUNTS].disable_totp(
        request[PRINCIPAL].id, code, caller_of(request), now(request)
    )
    return _no_content()


def setup(app: web.Application) -> None:
    add = app.router
    add.add_post("/v1/people/{id}/invitations", create_invitation)
    add.add_post("/v1/invitations/{token}/accept", accept_invitation)
    add.add_get("/invite/{token}", invite_page)
    add.add_post("/v1/sessions", sign_in)
    add.add_delete("/v1/sessions/current", sign_out)
    add.add_get("/v1/me/sessions", my_sessions)
    add.add_delete("/v1/me/sessions/{id}", end_my_session)
    add.add_post("/v1/me/password", change_password)
    add.add_post("/v1/me/totp", start_totp)
    add.add_post("/v1/me/totp/confirm", confirm_totp)
    add.add_delete("/v1/me/totp", disable_totp)
