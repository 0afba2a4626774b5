"""A person's own data destroyed a term after nothing links them to a living
record (issue 19 item 8), on SQLite and PostgreSQL, through the API's
retention run; a real second process beside a running server below."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.helpers.accounts import accept, invitation_token, person, sign_in
from tests.helpers.api import Api
from tests.helpers.processes import initialised, kluis, kluis_env
from tests.helpers.world import World, world
from vault.api.resources import DB, KEYS
from vault.db.schema import (
    accounts,
    audit_events,
    child_keys,
    destruction_certificates,
    guardians,
    people,
    tokens,
)
from vault.directory.sealing import PERSON
from vault.keys.service import DestroyedChildKey
from vault.retention.people import _forget

NAME = "Femke Vertrekker"
EMAIL = "femke.vertrekker@example.org"
TERM = timedelta(days=730)


def stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def run(api: Api, w: World, moment: datetime) -> dict[str, Any]:
    report: dict[str, Any] = await api.ok(
        "POST", "/v1/retention/run", {"now": stamp(moment)}, w.officer
    )
    return report


async def row_of(api: Api, person_id: str) -> Any:
    async with api.client.app[DB].connect() as conn:
        return (await conn.execute(select(people).where(people.c.id == person_id))).one()


async def signed_up(api: Api, role: str, email: str = EMAIL, name: str = NAME) -> tuple[str, str]:
    """A person with an address and a password; (id, a long-lived API token)."""
    person_id = await person(api, role, email, name)
    await api.ok("POST", f"/v1/people/{person_id}/invitations")
    status, body = await accept(api, await invitation_token(api, email))
    assert status == 201, body
    token = (await api.ok("POST", f"/v1/people/{person_id}/tokens"))["token"]
    return person_id, str(token)


async def certificates_of(api: Api, owner: str) -> list[Any]:
    table = destruction_certificates
    async with api.client.app[DB].connect() as conn:
        return list((await conn.execute(select(table).where(table.c.child_id == owner))).all())


async def events(api: Api, action: str | None = None) -> list[Any]:
    query = select(audit_events).order_by(audit_events.c.seq)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    async with api.client.app[DB].connect() as conn:
        return list((await conn.execute(query)).all())


async def test_staff_off_their_last_group_are_forgotten_a_term_later(api: Api) -> None:
    w = await world(api)
    leaver, token = await signed_up(api, "staff")
    group = f"/v1/groups/{w.other_group}/staff"
    await api.ok("POST", group, {"person_id": leaver})
    assert (await row_of(api, leaver)).unlinked_at is None

    # Off the group: unlinked from that moment; back on, linked again; off again.
    api.clock.now += timedelta(days=1)
    assert (await api.call("DELETE", f"{group}/{leaver}", api.admin))[0] == 204
    assert (await row_of(api, leaver)).unlinked_at == api.clock.now
    api.clock.now += timedelta(days=10)
    await api.ok("POST", group, {"person_id": leaver})
    assert (await row_of(api, leaver)).unlinked_at is None
    api.clock.now += timedelta(days=1)
    left = api.clock.now
    assert (await api.call("DELETE", f"{group}/{leaver}", api.admin))[0] == 204
    assert (await row_of(api, leaver)).unlinked_at == left
    # A day short of the term: kept.
    await run(api, w, left + TERM - timedelta(days=1))
    assert (await row_of(api, leaver)).forgotten_at is None
    assert (await sign_in(api, EMAIL))[0] == 201

    # The term has passed: their own data is destroyed.
    acted = [e.seq for e in await events(api) if e.actor == leaver]
    assert acted  # signing up and in are on their trail
    due = left + TERM
    await run(api, w, due)
    row = await row_of(api, leaver)
    assert row.forgotten_at == due
    assert (row.profile, row.email_hash, row.sealed_block_reason) == (None, None, None)
    async with api.client.app[DB].connect() as conn:
        assert await conn.scalar(select(accounts).where(accounts.c.person_id == leaver)) is None
        live_tokens = await conn.scalar(
            select(func.count()).where(tokens.c.person_id == leaver, tokens.c.revoked_at.is_(None))
        )
        assert live_tokens == 0
        key = (
            await conn.execute(
                select(child_keys).where(
                    child_keys.c.child_id == leaver, child_keys.c.category == "person"
                )
            )
        ).one()
    assert key.destroyed_at is not None
    assert key.wrapped is None
    status, body = await api.call("GET", "/v1/me/sessions", token)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    status, body = await sign_in(api, EMAIL)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")

    # One certificate, stating when backups go dark.
    (certificate,) = await certificates_of(api, leaver)
    assert (certificate.category, certificate.cause) == ("person", "person_term")
    assert (certificate.item_count, certificate.key_id) == (0, key.id)
    assert certificate.destroyed_at == due
    assert certificate.backups_dark_at is not None
    assert certificate.backups_dark_at > due
    # On the record by id, never by name; their own trail stays.
    (forgot,) = await events(api, "person.forget")
    assert json.loads(forgot.detail)["person"] == leaver
    for event in await events(api):
        text = json.dumps([event.detail, event.children, event.agent])
        assert NAME not in text, event.action
        assert EMAIL not in text, event.action
    assert set(acted) <= {e.seq for e in await events(api) if e.actor == leaver}

    # Idempotent: a second run changes nothing.
    await run(api, w, due + timedelta(days=1))
    assert len(await certificates_of(api, leaver)) == 1
    assert len(await events(api, "person.forget")) == 1
    # A forgotten person cannot be linked again: they are no one now.
    status, body = await api.call("POST", group, api.admin, {"person_id": leaver})
    assert (status, body["error"]["code"]) == (409, "conflict")
    status, body = await api.call("POST", f"/v1/people/{leaver}/tokens", api.admin)
    assert (status, body["error"]["code"]) == (409, "conflict")

    # Who is still linked, or never subject to the term, is untouched.
    for kept in (w.staff_id, w.parent_id):
        assert (await row_of(api, kept)).forgotten_at is None
    async with api.client.app[DB].connect() as conn:
        others = (
            await conn.execute(
                select(people.c.role, people.c.unlinked_at).where(
                    people.c.role.in_(["admin", "privacy_officer", "inspector", "administration"])
                )
            )
        ).all()
    assert others
    assert all(row.unlinked_at is None for row in others)


async def test_guardians_are_kept_while_the_childs_records_live(api: Api) -> None:
    w = await world(api)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    # A year on, photos and diary are gone, the invoices (7 years) still name the parent.
    await run(api, w, datetime.fromisoformat("2028-01-10T03:00:00+00:00"))
    assert (await row_of(api, w.parent_id)).unlinked_at is None
    # Past the longest term (and its grace): the child's records are gone.
    gone = datetime.fromisoformat("2033-12-08T03:00:00+00:00")
    await run(api, w, gone)
    parent = await row_of(api, w.parent_id)
    assert (parent.unlinked_at, parent.forgotten_at) == (gone, None)
    # Its mentor still works in a group: linked.
    assert (await row_of(api, w.staff_id)).unlinked_at is None
    # The other family's child lives: its parent is linked.
    assert (await row_of(api, str(await _stranger(api, w)))).unlinked_at is None

    await run(api, w, gone + TERM - timedelta(seconds=1))
    assert (await row_of(api, w.parent_id)).forgotten_at is None
    await run(api, w, gone + TERM)
    assert (await row_of(api, w.parent_id)).forgotten_at == gone + TERM
    status, _ = await api.call("GET", "/v1/me/sessions", w.parent)
    assert status == 401
    (certificate,) = await certificates_of(api, w.parent_id)
    assert certificate.category == "person"


@pytest.mark.settings(retention={"person_term_days": 30})
async def test_the_term_is_a_setting_and_a_dry_run_forgets_no_one(api: Api) -> None:
    w = await world(api)
    leaver, _ = await signed_up(api, "location_manager")
    start = api.clock.now
    await run(api, w, start)  # never linked: unlinked from the first run that sees it
    assert (await row_of(api, leaver)).unlinked_at == start
    later = start + timedelta(days=30)
    body = {"now": stamp(later), "dry_run": True}
    await api.ok("POST", "/v1/retention/run", body, w.officer)
    assert (await row_of(api, leaver)).forgotten_at is None
    await run(api, w, later)
    assert (await row_of(api, leaver)).forgotten_at == later


async def _uncertified(conn: AsyncConnection, destroyed: list[DestroyedChildKey]) -> None:
    """What versions before session 13 did in the transaction that destroyed a
    person's key: no certificate (they wrote it in a later one)."""


