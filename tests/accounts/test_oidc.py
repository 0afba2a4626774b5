"""Staff single sign-on against a real OpenID Provider (oidc-provider, run by
Node on loopback), driven as a browser would: redirects followed, the
provider's login and consent forms submitted. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import func, select

from tests.helpers.accounts import person
from tests.helpers.api import Api, configured, start
from tests.helpers.browser import Browser, Page
from tests.helpers.oidc_provider import Account, OidcProvider
from tests.servers import ServerUnavailable, free_port, unavailable
from vault.accounts.oidc import OidcClient, _hash
from vault.api.resources import DB, SETTINGS
from vault.api.services import OIDC
from vault.config import Secret
from vault.db.schema import audit_events, oidc_flows, people
from vault.errors import Unauthenticated

pytestmark = pytest.mark.oidc

ANNA = Account("anna", "anna's identity provider password", "sub-anna", "anna@org.example")
GHOST = Account("ghost", "ghost's password here", "sub-ghost", "ghost@org.example")
UNVERIFIED = Account("vera", "vera's password here", "sub-vera", "vera@org.example", False)
PARENT = Account("piet", "piet's password here", "sub-piet", "piet@org.example")
CLIENTS = {"kluis": "kluis-client-secret-for-tests", "other-app": "another-client-secret"}


@dataclasses.dataclass
class Sso:
    api: Api
    base: str
    provider: OidcProvider
    anna: str


@pytest.fixture(scope="session")
def vault_port() -> int:
    return free_port()


def _provider(vault_port: int, code_ttl: int = 60) -> OidcProvider:
    try:
        return OidcProvider(
            f"http://127.0.0.1:{vault_port}/auth/oidc/callback",
            [ANNA, GHOST, UNVERIFIED, PARENT],
            CLIENTS,
            code_ttl=code_ttl,
        ).start()
    except ServerUnavailable as exc:
        unavailable(exc)
        raise


@pytest.fixture(scope="session")
def provider(vault_port: int) -> Iterator[OidcProvider]:
    started = _provider(vault_port)
    yield started
    started.stop()


async def _sso(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    aiohttp_client: Any,
    provider: OidcProvider,
    vault_port: int,
    client_id: str = "kluis",
) -> Sso:
    base = f"http://127.0.0.1:{vault_port}"
    settings = configured(
        request,
        tmp_path / "data",
        db_url,
        links={"public_url": base},
        oidc={
            "issuer": provider.issuer,
            "client_id": client_id,
            "client_secret": Secret(CLIENTS[client_id]),
        },
    )
    api = await start(settings, aiohttp_client, port=vault_port)
    # The provider signs with the real time; so does the vault here.
    api.clock.now = datetime.now(UTC)
    anna = await person(api, "staff", "Anna@Org.example", name="Anna")
    await person(api, "guardian", PARENT.email, name="Piet")
    return Sso(api, base, provider, anna)


@pytest.fixture
async def sso(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    aiohttp_client: Any,
    provider: OidcProvider,
    vault_port: int,
) -> Sso:
    return await _sso(request, tmp_path, db_url, aiohttp_client, provider, vault_port)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    opened = Browser()
    yield opened
    await opened.close()


async def _through_provider(browser: Browser, start_url: str, who: Account, stop_at: str) -> Page:
    """From ``start_url`` through the provider's forms to ``stop_at`` (not loaded)."""
    page = await browser.go(start_url, stop_at=stop_at)
    for _ in range(4):
        if page.status == 0:
            return page
        assert page.status == 200, (page.url, page.status, page.text[:300])
        if 'name="password"' in page.text:
            page = await browser.submit(
                page, {"login": who.login, "password": who.password}, stop_at=stop_at
            )
        else:
            assert "Allow" in page.text, page.text[:300]
            page = await browser.submit(page, {}, stop_at=stop_at)
    raise AssertionError(f"stuck at {page.url}")


async def _callback(sso: Sso, browser: Browser, who: Account = ANNA) -> str:
    """The callback URL the provider sends the browser back to (not yet loaded)."""
    page = await _through_provider(
        browser, f"{sso.base}/auth/oidc/login", who, f"{sso.base}/auth/oidc/callback"
    )
    return page.url


