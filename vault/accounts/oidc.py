"""Staff single sign-on with OpenID Connect: authorisation code with PKCE.

``begin`` keeps a flow in the database (any instance may get the
callback): the SHA-256 of a random ``state``, a random ``nonce``, a PKCE
verifier (S256) and the SHA-256 of a random value that goes into the
browser's cookie, for ten minutes. ``finish`` takes the flow back once
(deleted whatever happens), checks that the same browser came back, trades
the code for tokens at the provider's token endpoint (the client
authenticated with its secret, the PKCE verifier sent), and checks the ID
token: its signature against the provider's published keys (algorithms the
provider announces, never ``none`` or a shared secret), ``iss`` the
configured issuer, ``aud`` the client id (``azp`` too when there are
several audiences), ``exp``, ``iat``, the flow's ``nonce``, and
``at_hash`` when present. The provider's metadata and keys come from its
discovery document and are kept for an hour; a key id not among them reads
the keys again (at most once a minute), so a rotation at the provider is
followed.

Authlib builds the authorisation request and trades the code (httpx2 for
HTTP); joserfc (Authlib's JOSE library) checks the ID token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.config import Settings
from vault.db.schema import oidc_flows
from vault.errors import KluisError, StorageUnavailable, Unauthenticated

#: How long a sign-in may take between leaving for the provider and coming back.
FLOW_TTL = timedelta(minutes=10)
#: How long the discovery document and keys are kept.
CACHE_SECONDS = 3600.0
#: The least time between two reads of the keys for an unknown key id.
KEY_MISS_INTERVAL = 60.0
#: Clock skew accepted on ``exp`` and ``iat``.
LEEWAY_SECONDS = 60
#: Signature algorithms accepted on ID tokens (asymmetric only).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
CALLBACK_PATH = "/auth/oidc/callback"


class FlowInvalid(KluisError):
    status, code = 403, "link_invalid"
    default_message = "This sign-in is not one this vault started; start again from the app."


class FlowExpired(KluisError):
    status, code = 403, "link_expired"
    default_message = "This sign-in took too long; start again from the app."


class ProviderUnavailable(StorageUnavailable):
    default_message = "The identity provider cannot be reached right now; try again shortly."


@dataclasses.dataclass(frozen=True)
class Started:
    url: str
    #: The value for the browser's cookie; only its hash is kept.
    browser: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class OidcClient:
    """One configured provider, its metadata and keys cached."""

    def __init__(self, settings: Settings, engine: AsyncEngine, *, timeout: float = 10.0) -> None:
        self._oidc = settings.oidc
        self._engine = engine
        self._timeout = timeout
        self.redirect_uri = settings.links.public_url.rstrip("/") + CALLBACK_PATH
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = float("-inf")
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self._lock = asyncio.Lock()

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._oidc.client_id,
            client_secret=self._oidc.client_secret.reveal(),
            scope=" ".join(self._oidc.scopes),
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            timeout=self._timeout,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx2.AsyncClient(timeout=self._timeout) as client:
                answer = await client.get(url)
        except httpx2.HTTPError as exc:
            raise ProviderUnavailable() from exc
        if answer.status_code != 200:
            raise ProviderUnavailable(f"The identity provider answered {answer.status_code}.")
        try:
            data = answer.json()
        except ValueError:
            raise ProviderUnavailable("The identity provider sent no JSON.") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable("The identity provider sent an unexpected answer.")
        return data

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > CACHE_SECONDS:
            async with self._lock:
                if self._metadata is None or time.monotonic() - self._metadata_at > CACHE_SECONDS:
                    issuer = self._oidc.issuer
                    found = await self._get_json(
                        issuer.rstrip("/") + "/.well-known/openid-configuration"
                    )
                    # OpenID Connect Discovery 1.0, 4.3: the document names the
                    # very issuer it was fetched for.
                    if found.get("issuer") != issuer:
                        raise ProviderUnavailable(
                            "The identity provider's discovery document names another issuer; "
                            "check oidc.issuer."
                        )
                    for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                        if not isinstance(found.get(needed), str):
                            raise ProviderUnavailable(f"The discovery document has no {needed}.")
                    self._metadata, self._metadata_at = found, time.monotonic()
        assert self._metadata is not None
        return self._metadata

    async def keys(self, *, after_miss: bool = False) -> KeySet:
        stale = time.monotonic() - self._keys_at
        missed = after_miss and stale > KEY_MISS_INTERVAL
        if self._keys is None or stale > CACHE_SECONDS or missed:
            metadata = await self.metadata()
            raw = await self._get_json(metadata["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(raw)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError):
                raise ProviderUnavailable("The identity provider's keys cannot be read.") from None
            self._keys_at = time.monotonic()
        return self._keys

    async def begin(self, now: datetime) -> Started:
        metadata = await self.metadata()
        state, nonce, browser = (secrets.token_urlsafe(32) for _ in range(3))
        verifier = secrets.token_urlsafe(64)  # RFC 7636: 43 to 128 characters
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=verifier,
                nonce=nonce,
            )
        async with self._engine.begin() as conn:
            await conn.execute(delete(oidc_flows).where(oidc_flows.c.expires_at <= now))
            await conn.execute(
                insert(oidc_flows).values(
                    state_hash=_hash(state),
                    nonce=nonce,
                    code_verifier=verifier,
                    browser_hash=_hash(browser),
                    created_at=now,
                    expires_at=now + FLOW_TTL,
                )
            )
        return Started(url, browser)

    async def finish(self, code: str, state: str, browser: str | None, now: datetime) -> Identity:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    delete(oidc_flows)
                    .where(oidc_flows.c.state_hash == _hash(state))
                    .returning(
                        oidc_flows.c.nonce,
                        oidc_flows.c.code_verifier,
                        oidc_flows.c.browser_hash,
                        oidc_flows.c.expires_at,
                    )
                )
            ).first()
        if (
            row is None
            or browser is None
            or not hmac.compare_digest(row.browser_hash, _hash(browser))
        ):
            raise FlowInvalid()
        if row.expires_at <= now:
            raise FlowExpired()
        metadata = await self.metadata()
        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=row.code_verifier,
                )
        except (httpx2.HTTPError, ValueError) as exc:  # down, a 5xx, or not JSON
            raise ProviderUnavailable() from exc
        except OAuthError as exc:
            # invalid_grant: an expired, used or foreign code; the provider says no more.
            raise Unauthenticated(
                "The identity provider did not accept this sign-in; start again from the app."
            ) from exc
        claims = await self.verified_claims(token, row.nonce, now)
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise Unauthenticated(
                "The identity provider gave no verified e-mail address; ask its administrator."
            )
        return Identity(self._oidc.issuer, str(claims["sub"]), email)

    async def verified_claims(
        self, token: dict[str, Any], nonce: str, now: datetime
    ) -> dict[str, Any]:
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise Unauthenticated("The identity provider sent no ID token.")
        metadata = await self.metadata()
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in ALGORITHMS if alg in announced]
        try:
            try:
                decoded = jwt.decode(raw, await self.keys(), algorithms=algorithms)
            except InvalidKeyIdError:
                decoded = jwt.decode(raw, await self.keys(after_miss=True), algorithms=algorithms)
            claims = decoded.claims
            jwt.JWTClaimsRegistry(
                now=int(now.timestamp()),
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": self._oidc.issuer},
                aud={"essential": True, "value": self._oidc.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(claims)
        except (JoseError, ValueError) as exc:
            raise Unauthenticated(
                "The identity provider's answer did not verify; start again from the app."
            ) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self._oidc.client_id:
            raise Unauthenticated("The ID token was made for another application.")
        at_hash = claims.get("at_hash")
        access = token.get("access_token")
        if at_hash is not None:
            expected = (
                create_half_hash(access, str(decoded.header.get("alg")))
                if isinstance(access, str)
                else None
            )
            if expected is None or not hmac.compare_digest(str(at_hash), expected.decode("ascii")):
                raise Unauthenticated("The ID token does not belong to its access token.")
        return claims
