"""The account and mail services an application holds, as typed keys.

Opened after the key provider (``vault.api.resources``), closed before it:
the password hasher's threads, the sign-in service, the single sign-on
client (when ``oidc.issuer`` is set) and the mail sender, a task that
delivers the outbox while the service runs (when ``mail.smtp_host`` is set;
without it mail waits in the outbox, and the start-up log says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from vault.accounts.oidc import OidcClient
from vault.accounts.passwords import Passwords
from vault.accounts.signin import Accounts
from vault.api.metrics import METRICS
from vault.api.resources import CLOCK, DB, KEYRING, KEYS, SETTINGS
from vault.directory.sealing import Sealer
from vault.keys.provider import MAIL_KEY, TOTP_KEY, KeyringError
from vault.mail.sender import MailSender

log = logging.getLogger(__name__)

PASSWORDS = web.AppKey("passwords", Passwords)
ACCOUNTS = web.AppKey("accounts", Accounts)
OIDC = web.AppKey("oidc", OidcClient)
SENDER = web.AppKey("mail_sender", MailSender)


async def accounts(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    names = {info.name for info in await app[KEYRING].list_keys() if not info.destroyed}
    missing = sorted({TOTP_KEY, MAIL_KEY} - names)
    if missing:
        raise KeyringError(
            f"The key store has no master key {', '.join(missing)}; run 'kluis init' once."
        )
    passwords = app[PASSWORDS] = Passwords()
    app[ACCOUNTS] = Accounts(app[DB], Sealer(app[DB], app[KEYS], app[KEYRING]), passwords, settings)
    if settings.oidc.issuer:
        app[OIDC] = OidcClient(settings, app[DB])
    try:
        yield
    finally:
        passwords.close()


async def mail(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    sender = app[SENDER] = MailSender(
        app[DB],
        app[KEYRING],
        settings.mail,
        lambda: app[CLOCK](),
        observe=metrics.mail_delivered,
    )
    if not settings.mail.smtp_host:
        log.warning("mail.smtp_host is not set: mail is kept in the outbox and not sent")
        yield
        return
    task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