async def _land(browser: Browser, url: str) -> Page:
    """Load the callback like the browser would; stop before the app itself."""
    base = url.split("/auth/oidc/", 1)[0]
    return await browser.go(url, stop_at=f"{base}/app/")


def _with(url: str, **query: str) -> str:
    parts = urlparse(url)
    values = {k: v[0] for k, v in parse_qs(parts.query).items()}
    values.update(query)
    return urlunparse(parts._replace(query=urlencode(values)))


async def _error(browser: Browser, url: str) -> tuple[int, str]:
    async with browser.session.get(url, allow_redirects=False) as answer:
        body = await answer.json()
        return answer.status, str(body["error"]["code"])


async def test_a_staff_member_signs_in_through_the_identity_provider(
    sso: Sso, browser: Browser
) -> None:
    page = await browser.go(f"{sso.base}/auth/oidc/login", stop_at=sso.provider.issuer)
    login = urlparse(page.url)
    query = parse_qs(login.query)
    assert page.url.startswith(f"{sso.provider.issuer}/auth?")
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["kluis"]
    assert {"state", "nonce", "code_challenge"} <= set(query)
    landed = await _land(browser, await _callback(sso, browser))
    assert landed.url.startswith(f"{sso.base}/app/#token=kl_")
    token = landed.url.split("#token=", 1)[1]
    status, body = await sso.api.call("GET", "/v1/me/sessions", token)
    assert status == 200
    assert body["sessions"][0]["current"] is True
    # Bound once by the verified address, by the subject ever after.
    again = await _land(browser, await _callback(sso, browser))
    assert again.url.startswith(f"{sso.base}/app/#token=kl_")
    async with sso.api.client.app[DB].connect() as conn:
        signed = (
            await conn.execute(
                select(audit_events.c.actor, audit_events.c.ip, audit_events.c.agent).where(
                    audit_events.c.action == "signin.oidc", audit_events.c.outcome == "ok"
                )
            )
        ).all()
    assert [tuple(row) for row in signed] == [(sso.anna, "127.0.0.1", signed[0].agent)] * 2
    assert signed[0].agent is not None
    assert "aiohttp" in signed[0].agent  # the browser's user agent


async def test_a_wrong_or_replayed_state_is_refused(sso: Sso, browser: Browser) -> None:
    callback = await _callback(sso, browser)
    assert await _error(browser, _with(callback, state="not-the-state")) == (403, "link_invalid")
    # Another browser (no cookie) bringing the right callback is refused too,
    # and the flow is used up by it.
    other = Browser()
    try:
        async with other.session.get(callback, allow_redirects=False) as answer:
            assert answer.status == 403
    finally:
        await other.close()
    assert await _error(browser, callback) == (403, "link_invalid")
    # A fresh flow works; its callback replayed does not.
    fresh = await _callback(sso, browser)
    assert (await _land(browser, fresh)).url.startswith(f"{sso.base}/app/#token=")
    assert await _error(browser, fresh) == (403, "link_invalid")


async def test_a_replayed_code_is_refused_by_the_provider(sso: Sso, browser: Browser) -> None:
    first = await _callback(sso, browser)
    assert (await _land(browser, first)).url.startswith(f"{sso.base}/app/#token=")
    code = parse_qs(urlparse(first).query)["code"][0]
    second = await _callback(sso, browser)
    # The old code with the new flow's state: the provider says no.
    assert await _error(browser, _with(second, code=code)) == (401, "unauthenticated")


async def test_an_expired_code_is_refused(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    db_url: str,
    aiohttp_client: Any,
    vault_port: int,
    browser: Browser,
) -> None:
    quick = _provider(vault_port, code_ttl=1)
    try:
        sso = await _sso(request, tmp_path, db_url, aiohttp_client, quick, vault_port)
        callback = await _callback(sso, browser)
        await asyncio.sleep(2.5)
        assert await _error(browser, callback) == (401, "unauthenticated")
    finally:
        quick.stop()


