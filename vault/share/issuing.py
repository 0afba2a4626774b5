"""Issuing and verifying every kind of signed link, with the shared secrets.

One :class:`Issuer` per process: it signs with the newest of the secrets
every instance shares (:mod:`vault.keys.signing`), as the database has them
when the link is issued (not the process's copy, which may be up to
``links.signing_refresh_seconds`` old), and verifies with all the
kept ones, reading them again once when a link does not verify (another
instance may have rotated them a moment ago). :meth:`Issuer.issue` is the
one way a link is made, for media, handovers and exports alike; what a link
then gives is decided again at use (:mod:`vault.share.at_use`).

A link refused after that read is checked once more against the secrets
this process saw retired (:attr:`SigningSecrets.retired`): if one signed
it, the refusal (still 403 ``link_invalid``) says the link's secret was
rotated out. Only on the refusal path, so verifying costs nothing more; an
instance started after the retirement never had the secret and gives the
plain refusal.
"""

from __future__ import annotations

import functools
from datetime import datetime

from vault.keys.signing import SigningSecrets
from vault.share.links import PATHS, RETIRED, Claims, LinkInvalid, LinkSigner


@functools.lru_cache(maxsize=4)
def _signer_for(secrets: tuple[bytes, ...]) -> LinkSigner:
    return LinkSigner(secrets)


@functools.lru_cache(maxsize=2)
def _retired_signer(secrets: tuple[bytes, ...]) -> LinkSigner:
    return LinkSigner(secrets)  # apart from _signer_for: never evicts a signer in use


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
        except LinkInvalid as refused:
            fresher = await self._secrets.after_miss()
            if fresher is None:
                raise self._why(token, purpose, refused) from None
            try:
                return _signer_for(fresher).verify(token, purpose, now)
            except LinkInvalid as again:
                raise self._why(token, purpose, again) from None

    def _why(self, token: str, purpose: str, refused: LinkInvalid) -> LinkInvalid:
        """The refusal, saying so if a secret this process saw retired signed the link."""
        retired = self._secrets.retired
        if retired and _retired_signer(retired).signed(token, purpose):
            return LinkInvalid(RETIRED)
        return refused


def path_of(purpose: str, token: str) -> str:
    """The path a link of ``purpose`` is fetched at."""
    return f"{PATHS[purpose]}{token}"
