"""Failed sign-ins, throttled per address and per account.

The same limiter as for bad tokens (``auth_failures``, ``auth.max_failures``
within ``auth.failure_window_seconds``), counted twice for a password
sign-in: from the caller's address, and on the address tried (whoever tries
it, from wherever). Once either has reached the limit, the next attempt is
refused with 429 ``rate_limited`` before the password is even checked, so a
right guess looks like a wrong one. Addresses nobody has are counted like
any other, so the limiter does not tell who has an account. The address
tried is kept only as the directory's keyed hash (HMAC under the key
provider's ``email`` MAC key, vault/directory/sealing.py), never in clear
and not as a plain digest one could test guessed addresses against.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import AuthSettings
from vault.directory.people import account_failures_since, failures_since, record_failure
from vault.directory.sealing import email_hash
from vault.errors import RateLimited
from vault.keys.provider import KeyProvider


def account_key(provider: KeyProvider, address: str) -> str:
    """What failed sign-ins with this address are counted under (hex, 64 characters)."""
    return email_hash(provider, address).hex()


async def check(
    engine: AsyncEngine, settings: AuthSettings, ip: str, account: str, now: datetime
) -> None:
    """Raise ``RateLimited`` if the address or the account has used up its attempts."""
    window = timedelta(seconds=settings.failure_window_seconds)
    since = now - window
    for count, oldest in (
        await failures_since(engine, ip, since),
        await account_failures_since(engine, account, since),
    ):
        if count >= settings.max_failures and oldest is not None:
            retry_after = int(((oldest + window) - now).total_seconds()) + 1
            raise RateLimited(
                retry_after, f"Too many failed sign-ins; wait {retry_after} s and try again."
            )


async def failed(
    engine: AsyncEngine, ip: str, agent: str | None, account: str, now: datetime
) -> None:
    await record_failure(engine, ip, agent, now, account=account)