async def test_unknown_or_unverified_addresses_and_other_roles_are_refused(
    sso: Sso, browser: Browser
) -> None:
    async with sso.api.client.app[DB].connect() as conn:
        before = await conn.scalar(select(func.count()).select_from(people))
    for who, expected in [
        (GHOST, (401, "unauthenticated")),
        (UNVERIFIED, (401, "unauthenticated")),
        (PARENT, (403, "forbidden")),  # a guardian, not staff
    ]:
        fresh = Browser()
        try:
            assert await _error(fresh, await _callback(sso, fresh, who)) == expected, who
        finally:
            await fresh.close()
    async with sso.api.client.app[DB].connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(people)) == before
    await sso.api.ok("POST", f"/v1/people/{sso.anna}/block", {"reason": "left"})
    assert await _error(browser, await _callback(sso, browser)) == (403, "blocked")


async def _real_tokens(
    sso: Sso, browser: Browser, client: OidcClient, secret: str
) -> tuple[dict[str, Any], str]:
    """A real token response from the provider and the flow's nonce, for
    ``client`` (the test trades the code itself, as the vault would)."""
    started = await client.begin(sso.api.clock.now)
    page = await _through_provider(browser, started.url, ANNA, f"{sso.base}/auth/oidc/callback")
    query = parse_qs(urlparse(page.url).query)
    async with sso.api.client.app[DB].connect() as conn:
        nonce = await conn.scalar(
            select(oidc_flows.c.nonce).where(oidc_flows.c.state_hash == _hash(query["state"][0]))
        )
        verifier = await conn.scalar(
            select(oidc_flows.c.code_verifier).where(
                oidc_flows.c.state_hash == _hash(query["state"][0])
            )
        )
    metadata = await client.metadata()
    async with AsyncOAuth2Client(
        client_id=client._oidc.client_id,
        client_secret=secret,
        redirect_uri=client.redirect_uri,
    ) as trade:
        token = await trade.fetch_token(
            metadata["token_endpoint"], code=query["code"][0], code_verifier=verifier
        )
    return dict(token), str(nonce)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_tampered_or_foreign_id_tokens_are_refused(sso: Sso, browser: Browser) -> None:
    client = sso.api.client.app[OIDC]
    token, nonce = await _real_tokens(sso, browser, client, CLIENTS["kluis"])
    now = sso.api.clock.now
    claims = await client.verified_claims(token, nonce, now)
    assert claims["email"] == ANNA.email
    assert claims["email_verified"] is True
    header, payload, signature = token["id_token"].split(".")
    forged = json.loads(_unb64(payload))
    forged["email"] = "someone.else@org.example"
    bad = {
        "payload changed": f"{header}.{_b64(json.dumps(forged).encode())}.{signature}",
        "signature changed": f"{header}.{payload}.{_b64(bytes(reversed(_unb64(signature))))}",
        "alg none": _b64(b'{"alg":"none"}') + f".{payload}.",
        "signed with the client secret": jwt.encode(
            {"alg": "HS256"}, json.loads(_unb64(payload)), OctKey.import_key(CLIENTS["kluis"])
        ),
    }
    for what, raw in bad.items():
        with pytest.raises(Unauthenticated):  # noqa: PT012 - names the case that failed
            await client.verified_claims({**token, "id_token": raw}, nonce, now)
            pytest.fail(f"accepted an ID token with its {what}")
    with pytest.raises(Unauthenticated):
        await client.verified_claims(token, "another-nonce", now)
    with pytest.raises(Unauthenticated):  # expired: an hour and more later
        await client.verified_claims(token, nonce, now + timedelta(hours=1, minutes=2))
    # A real token the same provider made for another application.
    settings = sso.api.client.app[SETTINGS]
    other = OidcClient(
        dataclasses.replace(
            settings,
            oidc=dataclasses.replace(
                settings.oidc, client_id="other-app", client_secret=Secret(CLIENTS["other-app"])
            ),
        ),
        sso.api.client.app[DB],
    )
    foreign, foreign_nonce = await _real_tokens(sso, browser, other, CLIENTS["other-app"])
    assert (await other.verified_claims(foreign, foreign_nonce, now))["aud"] == "other-app"
    with pytest.raises(Unauthenticated):
        await client.verified_claims(foreign, foreign_nonce, now)
