"""Accounts and sign-in (API.md 1.1, "Accounts and sign-in"): invitations,
sessions, one's own password and one-time codes, single sign-on's callback.

Passwords and codes are :data:`~vault.api.models.types.Password` and
:data:`~vault.api.models.types.OneTimeCode`: taken as sent, masked in a
body's ``repr``, never echoed.
"""

from __future__ import annotations

from datetime import datetime

from vault.api.models.types import Answer, Email, Id, OneTimeCode, Password, Query, SecretBody


class InvitationCreated(Answer):
    """The invitation's id; the link went to the person's address."""

    id: Id
    expires_at: datetime


class InvitationAcceptance(SecretBody):
    """The password the invited person chooses (at least 12 characters, not a
    common one)."""

    password: Password


class Credentials(SecretBody):
    """A password sign-in; ``totp`` when the person has one-time codes on."""

    email: Email
    password: Password
    totp: OneTimeCode | None = None


class SessionIssued(Answer):
    """A session's bearer token (shown only here) and when it ends."""

    token: str
    expires_at: datetime


class SessionView(Answer):
    id: Id
    created_at: datetime
    last_used_at: datetime | None
    #: When the session ends by itself (beside API.md).
    expires_at: datetime | None
    ip: str | None
    user_agent: str | None
    #: The session this call came with.
    current: bool


class SessionList(Answer):
    """The caller's sessions that still work, newest first."""

    sessions: list[SessionView]


class PasswordChange(SecretBody):
    current: Password
    new: Password


class TotpSetup(Answer):
    """The secret to put in an authenticator app (shown only here)."""

    secret: str
    otpauth_uri: str


class TotpCode(SecretBody):
    code: OneTimeCode


class OidcCallback(Query):
    """What the identity provider sends the browser back with: ``code`` and
    ``state``, or ``error`` when it did not sign the person in."""

    code: str | None = None
    state: str | None = None
    error: str | None = None
