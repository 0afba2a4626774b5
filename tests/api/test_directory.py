"""The directory, consent and authentication through the API, as clients use it."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.helpers.api import Api
from tests.helpers.world import world
from vault.api.resources import DB
from vault.db.schema import auth_failures


async def test_admin_builds_the_directory_and_the_child_is_seen_by_the_related(api: Api) -> None:
    w = await world(api)
    for token in (api.admin, w.parent, w.co_separate, w.staff, w.manager, w.officer, w.inspector):
        status, body = await api.call("GET", f"/v1/children/{w.child}", token)
        assert status == 200, body
        assert (body["first_name"], body["last_name"], body["birth_date"]) == (
            "Noor",
            "Jansen",
            "2023-04-02",
        )
        assert body["placement"] == {"start_date": "2024-01-01", "end_date": None}
    for token in (w.other_staff, w.stranger_parent):
        status, body = await api.call("GET", f"/v1/children/{w.child}", token)
        assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await api.call("GET", "/v1/children/00000000000000000000000000000000", w.staff)
    assert (status, body["error"]["code"]) == (404, "not_found")  # same answer: no oracle


async def test_the_childs_name_is_not_in_the_database_in_clear(api: Api) -> None:
    w = await world(api)
    rows: list[Any] = []
    async with api.client.app[DB].connect() as conn:
        for table in ("children", "people", "guardians", "care_groups", "child_keys"):
            result = await conn.execute(text(f"SELECT * FROM {table}"))
            rows.extend(repr(row) for row in result.all())
    dumped = " ".join(rows)
    engine_url = api.client.app[DB].url
    if engine_url.get_backend_name() == "sqlite":
        # The raw file and its write-ahead log, as a backup would copy them.
        database = Path(str(engine_url.database))
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                dumped += path.read_bytes().decode("latin-1")
    assert w.child in dumped
    assert "Noor" not in dumped
    assert "Jansen" not in dumped
    assert "2023-04-02" not in dumped


async def test_only_the_admin_manages_the_directory(api: Api) -> None:
    w = await world(api)
    for token in (w.staff, w.manager, w.officer, w.parent):
        status, body = await api.call("POST", "/v1/people", token, {"name": "X", "role": "staff"})
        assert (status, body["error"]["code"]) == (403, "forbidden")
        status, body = await api.call("POST", "/v1/locations", token, {"name": "Y"})
        assert status == 403


async def test_tokens_are_checked_revocable_and_reissued(api: Api) -> None:
    w = await world(api)
    person_id, token = await api.person("staff", "Tablet")
    await api.ok("POST", f"/v1/groups/{w.group}/staff", {"person_id": person_id})
    assert (await api.call("GET", f"/v1/children/{w.child}", token))[0] == 200
    for bad in (
        None,
        "kl_0000000000000000.abc",
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        "garbage",
    ):
        status, body = await api.call("GET", f"/v1/children/{w.child}", bad)
        assert (status, body["error"]["code"]) == (401, "unauthenticated")
    status, body = await api.call(
        "GET", f"/v1/children/{w.child}", headers={"Authorization": f"Basic {token}"}
    )
    assert status == 401
    await api.ok("DELETE", f"/v1/people/{person_id}/tokens")
    assert (await api.call("GET", f"/v1/children/{w.child}", token))[0] == 401
    fresh = (await api.ok("POST", f"/v1/people/{person_id}/tokens"))["token"]
    assert fresh != token
    assert (await api.call("GET", f"/v1/children/{w.child}", fresh))[0] == 200
    assert (await api.call("POST", "/v1/people/nobody/tokens", api.admin))[0] == 404


async def test_a_blocked_account_gets_blocked_on_every_call(api: Api) -> None:
    w = await world(api)
    await api.ok("POST", f"/v1/people/{w.parent_id}/block", {"reason": "identity in doubt"})
    for method, path in [
        ("GET", f"/v1/children/{w.child}"),
        ("GET", f"/v1/children/{w.child}/consents"),
        ("GET", "/v1/children/does-not-exist"),
        ("PUT", f"/v1/children/{w.child}/consents/photo"),
    ]:
        status, body = await api.call(method, path, w.parent, {"granted": True})
        assert (status, body["error"]["code"]) == (403, "blocked"), path
    # The co-parents' access follows the contract parent's.
    status, body = await api.call("GET", f"/v1/children/{w.child}", w.co_shared)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    await api.ok("DELETE", f"/v1/people/{w.parent_id}/block")
    assert (await api.call("GET", f"/v1/children/{w.child}", w.parent))[0] == 200
    assert (await api.call("GET", f"/v1/children/{w.child}", w.co_shared))[0] == 200


async def test_repeated_failures_from_one_address_are_rate_limited(api: Api) -> None:
    w = await world(api)
    headers = {"User-Agent": "brute/1.0"}
    for _ in range(10):
        status, _ = await api.call(
            "GET", f"/v1/children/{w.child}", "kl_0000000000000000.x", headers=dict(headers)
        )
        assert status == 401
    status, body = await api.call(
        "GET", f"/v1/children/{w.child}", "kl_0000000000000000.y", headers=dict(headers)
    )
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    response = await api.client.get(
        f"/v1/children/{w.child}", headers={"Authorization": "Bearer nope"}
    )
    assert 0 < int(response.headers["Retry-After"]) <= 901
    # A valid token from the same address still works.
    assert (await api.call("GET", f"/v1/children/{w.child}", w.staff))[0] == 200
    async with api.client.app[DB].connect() as conn:
        rows = (await conn.execute(select(auth_failures))).all()
    assert len(rows) == 12
    assert {r.user_agent for r in rows} >= {"brute/1.0"}
    assert all(r.ip == "127.0.0.1" for r in rows)
    assert not any("kl_0000000000000000" in repr(r) for r in rows)
    # The window passes: the address may try again.
    api.clock.now += timedelta(minutes=16)
    status, _ = await api.call("GET", f"/v1/children/{w.child}", "kl_0000000000000000.z")
    assert status == 401


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"name": "Piet", "role": "guardian", "bsn": "111222333"}, "/v1/people"),
        ({"name": "Piet", "role": "guardian", "BurgerServiceNummer": "x"}, "/v1/people"),
        ({"name": "Piet 111222333", "role": "guardian"}, "/v1/people"),
        ({"name": "Piet", "role": "guardian", "email": "111.222.333@example.org"}, "/v1/people"),
        ({"name": "111 22 23 33"}, "/v1/locations"),
    ],
)
async def test_a_bsn_is_never_stored(api: Api, body: dict[str, str], where: str) -> None:
    status, answer = await api.call("POST", where, api.admin, body)
    assert (status, answer["error"]["code"]) == (422, "bsn_not_stored")
    assert "111222333" not in answer["error"]["message"]


async def test_numbers_that_are_no_bsn_pass(api: Api) -> None:
    for name in ("Groep 123456789", "Tel 0612345678", "Kamer 12"):
        status, _ = await api.call("POST", "/v1/locations", api.admin, {"name": name})
        assert status == 201, name


async def test_a_bsn_in_a_child_is_refused_and_nothing_is_created(api: Api) -> None:
    w = await world(api)
    status, _ = await api.call(
        "POST",
        "/v1/children",
        api.admin,
        {
            "first_name": "A",
            "last_name": "B",
            "birth_date": "2023-01-01",
            "group_id": w.group,
            "sofinummer": "1",
        },
    )
    assert status == 422
    async with api.client.app[DB].connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM children")) == 2


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "/v1/people", {"name": "A", "role": "wizard"}, "role"),
        ("POST", "/v1/people", {"name": "", "role": "staff"}, "name"),
        ("POST", "/v1/people", {"role": "staff"}, "name"),
        ("POST", "/v1/people", {"name": "A", "role": "staff", "colour": "red"}, "colour"),
        ("POST", "/v1/people", {"name": "A", "role": "staff", "email": "not-an-address"}, "email"),
        ("POST", "/v1/people", [1, 2], "object"),
        (
            "POST",
            "/v1/children",
            {"first_name": "A", "last_name": "B", "birth_date": "21-11-2026", "group_id": "g"},
            "birth_date",
        ),
        (
            "POST",
            "/v1/children",
            {"first_name": "A", "last_name": "B", "birth_date": "2099-01-01", "group_id": "g"},
            "future",
        ),
    ],
)
async def test_bad_input_is_refused_clearly(
    api: Api, method: str, path: str, body: object, message: str
) -> None:
    status, answer = await api.call(method, path, api.admin, body)
    assert (status, answer["error"]["code"]) == (400, "invalid_input")
    assert message in answer["error"]["message"]


async def test_malformed_and_oversized_bodies(api: Api) -> None:
    response = await api.client.post(
        "/v1/people",
        data=b"{not json",
        headers={"Authorization": f"Bearer {api.admin}", "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_input"
    response = await api.client.post(
        "/v1/locations",
        data=io.BytesIO(b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
        headers={"Authorization": f"Bearer {api.admin}", "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    assert (await api.client.get("/healthz")).status == 200  # still up


async def test_directory_rules_on_relations(api: Api) -> None:
    w = await world(api)
    staff_id, _ = await api.person("staff")
    guardian_id, _ = await api.person("guardian")
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/guardians",
        api.admin,
        {"person_id": staff_id, "relation": "co_parent", "household": "shared"},
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api.call(
        "PUT", f"/v1/children/{w.child}/mentor", api.admin, {"person_id": guardian_id}
    )
    assert status == 400
    status, body = await api.call(
        "POST",
        f"/v1/children/{w.child}/guardians",
        api.admin,
        {"person_id": guardian_id, "relation": "contract_parent", "household": "separate"},
    )
    assert status == 400
    link = {"person_id": guardian_id, "relation": "co_parent", "household": "shared"}
    assert (await api.call("POST", f"/v1/children/{w.child}/guardians", api.admin, link))[0] == 204
    assert (await api.call("POST", f"/v1/children/{w.child}/guardians", api.admin, link))[0] == 204
    link["household"] = "separate"
    status, body = await api.call("POST", f"/v1/children/{w.child}/guardians", api.admin, link)
    assert (status, body["error"]["code"]) == (409, "conflict")
    status, body = await api.call(
        "PUT",
        f"/v1/children/{w.child}/placement",
        api.admin,
        {"start_date": "2025-01-01", "end_date": "2024-12-31"},
    )
    assert status == 400
    status, body = await api.call(
        "PUT",
        "/v1/children/nope/placement",
        api.admin,
        {"start_date": "2025-01-01", "end_date": None},
    )
    assert status == 404
    status, body = await api.call(
        "POST", "/v1/groups", api.admin, {"location_id": "nope", "name": "G"}
    )
    assert status == 404


async def test_consent_ledger(api: Api) -> None:
    w = await world(api)
    assert (
        await api.ok("PUT", f"/v1/children/{w.child}/consents/photo", {"granted": True}, w.parent)
    )["granted"]
    api.clock.now += timedelta(days=3)
    changed = await api.ok(
        "PUT", f"/v1/children/{w.child}/consents/photo", {"granted": False}, w.co_separate
    )
    assert changed == {"type": "photo", "granted": False, "changed_at": "2026-11-24T09:00:00Z"}
    await api.ok("PUT", f"/v1/children/{w.child}/consents/diary", {"granted": True}, w.parent)
    for reader in (w.parent, w.staff, w.officer, w.manager):
        body = await api.ok("GET", f"/v1/children/{w.child}/consents", token=reader)
        assert body["current"] == {
            "photo": False,
            "diary": True,
            "external_publication": False,
            "school_handover": False,
        }
        assert [(h["type"], h["granted"], h["by"]) for h in body["history"]] == [
            ("photo", True, w.parent_id),
            ("photo", False, body["history"][1]["by"]),
            ("diary", True, w.parent_id),
        ]
        assert body["history"][1]["by"] != w.parent_id
    for outsider, code in (
        (w.administration, "forbidden"),
        (w.inspector, "forbidden"),
        (w.other_staff, "not_found"),
    ):
        status, body = await api.call("GET", f"/v1/children/{w.child}/consents", outsider)
        assert body["error"]["code"] == code
    for token, code in (
        (w.staff, "forbidden"),
        (w.officer, "forbidden"),
        (w.stranger_parent, "not_found"),
    ):
        status, body = await api.call(
            "PUT", f"/v1/children/{w.child}/consents/photo", token, {"granted": True}
        )
        assert body["error"]["code"] == code
    status, body = await api.call(
        "PUT", f"/v1/children/{w.child}/consents/tattoo", w.parent, {"granted": True}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api.call(
        "PUT", f"/v1/children/{w.child}/consents/photo", w.parent, {"granted": "yes"}
    )
    assert status == 400


async def test_after_the_window_the_records_are_archived(api: Api) -> None:
    w = await world(api)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now += timedelta(days=9 + 7 * 8 + 1)  # the day after the eight weeks
    status, body = await api.call("GET", f"/v1/children/{w.child}", w.parent)
    assert (status, body["error"]["code"]) == (403, "outside_window")
    status, body = await api.call(
        "PUT", f"/v1/children/{w.child}/consents/photo", w.parent, {"granted": True}
    )
    assert body["error"]["code"] == "outside_window"
    # Withdrawing is possible at any time.
    status, body = await api.call(
        "PUT", f"/v1/children/{w.child}/consents/photo", w.parent, {"granted": False}
    )
    assert status == 200
    assert (await api.call("GET", f"/v1/children/{w.child}", w.officer))[0] == 200
    assert (await api.call("GET", f"/v1/children/{w.child}", api.admin))[0] == 200


async def test_an_id_with_nine_digits_inside_is_no_bsn(api: Api) -> None:
    """Random hex ids can hold a run of digits that passes the eleven-test."""
    w = await world(api)
    lookalike = "ab111222333cd" + "0" * 19
    status, body = await api.call(
        "POST", f"/v1/groups/{w.group}/staff", api.admin, {"person_id": lookalike}
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
