"""Clients behind reverse proxies: whose forwarding headers are believed, and where.

The rule as a table (vault/api/proxies.py: right to left over trusted hops,
one header family, made-up hops never believed), then the service end to
end: the address an audit event records, the one the failed-login limiter
counts, and the scheme of the link URLs it hands out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api, start
from tests.helpers.items import consent, upload
from tests.helpers.world import world
from vault.api.proxies import TrustedProxies, resolve
from vault.api.resources import DB
from vault.config import AuthSettings, DatabaseSettings, ServerSettings, Settings
from vault.db.schema import audit_events

PROXY = "10.0.0.5"
EDGE = "10.0.0.9"
TRUSTED = TrustedProxies(["10.0.0.0/24", "2001:db8::/32"])
FORWARDED = TrustedProxies(["10.0.0.0/24"], "forwarded")

#: (peer, headers, trusted, the client's address, its scheme)
CASES: list[tuple[str, Mapping[str, str], TrustedProxies, str, str]] = [
    # Nothing trusted: the peer, whatever it writes.
    ("203.0.113.7", {"X-Forwarded-For": "1.2.3.4"}, TrustedProxies([]), "203.0.113.7", "http"),
    # An untrusted peer's headers are ignored.
    ("203.0.113.7", {"X-Forwarded-For": "1.2.3.4"}, TRUSTED, "203.0.113.7", "http"),
    (
        "203.0.113.7",
        {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"},
        TRUSTED,
        "203.0.113.7",
        "http",
    ),
    # A trusted proxy: its last hop is the client, its proto the scheme.
    (
        PROXY,
        {"X-Forwarded-For": "198.51.100.20", "X-Forwarded-Proto": "https"},
        TRUSTED,
        "198.51.100.20",
        "https",
    ),
    # A client's own made-up entries sit left of what the proxy appended.
    (
        PROXY,
        {"X-Forwarded-For": "6.6.6.6, 198.51.100.20", "X-Forwarded-Proto": "https"},
        TRUSTED,
        "198.51.100.20",
        "https",
    ),
    # Two trusted proxies in a row; one proto per hop: the client's is used.
    (
        PROXY,
        {"X-Forwarded-For": "198.51.100.20, 10.0.0.9", "X-Forwarded-Proto": "https, http"},
        TRUSTED,
        "198.51.100.20",
        "https",
    ),
    # The header given twice counts as one list, in order.
    (
        PROXY,
        CIMultiDict([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.20")]),
        TRUSTED,
        "198.51.100.20",
        "http",
    ),
    # Only trusted hops: the leftmost is the client.
    (PROXY, {"X-Forwarded-For": "10.0.0.7, 10.0.0.9"}, TRUSTED, "10.0.0.7", "http"),
    # A hop that is no address ends the walk at the last one established.
    (PROXY, {"X-Forwarded-For": "198.51.100.20, unknown"}, TRUSTED, PROXY, "http"),
    (PROXY, {"X-Forwarded-For": "garbage"}, TRUSTED, PROXY, "http"),
    # Ports and IPv6 as proxies write them; a mapped IPv4 peer is IPv4.
    (PROXY, {"X-Forwarded-For": "198.51.100.20:5123"}, TRUSTED, "198.51.100.20", "http"),
    (
        "::ffff:10.0.0.5",
        {"X-Forwarded-For": "2001:db8::7, 192.0.2.1"},
        TRUSTED,
        "192.0.2.1",
        "http",
    ),
    (
        "2001:db8::1",
        {"X-Forwarded-For": "[2001:db9::7]:443", "X-Forwarded-Proto": "https"},
        TRUSTED,
        "2001:db9::7",
        "https",
    ),
    # A scheme that is neither http nor https is ignored.
    (PROXY, {"X-Forwarded-Proto": "javascript"}, TRUSTED, PROXY, "http"),
    # The other family is not read: a proxy passes it on from the client.
    (PROXY, {"Forwarded": "for=6.6.6.6;proto=https"}, TRUSTED, PROXY, "http"),
    (PROXY, {"X-Forwarded-For": "6.6.6.6"}, FORWARDED, PROXY, "http"),
    # RFC 7239, right to left; the client's own element gives the scheme.
    (
        PROXY,
        {"Forwarded": 'for=6.6.6.6, for=198.51.100.20;proto=https, for="10.0.0.9";proto=http'},
        FORWARDED,
        "198.51.100.20",
        "https",
    ),
    (
        PROXY,
        {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=HTTPS'},
        FORWARDED,
        "2001:db8:cafe::17",
        "https",
    ),
    (PROXY, {"Forwarded": "for=_hidden, for=198.51.100.20"}, FORWARDED, "198.51.100.20", "http"),
    (PROXY, {"Forwarded": "for=198.51.100.20, for=_hidden"}, FORWARDED, PROXY, "http"),
]


@pytest.mark.parametrize(("peer", "headers", "trusted", "ip", "scheme"), CASES)
def test_whose_forwarding_headers_are_believed(
    peer: str, headers: Any, trusted: TrustedProxies, ip: str, scheme: str
) -> None:
    client = resolve(peer, "http", CIMultiDict(headers), trusted)
    assert (client.ip, client.scheme) == (ip, scheme)


def test_kluis_own_tls_stays_https_without_a_proxy_header() -> None:
    client = resolve(PROXY, "https", CIMultiDict(), TRUSTED)
    assert client.scheme == "https"


async def behind(tmp_path: Path, db_url: str, aiohttp_client: Any, trusted: tuple[str, ...]) -> Api:
    settings = Settings(
        data_dir=tmp_path / "data",
        database=DatabaseSettings(url=db_url),
        server=ServerSettings(trusted_proxies=trusted),
        auth=AuthSettings(max_failures=2),
    )
    return await start(settings, aiohttp_client)


async def logins(api: Api) -> list[dict[str, Any]]:
    async with api.client.app[DB].connect() as conn:
        rows = await conn.execute(select(audit_events).where(audit_events.c.action == "login"))
        return [dict(row._mapping) for row in rows]


async def fail_logins(api: Api, forwarded_for: str, times: int) -> list[int]:
    statuses = []
    for _ in range(times):
        status, _ = await api.call(
            "GET",
            "/v1/audit/verify",
            token="kl_0123456789abcdef.wrong",
            headers={"X-Forwarded-For": forwarded_for},
        )
        statuses.append(status)
    return statuses


async def test_a_trusted_proxys_client_is_recorded_and_limited_on_its_own(
    tmp_path: Path, db_url: str, aiohttp_client: Any
) -> None:
    api = await behind(tmp_path, db_url, aiohttp_client, ("127.0.0.1",))
    # Two clients behind the one proxy: each has its own failure count.
    assert await fail_logins(api, "198.51.100.1", 4) == [401, 401, 429, 429]
    assert await fail_logins(api, "198.51.100.2", 1) == [401]
    recorded = {event["ip"] for event in await logins(api)}
    assert recorded == {"198.51.100.1", "198.51.100.2"}
    # A call that authenticates records the forwarded address too.
    status, _ = await api.call(
        "POST",
        "/v1/locations",
        token=api.admin,
        json={"name": "De Boomhut"},
        headers={"X-Forwarded-For": "198.51.100.3"},
    )
    assert status == 201
    async with api.client.app[DB].connect() as conn:
        last = (
            await conn.execute(select(audit_events).order_by(audit_events.c.seq.desc()).limit(1))
        ).one()
    assert last.ip == "198.51.100.3"
    assert "worker" not in json.loads(last.detail)  # one process: no worker named


async def test_an_untrusted_peers_forwarded_for_is_ignored(
    tmp_path: Path, db_url: str, aiohttp_client: Any
) -> None:
    # The test client connects from 127.0.0.1, which is not among the proxies.
    api = await behind(tmp_path, db_url, aiohttp_client, ("10.0.0.0/8",))
    # Made-up addresses do not open a fresh count for each attempt.
    statuses = [(await fail_logins(api, f"198.51.100.{n}", 1))[0] for n in range(1, 5)]
    assert statuses == [401, 401, 429, 429]
    assert {event["ip"] for event in await logins(api)} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("trusted", "scheme"), [(("127.0.0.1",), "https"), (("10.0.0.0/8",), "http")]
)
async def test_link_urls_say_https_when_a_trusted_tls_proxy_says_so(
    tmp_path: Path, db_url: str, aiohttp_client: Any, trusted: tuple[str, ...], scheme: str
) -> None:
    api = await behind(tmp_path, db_url, aiohttp_client, trusted)
    w = await world(api)
    await consent(api, w)
    status, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert status == 201, photo
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}
    status, link = await api.call(
        "POST", f"/v1/items/{photo['id']}/links", w.parent, {}, headers=proxy
    )
    assert status == 201, link
    host = f"{api.client.server.host}:{api.client.server.port}"
    assert link["url"].startswith(f"{scheme}://{host}/l/")
