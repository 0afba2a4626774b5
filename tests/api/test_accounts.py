"""Accounts and sign-in (API.md 1.1) on SQLite and PostgreSQL: invitations,
password sign-in, sessions, one's own password, blocks, expiry, audit."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from tests.helpers.accounts import (
    LAPTOP,
    PASSWORD,
    PHONE,
    accept,
    invitation_token,
    invited,
    mails,
    person,
    sign_in,
)
from tests.helpers.api import Api
from vault.api.resources import DB
from vault.db.schema import accounts, audit_events, tokens


async def test_an_invitation_is_mailed_and_accepting_it_signs_in(api: Api) -> None:
    parent = await person(api, "guardian", "ouder@example.org")
    status, body = await api.call("POST", f"/v1/people/{parent}/invitations", api.admin)
    assert status == 201
    assert body["expires_at"] == "2026-11-28T09:00:00Z"  # seven days
    ((state, message),) = await mails(api, "invitation")
    assert state == "pending"
    assert message.to == "ouder@example.org"
    assert "Uitnodiging" in message.subject
    assert "Invitation" in message.subject
    token = await invitation_token(api, "ouder@example.org")
    assert f"/invite/{token}" in message.html
    # The mailed link opens the app with the token in the fragment.
    opened = await api.client.get(f"/invite/{token}", allow_redirects=False)
    assert opened.status == 302
    assert opened.headers["Location"] == f"/app/#invite={token}"
    status, session = await accept(api, token)
    assert status == 201, session
    assert session["expires_at"] == "2026-12-21T09:00:00Z"  # a guardian's 720 hours
    status, listed = await api.call("GET", "/v1/me/sessions", session["token"])
    assert status == 200
    (only,) = listed["sessions"]
    assert only["current"] is True
    assert only["user_agent"] == PHONE
    assert only["ip"] == "127.0.0.1"
    assert only["created_at"] == "2026-11-21T09:00:00Z"
    # The password chosen now signs in.
    status, again = await sign_in(api, "ouder@example.org")
    assert status == 201
    assert again["token"] != session["token"]


async def test_the_password_is_stored_only_as_an_argon2id_hash(api: Api) -> None:
    person_id, _ = await invited(api, "guardian", "hash@example.org")
    async with api.client.app[DB].connect() as conn:
        stored = await conn.scalar(
            select(accounts.c.password_hash).where(accounts.c.person_id == person_id)
        )
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_a_used_invitation_cannot_be_replayed(api: Api) -> None:
    parent = await person(api, "guardian", "twice@example.org")
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    token = await invitation_token(api, "twice@example.org")
    assert (await accept(api, token))[0] == 201
    status, body = await accept(api, token, "another long passphrase here")
    assert (status, body["error"]["code"]) == (403, "link_expired")
    # The first password still holds; the replay changed nothing.
    assert (await sign_in(api, "twice@example.org", "another long passphrase here"))[0] == 401
    assert (await sign_in(api, "twice@example.org"))[0] == 201


async def test_invitations_expire_after_seven_days_and_a_new_one_replaces_the_old(
    api: Api,
) -> None:
    parent = await person(api, "guardian", "late@example.org")
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    first = await invitation_token(api, "late@example.org")
    api.clock.now += timedelta(days=7, seconds=1)
    status, body = await accept(api, first)
    assert (status, body["error"]["code"]) == (403, "link_expired")
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    second = await invitation_token(api, "late@example.org")
    api.clock.now += timedelta(minutes=1)
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    third = await invitation_token(api, "late@example.org")
    assert (await accept(api, second))[1]["error"]["code"] == "link_expired"  # replaced
    assert (await accept(api, third))[0] == 201


async def test_invitation_links_that_are_not_ours_are_invalid(api: Api) -> None:
    for token in ("ki_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonsense"):
        status, body = await accept(api, token)
        assert (status, body["error"]["code"]) == (403, "link_invalid")
    parent = await person(api, "guardian", "forged@example.org")
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    real = await invitation_token(api, "forged@example.org")
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert (await accept(api, forged))[1]["error"]["code"] == "link_invalid"
    assert (await accept(api, real))[0] == 201


async def test_weak_passwords_are_refused_and_the_invitation_stays_usable(api: Api) -> None:
    parent = await person(api, "guardian", "weak@example.org")
    await api.ok("POST", f"/v1/people/{parent}/invitations")
    token = await invitation_token(api, "weak@example.org")
    for weak, says in [
        ("short pass", "at least 12 characters"),
        ("Password1234", "commonly used"),
        ("qwertyuiop123", "commonly used"),
        ("wachtwoord123", "commonly used"),
        ("WEAK@example.org", "commonly used"),
        # A number shaped like a citizen service number (eleven-test) is guessed first.
        ("fiets 111222333 regen", "citizen service number"),
        ("fiets 111.222.333 regen", "citizen service number"),
    ]:
        status, body = await accept(api, token, weak)
        assert (status, body["error"]["code"]) == (400, "invalid_input"), weak
        assert says in body["error"]["message"], body
    # A BSN-shaped number is the password rule's refusal, not a record refused.
    status, body = await accept(api, token, "fiets 111222333 regen")
    assert "111222333" not in body["error"]["message"]
    # Twelve characters after NFKC: full-width letters count as their ASCII forms.
    assert (await accept(api, token, "ｐａｓｓｗｏｒｄ1234"))[0] == 400
    assert (await accept(api, token, "  lange zin met spaties  "))[0] == 201
    # Spaces are part of a password, never stripped.
    assert (await sign_in(api, "weak@example.org", "lange zin met spaties"))[0] == 401
    assert (await sign_in(api, "weak@example.org", "  lange zin met spaties  "))[0] == 201


async def test_who_may_invite_whom(api: Api) -> None:
    staff_id, staff = await api.person("staff")
    status, body = await api.call("POST", f"/v1/people/{staff_id}/invitations", staff)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await api.call("POST", f"/v1/people/{staff_id}/invitations", api.admin)
    assert (status, body["error"]["code"]) == (400, "invalid_input")  # no address
    status, body = await api.call("POST", f"/v1/people/{'0' * 32}/invitations", api.admin)
    assert (status, body["error"]["code"]) == (404, "not_found")
    # One account per address: a second person with the same one is refused.
    await invited(api, "guardian", "shared@example.org")
    other = await person(api, "staff", "Shared@Example.org")
    status, body = await api.call("POST", f"/v1/people/{other}/invitations", api.admin)
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert await mails(api, "invitation")
    assert len(await mails(api, "invitation")) == 1


async def test_wrong_credentials_say_nothing_about_which_part(api: Api) -> None:
    await invited(api, "guardian", "known@example.org")
    wrong_password = await sign_in(api, "known@example.org", "not the password at all")
    unknown_address = await sign_in(api, "nobody@example.org", PASSWORD)
    for status, body in (wrong_password, unknown_address):
        assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert wrong_password[1]["error"]["message"] == unknown_address[1]["error"]["message"]
    # Case and surrounding spaces of the address do not matter.
    assert (await sign_in(api, " KNOWN@example.org "))[0] == 201
    status, body = await api.call("POST", "/v1/sessions", json={"email": "known@example.org"})
    assert (status, body["error"]["code"]) == (400, "invalid_input")


@pytest.mark.settings(auth={"max_failures": 3})
async def test_failed_sign_ins_are_throttled_per_address(api: Api) -> None:
    await invited(api, "guardian", "a@example.org")
    for address in ("b@example.org", "c@example.org", "d@example.org"):
        assert (await sign_in(api, address, "wrong password here"))[0] == 401
    # Three failures from this address: even the right password waits now.
    status, body = await sign_in(api, "a@example.org")
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    api.clock.now += timedelta(seconds=901)
    assert (await sign_in(api, "a@example.org"))[0] == 201


@pytest.mark.settings(auth={"max_failures": 3})
async def test_failed_sign_ins_are_throttled_per_account_from_any_address(api: Api) -> None:
    await invited(api, "guardian", "target@example.org")
    base = str(api.client.make_url("/v1/sessions"))
    attempts = {"email": "target@example.org", "password": "guessing wrongly"}
    for n in range(3):
        # Each guess from another loopback address, as from another machine.
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n + 2}", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as other,
            other.post(base, json=attempts) as answer,
        ):
            assert answer.status == 401
    status, body = await sign_in(api, "target@example.org")
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    # Another account from this same address is not held up by it.
    await invited(api, "guardian", "bystander@example.org")
    assert (await sign_in(api, "bystander@example.org"))[0] == 201


async def test_sessions_expire_by_role(api: Api) -> None:
    _, guardian = await invited(api, "guardian", "g@example.org")
    _, staff = await invited(api, "staff", "s@example.org")
    api.clock.now += timedelta(hours=12)
    status, body = await api.call("GET", "/v1/me/sessions", staff)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert (await api.call("GET", "/v1/me/sessions", guardian))[0] == 200
    api.clock.now += timedelta(hours=720 - 12)
    assert (await api.call("GET", "/v1/me/sessions", guardian))[0] == 401


async def test_sign_out_and_ending_a_session_stop_it_at_the_next_request(api: Api) -> None:
    _, phone = await invited(api, "guardian", "multi@example.org")
    api.clock.now += timedelta(minutes=1)
    _, laptop = await sign_in(api, "multi@example.org", agent=LAPTOP)
    laptop_token = laptop["token"]
    _, listed = await api.call("GET", "/v1/me/sessions", phone)
    assert [s["user_agent"] for s in listed["sessions"]] == [LAPTOP, PHONE]
    assert [s["current"] for s in listed["sessions"]] == [False, True]
    laptop_id = listed["sessions"][0]["id"]
    assert (await api.call("DELETE", f"/v1/me/sessions/{laptop_id}", phone))[0] == 204
    status, body = await api.call("GET", "/v1/me/sessions", laptop_token)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    # Someone else's session is nothing one can end.
    _, other = await invited(api, "guardian", "other@example.org")
    _, mine = await api.call("GET", "/v1/me/sessions", phone)
    status, _ = await api.call("DELETE", f"/v1/me/sessions/{mine['sessions'][0]['id']}", other)
    assert status == 404
    assert (await api.call("DELETE", "/v1/sessions/current", phone))[0] == 204
    assert (await api.call("GET", "/v1/me/sessions", phone))[0] == 401


async def test_a_password_change_ends_every_other_session(api: Api) -> None:
    _, phone = await invited(api, "guardian", "change@example.org")
    _, laptop = await sign_in(api, "change@example.org", agent=LAPTOP)
    status, body = await api.call(
        "POST", "/v1/me/password", phone, {"current": "wrong one here", "new": "a brand new one"}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api.call(
        "POST", "/v1/me/password", phone, {"current": PASSWORD, "new": "password12345"}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")  # common
    new = "een heel nieuw wachtwoord"
    assert (await api.call("POST", "/v1/me/password", phone, {"current": PASSWORD, "new": new}))[
        0
    ] == 204
    assert (await api.call("GET", "/v1/me/sessions", phone))[0] == 200
    assert (await api.call("GET", "/v1/me/sessions", laptop["token"]))[0] == 401
    assert (await sign_in(api, "change@example.org"))[0] == 401
    assert (await sign_in(api, "change@example.org", new))[0] == 201
    # A person with only an admin's token has no password to change.
    _, plain = await api.person("guardian")
    status, body = await api.call(
        "POST", "/v1/me/password", plain, {"current": PASSWORD, "new": new}
    )
    assert (status, body["error"]["code"]) == (409, "conflict")


async def test_a_blocked_person_cannot_sign_in_and_their_sessions_end(api: Api) -> None:
    person_id, session = await invited(api, "guardian", "blocked@example.org")
    await api.ok("POST", f"/v1/people/{person_id}/block", {"reason": "identity in doubt"})
    status, body = await sign_in(api, "blocked@example.org")
    assert (status, body["error"]["code"]) == (403, "blocked")
    assert (await api.call("GET", "/v1/me/sessions", session))[0] in (401, 403)
    await api.ok("DELETE", f"/v1/people/{person_id}/block")
    # The block ended the session for good; signing in again works.
    status, body = await api.call("GET", "/v1/me/sessions", session)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert (await sign_in(api, "blocked@example.org"))[0] == 201
    # A blocked person's invitation is not used up by a refused acceptance.
    await api.ok("POST", f"/v1/people/{person_id}/block", {"reason": "again"})
    api.clock.now += timedelta(minutes=1)
    await api.ok("POST", f"/v1/people/{person_id}/invitations")
    token = await invitation_token(api, "blocked@example.org")
    status, body = await accept(api, token, "yet another long one")
    assert (status, body["error"]["code"]) == (403, "blocked")
    await api.ok("DELETE", f"/v1/people/{person_id}/block")
    assert (await accept(api, token, "yet another long one"))[0] == 201


@pytest.mark.settings(auth={"token_ttl_days": 365})
async def test_bearer_tokens_expire_and_record_their_last_use(api: Api) -> None:
    person_id, token = await api.person("staff")
    made = api.clock.now

    async def row() -> Any:
        async with api.client.app[DB].connect() as conn:
            query = select(tokens.c.last_used_at, tokens.c.expires_at, tokens.c.kind).where(
                tokens.c.person_id == person_id
            )
            return (await conn.execute(query)).one()

    assert (await row()).last_used_at is None
    api.clock.now += timedelta(minutes=5)
    used = api.clock.now
    assert (await api.call("GET", "/v1/me/sessions", token))[0] == 200
    found = await row()
    assert found.kind == "api"
    assert found.last_used_at == used
    assert found.expires_at == made + timedelta(days=365)
    # To the minute: a use within the minute writes nothing, a later one does.
    api.clock.now += timedelta(seconds=59)
    assert (await api.call("GET", "/v1/me/sessions", token))[0] == 200
    assert (await row()).last_used_at == used
    api.clock.now += timedelta(seconds=1)
    assert (await api.call("GET", "/v1/me/sessions", token))[0] == 200
    assert (await row()).last_used_at == api.clock.now
    # Valid up to its last second, refused from its expiry on, and its use is not noted.
    api.clock.now = made + timedelta(days=365) - timedelta(seconds=1)
    assert (await api.call("GET", "/v1/me/sessions", token))[0] == 200
    last = api.clock.now
    api.clock.now = made + timedelta(days=365)
    status, body = await api.call("GET", "/v1/me/sessions", token)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert (await row()).last_used_at == last
    # A token an admin issues (the admin's own living a year too) expires a term after
    # it was issued, the same way.
    api.clock.now = made + timedelta(days=100)
    issued = (await api.ok("POST", f"/v1/people/{person_id}/tokens"))["token"]
    assert (await api.call("GET", "/v1/me/sessions", issued))[0] == 200
    api.clock.now = made + timedelta(days=465)
    status, body = await api.call("GET", "/v1/me/sessions", issued)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")


async def test_a_sign_in_from_a_new_device_is_mailed(api: Api) -> None:
    await invited(api, "guardian", "device@example.org", agent=PHONE)
    assert await mails(api, "new_sign_in") == []
    assert (await sign_in(api, "device@example.org", agent=PHONE))[0] == 201
    assert await mails(api, "new_sign_in") == []
    assert (await sign_in(api, "device@example.org", agent=LAPTOP))[0] == 201
    ((_, message),) = await mails(api, "new_sign_in")
    assert message.to == "device@example.org"
    assert "Firefox/133.0" in message.text
    assert "127.0.0.1" in message.text
    assert "Nieuwe aanmelding" in message.subject
    assert "New sign-in" in message.subject
    assert (await sign_in(api, "device@example.org", agent=LAPTOP))[0] == 201
    assert len(await mails(api, "new_sign_in")) == 1


async def test_every_sign_in_is_on_the_record_with_device_and_address(api: Api) -> None:
    await invited(api, "guardian", "audited@example.org")
    await sign_in(api, "audited@example.org", "wrong password again", agent=LAPTOP)
    await sign_in(api, "audited@example.org", agent=LAPTOP)
    await sign_in(api, "nobody@example.org", agent=LAPTOP)
    async with api.client.app[DB].connect() as conn:
        rows = (
            await conn.execute(
                select(audit_events)
                .where(audit_events.c.action.like("signin.%"))
                .order_by(audit_events.c.seq)
            )
        ).all()
    seen = [(r.action, r.outcome, r.agent, r.ip, r.actor is not None) for r in rows]
    assert seen == [
        ("signin.invitation", "ok", PHONE, "127.0.0.1", True),
        ("signin.password", "unauthenticated", LAPTOP, "127.0.0.1", False),
        ("signin.password", "ok", LAPTOP, "127.0.0.1", True),
        ("signin.password", "unauthenticated", LAPTOP, "127.0.0.1", False),
    ]
    ok = rows[2]
    assert ok.token is not None
    assert json.loads(ok.detail)["new_device"] is True
    # The address tried is on the record only as a hash.
    assert all("example.org" not in r.detail for r in rows)


@pytest.mark.settings(server={"trusted_proxies": ("127.0.0.1",)}, auth={"max_failures": 2})
async def test_behind_a_trusted_proxy_a_session_records_the_clients_address(api: Api) -> None:
    # The test client connects from 127.0.0.1, here the trusted proxy.
    await invited(api, "guardian", "proxied@example.org", agent=PHONE)
    client = "198.51.100.7"
    status, signed = await sign_in(api, "proxied@example.org", agent=LAPTOP, forwarded_for=client)
    assert status == 201, signed
    status, listed = await api.call(
        "GET", "/v1/me/sessions", signed["token"], headers={"X-Forwarded-For": "198.51.100.8"}
    )
    assert status == 200
    # The address the session began from, not the proxy's, nor a later call's.
    assert [s["ip"] for s in listed["sessions"] if s["current"]] == [client]
    ((_, message),) = await mails(api, "new_sign_in")
    assert client in message.text
    async with api.client.app[DB].connect() as conn:
        recorded = (
            await conn.execute(
                select(audit_events.c.ip).where(
                    audit_events.c.action == "signin.password", audit_events.c.outcome == "ok"
                )
            )
        ).scalar_one()
    assert recorded == client
    # The limiter counts each client behind the proxy on its own.
    guesser = "198.51.100.9"
    for _ in range(2):
        assert (await sign_in(api, "nobody@example.org", "guess", forwarded_for=guesser))[0] == 401
    status, body = await sign_in(api, "proxied@example.org", forwarded_for=guesser)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert (await sign_in(api, "proxied@example.org", forwarded_for=client))[0] == 201


async def test_without_a_trusted_proxy_a_forwarded_address_is_not_believed(api: Api) -> None:
    await invited(api, "guardian", "direct@example.org")
    status, signed = await sign_in(api, "direct@example.org", forwarded_for="198.51.100.7")
    assert status == 201
    _, listed = await api.call("GET", "/v1/me/sessions", signed["token"])
    assert {s["ip"] for s in listed["sessions"]} == {"127.0.0.1"}


async def test_a_contract_end_date_is_mailed_to_every_guardian(api: Api) -> None:
    location = (await api.ok("POST", "/v1/locations", {"name": "L"}))["id"]
    group = (await api.ok("POST", "/v1/groups", {"location_id": location, "name": "G"}))["id"]
    child = (
        await api.ok(
            "POST",
            "/v1/children",
            {"first_name": "Noor", "last_name": "J", "birth_date": "2023-01-01", "group_id": group},
        )
    )["id"]
    for email, relation in [
        ("mum@example.org", "contract_parent"),
        ("dad@example.org", "co_parent"),
    ]:
        guardian = await person(api, "guardian", email)
        await api.ok(
            "POST",
            f"/v1/children/{child}/guardians",
            {"person_id": guardian, "relation": relation, "household": "shared"},
        )
    placement = f"/v1/children/{child}/placement"
    await api.ok("PUT", placement, {"start_date": "2024-01-01", "end_date": None})
    assert await mails(api, "contract_end") == []
    await api.ok("PUT", placement, {"start_date": "2024-01-01", "end_date": "2027-03-12"})
    sent = await mails(api, "contract_end")
    assert sorted(m.to for _, m in sent) == ["dad@example.org", "mum@example.org"]
    text = sent[0][1].text
    assert "7 mei 2027" in text
    assert "7 May 2027" in text
    assert "download" in text
    assert "/app/" in text
    assert "Noor" not in text
    assert "Noor" not in sent[0][1].html
    # The same date again tells nobody anything new; a changed one does.
    await api.ok("PUT", placement, {"start_date": "2024-01-01", "end_date": "2027-03-12"})
    assert len(await mails(api, "contract_end")) == 2
    await api.ok("PUT", placement, {"start_date": "2024-01-01", "end_date": "2027-04-01"})
    assert len(await mails(api, "contract_end")) == 4


async def test_the_new_calls_are_in_the_api_document(api: Api) -> None:
    _, document = await api.call("GET", "/openapi.json")
    paths = document["paths"]
    for path, method in [
        ("/v1/people/{id}/invitations", "post"),
        ("/v1/invitations/{token}/accept", "post"),
        ("/v1/sessions", "post"),
        ("/v1/sessions/current", "delete"),
        ("/v1/me/sessions", "get"),
        ("/v1/me/sessions/{id}", "delete"),
        ("/v1/me/totp", "post"),
        ("/v1/me/totp/confirm", "post"),
        ("/v1/me/totp", "delete"),
        ("/v1/me/password", "post"),
        ("/auth/oidc/login", "get"),
        ("/auth/oidc/callback", "get"),
    ]:
        assert method in paths[path], path
    signin = paths["/v1/sessions"]["post"]
    assert signin["security"] == []
    ref = signin["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert body["required"] == ["email", "password"]
    # A password is marked as one (clients mask it) and is never in an answer.
    assert body["properties"]["password"]["format"] == "password"
    assert body["properties"]["password"]["writeOnly"] is True
    assert "totp_required" in str(signin["responses"]["401"])