async def test_a_key_an_older_version_left_uncertified_is_certified_as_of_its_destruction(
    api: Api,
) -> None:
    w = await world(api)
    leaver, _ = await signed_up(api, "staff")
    start = api.clock.now
    await run(api, w, start)  # never linked: unlinked from the first run that sees it
    # An older version's run, stopped between destroying the key and certifying it.
    due = start + TERM
    engine, keys = api.client.app[DB], api.client.app[KEYS]
    assert await _forget(engine, keys, leaver, due, start, TERM, "an-older-run")
    api.clock.now = due + timedelta(minutes=5)
    assert await keys.destroy_child_key(leaver, PERSON, _uncertified) is not None
    assert await certificates_of(api, leaver) == []

    # This version's next run, a day on, writes the missing certificate: dated
    # when the key was destroyed, its backups going dark from then.
    await run(api, w, due + timedelta(days=1))
    async with engine.connect() as conn:
        key = (
            await conn.execute(
                select(child_keys).where(
                    child_keys.c.child_id == leaver, child_keys.c.category == PERSON
                )
            )
        ).one()
    (certificate,) = await certificates_of(api, leaver)
    assert (certificate.key_id, certificate.cause, certificate.item_count) == (
        key.id,
        "person_term",
        0,
    )
    assert certificate.destroyed_at == key.destroyed_at == due + timedelta(minutes=5)
    assert certificate.backups_dark_at is not None
    assert certificate.backups_dark_at > certificate.destroyed_at
    await run(api, w, due + timedelta(days=2))
    assert len(await certificates_of(api, leaver)) == 1


