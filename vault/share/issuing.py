"""Issuing and verifying every kind of signed link, with the shared secrets.

One :class:`Issuer` per process: it signs with the newest of the secrets
every instance shares (:mod:`vault.keys.signing`), as the database has them
when the link is issued (not the process's copy, which may be up to
``links.signing_refresh_seconds`` old), and verifies with all the
kept ones, reading them again once when a link does not verify (another
instance may have rotated them a moment ago). :meth:`Issuer.issue` is the
one way a link is made, for media, handovers and exports alike; what a link
then gives is decided again at use (:mod:`vault.share.at_use`).
"""

from __future__ import annotations

import functools
from datetime import datetime

from vault.keys.signing import SigningSecrets
from vault.share.links import PATHS, Claims, LinkInvalid, LinkSigner


@functools.lru_cache(maxsize=4)
def _signer_for(secrets: tuple[bytes, ...]) -> LinkSigner:
    return LinkSigner(secrets)


class Issuer:
    def __init__(self, secrets: SigningSecrets) -> None:
        self._secrets = secrets

    async def issue(
        self,
        purpose: str,
        subject: str,
        principal: str,
        ttl: int,
        now: datetime,
        *,
        variant: str = "original",
        disposition: str = "inline",
        reference: str | None = None,
    ) -> tuple[str, Claims]:
        """A signed token for ``purpose`` and its claims; it expires ``ttl`` s from ``now``."""
        moment = int(now.timestamp())
        claims = Claims(
            purpose=purpose,
            subject=subject,
            principal=principal,
            issued_at=moment,
            expires_at=moment + ttl,
            variant=variant,
            disposition=disposition,
            reference=reference,
        )
        return _signer_for(await self._secrets.for_signing()).sign(claims), claims

    async def verify(self, token: str, purpose: str, now: datetime) -> Claims:
        """The claims of a token of ``purpose``, or ``LinkInvalid`` / ``LinkExpired``."""
        try:
            return _signer_for(await self._secrets.current()).verify(token, purpose, now)
        except LinkInvalid:
            fresher = await self._secrets.after_miss()
            if fresher is None:
                raise
            return _signer_for(fresher).verify(token, purpose, now)


def path_of(purpose: str, token: str) -> str:
    """The path a link of ``purpose`` is fetched at."""
    return f"{PATHS[purpose]}{token}"
