"""Operations endpoints and the behaviour every response shares."""

from __future__ import annotations

import shutil

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vault.api import create_app
from vault.cli import init
from vault.config import Settings

pytestmark = pytest.mark.localdisk


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(settings: Settings, aiohttp_client) -> Client:  # type: ignore[no-untyped-def]
    assert await init(settings) == 0
    return await aiohttp_client(create_app(settings))


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_when_everything_is_up(
    client: Client,
) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    assert body["checks"] == {"database": "ok", "storage": "ok", "keyring": "ok"}


async def test_readyz_reports_storage_down(client: Client, settings: Settings) -> None:
    shutil.rmtree(settings.storage_path)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["error"]["code"] == "storage_unavailable"
    assert "storage" in body["error"]["message"]
    assert response.headers["Retry-After"]


async def test_readyz_reports_keyring_down(client: Client, settings: Settings) -> None:
    settings.keyring_path.unlink()
    response = await client.get("/readyz")
    assert response.status == 503
    assert "keyring" in (await response.json())["error"]["message"]


async def test_unknown_path_is_a_json_not_found(
    client: Client,
) -> None:
    response = await client.get("/nothing/here")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    # Under /v1/ nothing, not even whether a path exists, is told without a token.
    response = await client.get("/v1/nothing/here")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_wrong_method_is_a_json_error(
    client: Client,
) -> None:
    response = await client.post("/healthz")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_security_headers_on_every_answer(
    client: Client,
) -> None:
    for path in ("/healthz", "/nope"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


async def test_metrics_count_requests_by_route(
    client: Client,
) -> None:
    await client.get("/healthz")
    await client.get("/v1/items/abc123")
    text = await (await client.get("/metrics")).text()
    assert 'kluis_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="/v1/items/{id}",status="401"' in text
    assert "abc123" not in text  # concrete paths (and tokens in them) never become labels
    assert "kluis_http_request_duration_seconds_bucket" in text


async def test_openapi_document(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json"} <= set(document["paths"])
    # Every API.md path served so far is described, with its methods.
    described = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert {
        ("/v1/people", "post"),
        ("/v1/people/{id}/tokens", "post"),
        ("/v1/people/{id}/block", "post"),
        ("/v1/people/{id}/block", "delete"),
        ("/v1/locations", "post"),
        ("/v1/locations/{id}/managers", "post"),
        ("/v1/groups", "post"),
        ("/v1/groups/{id}/staff", "post"),
        ("/v1/children", "post"),
        ("/v1/children/{id}/placement", "put"),
        ("/v1/children/{id}/guardians", "post"),
        ("/v1/children/{id}/mentor", "put"),
        ("/v1/children/{id}/consents/{type}", "put"),
        ("/v1/children/{id}/consents", "get"),
    } <= described
    assert document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]