async def _stranger(api: Api, w: World) -> str:
    async with api.client.app[DB].connect() as conn:
        found = await conn.scalar(
            select(guardians.c.person_id).where(guardians.c.child_id == w.other_group_child)
        )
    return str(found)


@pytest.mark.sqlite
async def test_a_run_in_a_second_process_forgets_beside_a_running_server(tmp_path: Any) -> None:
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"))
    async with initialised(env, tmp_path / "server.log") as (server, admin):
        location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
        group = (
            await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"})
        )["id"]
        made = await admin.ok("POST", "/v1/people", {"name": NAME, "email": EMAIL, "role": "staff"})
        leaver = admin.as_(made["token"])
        await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": made["id"]})
        await admin.ok("DELETE", f"/v1/groups/{group}/staff/{made['id']}")
        assert (await leaver.call("GET", "/v1/me/sessions"))[0] == 200

        due = stamp(datetime.now().astimezone() + TERM + timedelta(days=1))
        for _ in range(2):  # the second run finds nothing left to do
            status, out, err = await kluis(env, "retention", "run", "--now", due)
            assert status == 0, err
        # The running server refuses the forgotten person at once.
        status, body = await leaver.call("GET", "/v1/me/sessions")
        assert (status, body["error"]["code"]) == (401, "unauthenticated")
        status, body = await admin.call(
            "POST", f"/v1/groups/{group}/staff", {"person_id": made["id"]}
        )
        assert status == 409, body
    assert server.server_errors() == []
    status, out, err = await kluis(env, "retention", "certificates", made["id"])
    assert status == 0, err
    (line,) = out.strip().splitlines()
    certificate = json.loads(line)
    assert (certificate["category"], certificate["items"], certificate["cause"]) == (
        "person",
        0,
        "person_term",
    )
    status, out, err = await kluis(env, "audit", "verify")
    assert status == 0, out + err
