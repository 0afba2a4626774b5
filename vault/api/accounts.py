"""Accounts and sign-in (API.md 1.1, "Accounts and sign-in"): invitations,
password sign-in with one-time codes, sessions, one's own account.

Each call reads its body into its model (:mod:`vault.api.models.accounts`),
asks the policy, and answers from its model; the work is
:class:`vault.accounts.signin.Accounts`' and who may is
:func:`vault.policy.decide`'s (through :class:`PolicyHooks` and
:func:`vault.api.access.check`). The caller's address and user agent come
from :func:`vault.api.trail.caller`, the one place the service reads them
(behind a trusted proxy, the address it forwarded).
"""

from __future__ import annotations

from aiohttp import web

from vault.accounts import sessions as session_store
from vault.accounts import throttle
from vault.accounts.invitations import invite
from vault.accounts.signin import Caller, SignedIn
from vault.api.access import PRINCIPAL, check, now, rules
from vault.api.auth import TOKEN, enrolment, public
from vault.api.body import answer, read_body
from vault.api.models.accounts import (
    Credentials,
    InvitationAcceptance,
    InvitationCreated,
    PasswordChange,
    SessionIssued,
    SessionList,
    SessionView,
    TotpCode,
    TotpSetup,
)
from vault.api.openapi import operation
from vault.api.proxies import public_origin
from vault.api.resources import DB, KEYRING, READER
from vault.api.routes import route
from vault.api.services import ACCOUNTS
from vault.api.trail import attribute, caller, note, record_now
from vault.audit import Actor
from vault.directory.people import load_principal
from vault.errors import NotFound
from vault.policy import Action, DirectoryTarget, Principal, Target, decide, enforce

#: What the public sign-in calls can answer besides their own refusals (they
#: take no token, so the common refusals of an authenticated call do not apply).
_PUBLIC = {429: ("rate_limited",), 503: ("storage_unavailable",)}
_OWN = {403: ("forbidden",)}


class PolicyHooks:
    """What the sign-in service asks of the request: principals, the policy,
    and the audit trail's actor once the person is known."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    async def principal(self, person_id: str) -> Principal:
        return await load_principal(self.request.app[READER], person_id)

    def known(self, principal: Principal, token: str | None = None) -> None:
        connection = caller(self.request)
        attribute(
            self.request,
            Actor(
                person=principal.id,
                role=principal.role,
                token=token,
                ip=connection.ip,
                agent=connection.agent,
            ),
        )

    def check(self, principal: Principal, action: Action, target: Target) -> None:
        request = self.request
        enforce(decide(principal, action, target, now(request), rules(request.app)))


def app_url(request: web.Request) -> str:
    """The web app, where mail and single sign-on send people."""
    return f"{public_origin(request)}/app/"


def caller_of(request: web.Request) -> Caller:
    connection = caller(request)
    return Caller(connection.ip, connection.agent)


def signed_in(request: web.Request, signed: SignedIn) -> None:
    """The session is the caller's now: the record says who, and which session."""
    PolicyHooks(request).known(signed.principal, signed.session.id)
    note(request, session=signed.session.id, new_device=signed.session.new_device)


def _session_answer(request: web.Request, signed: SignedIn) -> web.Response:
    signed_in(request, signed)
    issued = SessionIssued(token=signed.session.token, expires_at=signed.session.expires_at)
    return answer(issued, status=201)


def _no_content() -> web.Response:
    return web.Response(status=204)


# -- invitations ---------------------------------------------------------------


@operation(
    "Invite a person by e-mail: a one-time link ({public_url}/invite/{token}), valid 7 days, "
    "to choose a password (admin). A person without an address: invalid_input; another "
    "account signs in with the address: conflict.",
    tags=["accounts"],
    answer=(201, InvitationCreated),
    refusals={
        400: ("invalid_input",),
        403: ("forbidden",),
        404: ("not_found",),
        409: ("conflict",),
    },
)
async def create_invitation(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_DIRECTORY, DirectoryTarget())
    person_id = request.match_info["id"]
    note(request, target=person_id)
    await record_now(request)
    invited = await invite(
        request.app[DB],
        request.app[ACCOUNTS].sealer,
        person_id,
        request[PRINCIPAL].id,
        now(request),
        public_origin(request),
    )
    return answer(InvitationCreated(id=invited.id, expires_at=invited.expires_at), status=201)


@operation(
    "Accept an invitation: choose a password (at least 12 characters, not a common one); "
    "answers a session. A used or expired invitation: link_expired; unknown: link_invalid.",
    tags=["accounts"],
    body=InvitationAcceptance,
    answer=(201, SessionIssued),
    refusals={**_PUBLIC, 403: ("link_invalid", "link_expired", "blocked"), 409: ("conflict",)},
    auth=False,
)
@public
async def accept_invitation(request: web.Request) -> web.Response:
    body = await read_body(request, InvitationAcceptance)
    signed = await request.app[ACCOUNTS].accept(
        request.match_info["token"],
        body.password,
        caller_of(request),
        now(request),
        app_url(request),
        PolicyHooks(request),
    )
    return _session_answer(request, signed)


async def invite_page(request: web.Request) -> web.Response:
    """The link in the mail opens the app, which accepts (the token stays in the fragment)."""
    token = request.match_info["token"]
    return web.Response(status=302, headers={"Location": f"/app/#invite={token}"})


# -- sessions ----------------------------------------------------------------


