"""Signing in and looking after one's own account, from start to end.

:class:`Accounts` does what the sign-in calls of API.md ("Accounts and
sign-in") do, below HTTP: a password sign-in (throttled, the same time for
an unknown address, a one-time code when switched on), accepting an
invitation, changing the password, setting up and switching off one-time
codes, and single sign-on's last step. Who may is the policy's to say:
each call is handed :class:`Hooks`, whose ``check`` asks
:func:`vault.policy.decide` and raises its refusal, and whose ``known``
tells the caller (the audit trail) who the person turned out to be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.accounts import invitations, sessions, store, throttle, totp
from vault.accounts.oidc import Identity
from vault.accounts.passwords import Passwords, check_new_password
from vault.config import Settings
from vault.db.schema import oidc_identities
from vault.directory.people import email_of, end_sessions, people_with_email
from vault.directory.sealing import Sealer, email_hash, normalised_email
from vault.errors import Conflict, InvalidInput, KluisError, TotpRequired, Unauthenticated
from vault.keys.provider import KeyProvider
from vault.mail import notices
from vault.policy import Action, Principal, SignIn, Target


class Hooks(Protocol):
    async def principal(self, person_id: str) -> Principal: ...

    def known(self, principal: Principal) -> None: ...

    def check(self, principal: Principal, action: Action, target: Target) -> None: ...


@dataclasses.dataclass(frozen=True)
class Caller:
    ip: str | None
    agent: str | None


@dataclasses.dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session: sessions.NewSession


@dataclasses.dataclass(frozen=True)
class TotpSetup:
    secret: str = dataclasses.field(repr=False)
    uri: str = dataclasses.field(repr=False)


_WRONG = "The e-mail address or the password is wrong."
_NO_ACCOUNT = "You have no password here yet; ask the administrator for an invitation."


class Accounts:
    def __init__(
        self, engine: AsyncEngine, sealer: Sealer, passwords: Passwords, settings: Settings
    ) -> None:
        """``sealer`` opens people's sealed addresses (vault/directory/sealing.py)."""
        self.engine, self.sealer, self.passwords = engine, sealer, passwords
        self.provider: KeyProvider = sealer.provider
        self.settings = settings

    # -- signing in -----------------------------------------------------------

    async def sign_in(
        self,
        email: str,
        password: str,
        code: str | None,
        caller: Caller,
        now: datetime,
        app_url: str,
        hooks: Hooks,
    ) -> SignedIn:
        auth = self.settings.auth
        ip = caller.ip or "unknown"
        key = throttle.account_key(self.provider, email)
        await throttle.check(self.engine, auth, ip, key, now)
        account = await store.by_email(self.engine, self.provider, email)
        matched = await self.passwords.verify(
            account.password_hash if account is not None else None, password
        )
        if account is None or not matched:
            await throttle.failed(self.engine, ip, caller.agent, key, now)
            raise Unauthenticated(_WRONG)
        principal = await hooks.principal(account.person_id)
        hooks.known(principal)
        second_factor = False
        if account.totp_enabled:
            if not code:
                # Not counted: the normal first half of a two-step sign-in.
                raise TotpRequired()
            if not await self._code_matches(account, account.totp_sealed, code, now):
                await throttle.failed(self.engine, ip, caller.agent, key, now)
                raise TotpRequired("The code is wrong or was used already; send the next one.")
            second_factor = True
        hooks.check(principal, Action.SIGN_IN, SignIn("password"))
        if self.passwords.needs_rehash(account.password_hash):
            fresh = await self.passwords.hash(password)
            await store.rehash(self.engine, account.person_id, account.password_hash, fresh)
        async with self.engine.begin() as conn:
            # The address typed, which is the account's (its hash matched).
            session = await self._open(
                conn,
                principal,
                normalised_email(email),
                "password",
                second_factor,
                caller,
                now,
                app_url,
            )
        return SignedIn(principal, session)

    async def _code_matches(
        self, account: store.Account, sealed: bytes | None, code: str, now: datetime
    ) -> bool:
        assert sealed is not None
        secret = await totp.open_sealed(self.provider, account.person_id, sealed)
        step = totp.matching_step(secret, code, now, account.totp_used_step)
        return step is not None and await store.use_step(self.engine, account.person_id, step)

    async def _open(
        self,
        conn: AsyncConnection,
        principal: Principal,
        email: str | None,
        method: str,
        second_factor: bool,
        caller: Caller,
        now: datetime,
        app_url: str,
    ) -> sessions.NewSession:
        session = await sessions.open_session(
            conn,
            principal.id,
            principal.role,
            now,
            self.settings.auth,
            method=method,
            second_factor=second_factor,
            ip=caller.ip,
            agent=caller.agent,
        )
        if session.new_device and not session.first and email:
            await notices.new_sign_in(
                conn, self.provider, email, caller.ip, caller.agent, app_url, now
            )
        return session

    # -- invitations ----------------------------------------------------------

    async def accept(
        self,
        token: str,
        password: str,
        caller: Caller,
        now: datetime,
        app_url: str,
        hooks: Hooks,
    ) -> SignedIn:
        invitee = await invitations.look_up(self.engine, self.sealer, token, now)
        principal = await hooks.principal(invitee.person_id)
        hooks.known(principal)
        hooks.check(principal, Action.SIGN_IN, SignIn("invitation"))
        text = check_new_password(password, email=invitee.email)
        hashed = await self.passwords.hash(text)
        address = email_hash(self.provider, invitee.email)
        async with self.engine.begin() as conn:
            await invitations.consume(conn, invitee, now)
            if await store.address_taken(conn, address, invitee.person_id):
                raise Conflict("Another account signs in with this e-mail address; ask the admin.")
            await store.set_password(conn, invitee.person_id, address, hashed, now)
            await store.reset_totp(conn, invitee.person_id)
            await end_sessions(conn, invitee.person_id, now)
            session = await self._open(
                conn, principal, invitee.email, "invitation", False, caller, now, app_url
            )
        return SignedIn(principal, session)

    # -- one's own account ----------------------------------------------------

    async def _own(self, person_id: str) -> store.Account:
        account = await store.by_person(self.engine, person_id)
        if account is None:
            raise Conflict(_NO_ACCOUNT)
        return account

    async def change_password(
        self,
        person_id: str,
        current: str,
        new: str,
        token_id: str,
        caller: Caller,
        now: datetime,
    ) -> None:
        account = await self._own(person_id)
        key = account.throttle_key
        ip = caller.ip or "unknown"
        await throttle.check(self.engine, self.settings.auth, ip, key, now)
        if not await self.passwords.verify(account.password_hash, current):
            await throttle.failed(self.engine, ip, caller.agent, key, now)
            raise InvalidInput("The field 'current' is not your current password.")
        address = await email_of(self.engine, self.sealer, person_id)
        text = check_new_password(new, email=address, field="new")
        hashed = await self.passwords.hash(text)
        async with self.engine.begin() as conn:
            await store.set_password(conn, person_id, None, hashed, now)
            await end_sessions(conn, person_id, now, keep=token_id)

    async def start_totp(self, person_id: str) -> TotpSetup:
        account = await self._own(person_id)
        if account.totp_enabled:
            raise Conflict("One-time codes are on already; switch them off first to start anew.")
        secret = totp.new_secret()
        await store.set_pending_totp(
            self.engine, person_id, await totp.seal(self.provider, person_id, secret)
        )
        # The app shows the address beside the code; opened from the directory.
        address = await email_of(self.engine, self.sealer, person_id) or person_id
        return TotpSetup(secret, totp.provisioning_uri(secret, address))

    async def confirm_totp(
        self, person_id: str, code: str, token_id: str, caller: Caller, now: datetime
    ) -> None:
        account = await self._own(person_id)
        if account.totp_pending is None:
            raise Conflict("No one-time code setup is under way; start with POST /v1/me/totp.")
        step = await self._checked_code(account, account.totp_pending, code, caller, now, used=None)
        if not await store.enable_totp(self.engine, person_id, account.totp_pending, step, now):
            raise Conflict("The setup changed meanwhile; start again with POST /v1/me/totp.")
        await sessions.passed_second_factor(self.engine, token_id)

    async def disable_totp(self, person_id: str, code: str, caller: Caller, now: datetime) -> None:
        account = await self._own(person_id)
        if not account.totp_enabled:
            raise Conflict("One-time codes are not switched on.")
        await self._checked_code(
            account, account.totp_sealed, code, caller, now, used=account.totp_used_step
        )
        await store.disable_totp(self.engine, person_id)

    async def _checked_code(
        self,
        account: store.Account,
        sealed: bytes | None,
        code: str,
        caller: Caller,
        now: datetime,
        *,
        used: int | None,
    ) -> int:
        """A code for one's own account: throttled like a sign-in, wrong is 400.
        With ``used`` (codes switched on) its step is marked used; its step."""
        assert sealed is not None
        key = account.throttle_key
        ip = caller.ip or "unknown"
        await throttle.check(self.engine, self.settings.auth, ip, key, now)
        secret = await totp.open_sealed(self.provider, account.person_id, sealed)
        step = totp.matching_step(secret, code, now, used)
        if step is None or (
            used is not None and not await store.use_step(self.engine, account.person_id, step)
        ):
            await throttle.failed(self.engine, ip, caller.agent, key, now)
            raise InvalidInput(
                "The field 'code' does not match; check the phone's clock and send the current "
                "code."
            )
        return step

    # -- single sign-on ---------------------------------------------------------

    async def sign_in_sso(
        self, identity: Identity, caller: Caller, now: datetime, app_url: str, hooks: Hooks
    ) -> SignedIn:
        """Bind the provider's subject to a staff person (by verified e-mail, at
        the first sign-in) and open a session; never creates a person."""
        async with self.engine.connect() as conn:
            bound = await conn.scalar(
                select(oidc_identities.c.person_id).where(
                    oidc_identities.c.issuer == identity.issuer,
                    oidc_identities.c.subject == identity.subject,
                )
            )
            # Found by the keyed hash of the verified address (people's
            # addresses are sealed, vault/directory/sealing.py).
            candidates = (
                []
                if bound is not None
                else await people_with_email(conn, self.provider, identity.email)
            )
        person_id = bound if bound is not None else await self._choose(candidates, hooks)
        principal = await hooks.principal(str(person_id))
        hooks.known(principal)
        hooks.check(principal, Action.SIGN_IN, SignIn("oidc"))
        # Opened before the transaction: opening reads the person's key.
        email = await email_of(self.engine, self.sealer, principal.id)
        async with self.engine.begin() as conn:
            if bound is None:
                await conn.execute(
                    oidc_identities.insert().values(
                        issuer=identity.issuer,
                        subject=identity.subject,
                        person_id=principal.id,
                        created_at=now,
                        last_seen_at=now,
                    )
                )
            else:
                await conn.execute(
                    update(oidc_identities)
                    .where(
                        oidc_identities.c.issuer == identity.issuer,
                        oidc_identities.c.subject == identity.subject,
                    )
                    .values(last_seen_at=now)
                )
            session = await self._open(conn, principal, email, "oidc", True, caller, now, app_url)
        return SignedIn(principal, session)

    async def _choose(self, candidates: Sequence[str], hooks: Hooks) -> str:
        """The one person with this address whom the policy lets sign in this way."""
        if not candidates:
            raise Unauthenticated(
                "No one here has the e-mail address your identity provider gave; ask the "
                "administrator to add you (signing in creates no account)."
            )
        allowed: list[str] = []
        first_refusal: KluisError | None = None
        for person_id in candidates:
            principal = await hooks.principal(person_id)
            try:
                hooks.check(principal, Action.SIGN_IN, SignIn("oidc"))
            except KluisError as refusal:
                first_refusal = first_refusal or refusal
                continue
            allowed.append(person_id)
        if len(allowed) == 1:
            return allowed[0]
        if allowed:
            raise Conflict(
                "Several staff members have this e-mail address; ask the administrator to keep one."
            )
        assert first_refusal is not None
        raise first_refusal
