"""One-time codes (RFC 6238) at sign-in, on SQLite and PostgreSQL: set up,
drift of one step accepted and two refused, replays refused, required roles."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from tests.helpers.accounts import code, invited, sign_in
from tests.helpers.api import Api
from vault.api.resources import DB
from vault.db.schema import accounts


async def _switch_on(api: Api, session: str) -> str:
    status, setup = await api.call("POST", "/v1/me/totp", session)
    assert status == 201, setup
    uri = urlparse(setup["otpauth_uri"])
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [setup["secret"]]
    assert parse_qs(uri.query)["issuer"] == ["Kluis"]
    assert (
        await api.call(
            "POST", "/v1/me/totp/confirm", session, {"code": code(setup["secret"], api.clock.now)}
        )
    )[0] == 204
    return str(setup["secret"])


async def test_with_codes_on_a_sign_in_needs_the_current_code(api: Api) -> None:
    person_id, session = await invited(api, "guardian", "totp@example.org")
    secret = await _switch_on(api, session)
    async with api.client.app[DB].connect() as conn:
        sealed = await conn.scalar(
            select(accounts.c.totp_sealed).where(accounts.c.person_id == person_id)
        )
    assert sealed is not None
    assert secret.encode() not in sealed
    api.clock.now += timedelta(minutes=2)
    status, body = await sign_in(api, "totp@example.org")
    assert (status, body["error"]["code"]) == (401, "totp_required")
    status, body = await sign_in(api, "totp@example.org", totp="000000")
    assert (status, body["error"]["code"]) == (401, "totp_required")
    # A wrong password with a right code says nothing about the code.
    status, body = await sign_in(
        api, "totp@example.org", "wrong password x", totp=code(secret, api.clock.now)
    )
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert (await sign_in(api, "totp@example.org", totp=code(secret, api.clock.now)))[0] == 201


@pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (1, True), (2, False)])
async def test_a_drift_of_one_step_is_accepted_and_two_refused(
    api: Api, steps: int, accepted: bool
) -> None:
    _, session = await invited(api, "guardian", "drift@example.org")
    secret = await _switch_on(api, session)
    api.clock.now += timedelta(minutes=5)
    status, body = await sign_in(api, "drift@example.org", totp=code(secret, api.clock.now, steps))
    if accepted:
        assert status == 201, body
    else:
        assert (status, body["error"]["code"]) == (401, "totp_required")


async def test_a_code_works_once(api: Api) -> None:
    _, session = await invited(api, "guardian", "once@example.org")
    secret = await _switch_on(api, session)
    api.clock.now += timedelta(minutes=5)
    now_code = code(secret, api.clock.now)
    assert (await sign_in(api, "once@example.org", totp=now_code))[0] == 201
    status, body = await sign_in(api, "once@example.org", totp=now_code)
    assert (status, body["error"]["code"]) == (401, "totp_required")
    # Nor one from before it.
    status, _ = await sign_in(api, "once@example.org", totp=code(secret, api.clock.now, -1))
    assert status == 401
    assert (await sign_in(api, "once@example.org", totp=code(secret, api.clock.now, 1)))[0] == 201


async def test_setting_up_and_switching_off(api: Api) -> None:
    _, session = await invited(api, "guardian", "setup@example.org")
    status, body = await api.call("POST", "/v1/me/totp/confirm", session, {"code": "123456"})
    assert (status, body["error"]["code"]) == (409, "conflict")  # nothing started
    _, setup = await api.call("POST", "/v1/me/totp", session)
    status, body = await api.call(
        "POST", "/v1/me/totp/confirm", session, {"code": code(setup["secret"], api.clock.now, 3)}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    assert (await sign_in(api, "setup@example.org"))[0] == 201  # still off
    await api.ok(
        "POST", "/v1/me/totp/confirm", {"code": code(setup["secret"], api.clock.now)}, session
    )
    status, body = await api.call("POST", "/v1/me/totp", session)
    assert (status, body["error"]["code"]) == (409, "conflict")  # on already
    api.clock.now += timedelta(minutes=1)
    status, body = await api.call("DELETE", "/v1/me/totp", session, {"code": "999999"})
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    await api.ok("DELETE", "/v1/me/totp", {"code": code(setup["secret"], api.clock.now)}, session)
    assert (await sign_in(api, "setup@example.org"))[0] == 201


@pytest.mark.settings(auth={"totp_required_roles": ("staff",)})
async def test_a_role_that_requires_codes_sets_them_up_before_anything_else(api: Api) -> None:
    _, session = await invited(api, "staff", "staff@example.org")
    status, body = await api.call("GET", "/v1/me/sessions", session)
    assert (status, body["error"]["code"]) == (401, "totp_required")
    assert "POST /v1/me/totp" in body["error"]["message"]
    secret = await _switch_on(api, session)
    # Confirming made this session a two-step one.
    assert (await api.call("GET", "/v1/me/sessions", session))[0] == 200
    status, body = await api.call(
        "DELETE", "/v1/me/totp", session, {"code": code(secret, api.clock.now, 1)}
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")
    api.clock.now += timedelta(minutes=3)
    status, body = await sign_in(api, "staff@example.org")
    assert (status, body["error"]["code"]) == (401, "totp_required")
    status, signed = await sign_in(api, "staff@example.org", totp=code(secret, api.clock.now))
    assert (await api.call("GET", "/v1/me/sessions", signed["token"]))[0] == 200
    # Guardians are not in the list: their codes stay optional.
    _, parent = await invited(api, "guardian", "parent@example.org")
    assert (await api.call("GET", "/v1/me/sessions", parent))[0] == 200


@pytest.mark.settings(auth={"max_failures": 3})
async def test_guessing_codes_is_throttled(api: Api) -> None:
    _, session = await invited(api, "guardian", "guess@example.org")
    secret = await _switch_on(api, session)
    api.clock.now += timedelta(minutes=5)
    for guess in ("111111", "222222", "333333"):
        assert (await sign_in(api, "guess@example.org", totp=guess))[0] == 401
    status, body = await sign_in(api, "guess@example.org", totp=code(secret, api.clock.now))
    assert (status, body["error"]["code"]) == (429, "rate_limited")