@operation(
    "Sign in with e-mail address and password (and the one-time code when switched on): a "
    "session. Wrong: unauthenticated (no hint which part); code missing or wrong: "
    "totp_required; too many failures: rate_limited.",
    tags=["accounts"],
    body=Credentials,
    answer=(201, SessionIssued),
    refusals={**_PUBLIC, 401: ("unauthenticated", "totp_required"), 403: ("blocked",)},
    auth=False,
)
@public
async def sign_in(request: web.Request) -> web.Response:
    body = await read_body(request, Credentials)
    note(request, account=throttle.account_key(request.app[KEYRING], body.email))
    signed = await request.app[ACCOUNTS].sign_in(
        body.email,
        body.password,
        body.totp,
        caller_of(request),
        now(request),
        app_url(request),
        PolicyHooks(request),
    )
    return _session_answer(request, signed)


@operation(
    "Sign out: the token this call comes with stops at once.",
    tags=["accounts"],
    answer=(204, None),
)
@enrolment
async def sign_out(request: web.Request) -> web.Response:
    await record_now(request)
    await session_store.revoke_token(request.app[DB], request[TOKEN].id, now(request))
    return _no_content()


@operation(
    "The caller's own sessions that still work, newest first.",
    tags=["accounts"],
    answer=SessionList,
    refusals={**_OWN, 401: ("totp_required",)},
)
async def my_sessions(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    found = await session_store.live_sessions(request.app[DB], request[PRINCIPAL].id, now(request))
    current = request[TOKEN].id
    views = [
        SessionView(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            ip=s.ip,
            user_agent=s.user_agent,
            current=s.id == current,
        )
        for s in found
    ]
    return answer(SessionList(sessions=views))


@operation(
    "End one of the caller's own sessions.",
    tags=["accounts"],
    answer=(204, None),
    refusals={**_OWN, 401: ("totp_required",), 404: ("not_found",)},
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


@operation(
    "Change one's password; every other session of the caller ends. A wrong 'current': "
    "invalid_input; no password yet (only an admin's token): conflict.",
    tags=["accounts"],
    body=PasswordChange,
    answer=(204, None),
    refusals={**_OWN, 401: ("totp_required",), 409: ("conflict",)},
)
async def change_password(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    body = await read_body(request, PasswordChange)
    await record_now(request)
    await request.app[ACCOUNTS].change_password(
        request[PRINCIPAL].id,
        body.current,
        body.new,
        request[TOKEN].id,
        caller_of(request),
        now(request),
    )
    return _no_content()


@operation(
    "Start setting up one-time codes (TOTP): the secret to put in an authenticator app, "
    "switched on by POST /v1/me/totp/confirm.",
    tags=["accounts"],
    answer=(201, TotpSetup),
    refusals={**_OWN, 409: ("conflict",)},
)
@enrolment
async def start_totp(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    await record_now(request)
    setup = await request.app[ACCOUNTS].start_totp(request[PRINCIPAL].id)
    return answer(TotpSetup(secret=setup.secret, otpauth_uri=setup.uri), status=201)


@operation(
    "Switch one-time codes on with a code from the app (this session counts as two-step). "
    "A wrong code: invalid_input.",
    tags=["accounts"],
    body=TotpCode,
    answer=(204, None),
    refusals={**_OWN, 409: ("conflict",)},
)
@enrolment
async def confirm_totp(request: web.Request) -> web.Response:
    check(request, Action.MANAGE_OWN_ACCOUNT, DirectoryTarget())
    body = await read_body(request, TotpCode)
    await record_now(request)
    await request.app[ACCOUNTS].confirm_totp(
        request[PRINCIPAL].id, body.code, request[TOKEN].id, caller_of(request), now(request)
    )
    return _no_content()


@operation(
    "Switch one-time codes off, with a current code (not for roles that require them). "
    "A wrong code: invalid_input.",
    tags=["accounts"],
    body=TotpCode,
    answer=(204, None),
    refusals={**_OWN, 401: ("totp_required",), 409: ("conflict",)},
)
async def disable_totp(request: web.Request) -> web.Response:
    check(request, Action.DISABLE_TOTP, DirectoryTarget())
    body = await read_body(request, TotpCode)
    await record_now(request)
    await request.app[ACCOUNTS].disable_totp(
        request[PRINCIPAL].id, body.code, caller_of(request), now(request)
    )
    return _no_content()


def setup(app: web.Application) -> None:
    route(
        app,
        "POST",
        "/v1/people/{id}/invitations",
        create_invitation,
        audit="accounts.create_invitation",
    )
    route(
        app,
        "POST",
        "/v1/invitations/{token}/accept",
        accept_invitation,
        audit="signin.invitation",
    )
    route(app, "GET", "/invite/{token}", invite_page, audit=None)
    route(app, "POST", "/v1/sessions", sign_in, audit="signin.password")
    route(app, "DELETE", "/v1/sessions/current", sign_out, audit="accounts.sign_out")
    route(app, "GET", "/v1/me/sessions", my_sessions, audit="accounts.my_sessions")
    route(app, "DELETE", "/v1/me/sessions/{id}", end_my_session, audit="accounts.end_my_session")
    route(app, "POST", "/v1/me/password", change_password, audit="accounts.change_password")
    route(app, "POST", "/v1/me/totp", start_totp, audit="accounts.start_totp")
    route(app, "POST", "/v1/me/totp/confirm", confirm_totp, audit="accounts.confirm_totp")
    route(app, "DELETE", "/v1/me/totp", disable_totp, audit="accounts.disable_totp")
