"""The audit log through the API: what parents see, what the privacy officer
checks, what is never written down, and that nothing happens off the record."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.cli import clean_env, run
from tests.helpers.items import consent, upload
from tests.helpers.links import fetch, link, photo_of
from tests.helpers.world import World, world
from vault.api.resources import DB, SETTINGS
from vault.db.schema import audit_checkpoints, audit_events, audit_head, audit_subjects, consents


async def anna(api: Api, w: World) -> tuple[str, str]:
    """A member of staff with a full name, in the child's group."""
    anna_id, token = await api.person("staff", "Anna de Vries")
    await api.ok("POST", f"/v1/groups/{w.group}/staff", {"person_id": anna_id})
    return anna_id, token


async def audit_text(api: Api) -> str:
    """Everything the audit tables hold, as one string to search."""
    parts: list[str] = []
    async with api.client.app[DB].connect() as conn:
        for table in (audit_events, audit_subjects, audit_head, audit_checkpoints):
            for row in await conn.execute(select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


async def events(api: Api, **where: str) -> list[Any]:
    query = select(audit_events).order_by(audit_events.c.seq)
    for column, value in where.items():
        query = query.where(audit_events.c[column] == value)
    async with api.client.app[DB].connect() as conn:
        return list((await conn.execute(query)).all())


async def test_parents_see_who_looked_at_their_childs_records(api: Api) -> None:
    w = await world(api)
    anna_id, anna_token = await anna(api, w)
    await consent(api, w)
    status, item = await upload(
        api, anna_token, w.child, {"kind": "photo"}, jpeg_with_secrets(), "z.jpg"
    )
    assert status == 201
    path = await link(api, anna_token, item["id"], variant="thumb")
    assert (await fetch(api, path))[0] == 200
    # Another family's parent tries to read it.
    status, _ = await api.call("GET", f"/v1/items/{item['id']}", w.stranger_parent)
    assert status == 404

    status, log = await api.call("GET", f"/v1/children/{w.child}/access-log", w.parent)
    assert status == 200
    seen = [
        (e["actor"], e["role"], e["action"], e.get("item_id"), e["outcome"]) for e in log["events"]
    ]
    assert ("Anna", "staff", "items.create", item["id"], "ok") in seen
    assert ("Anna", "staff", "link.issue", item["id"], "ok") in seen
    assert ("Anna", "staff", "link.use", item["id"], "ok") in seen
    # Another family's parent is not named to this family; the privacy officer sees who.
    assert ("\u2014", "guardian", "items.read", item["id"], "not_found") in seen
    _, officers = await api.call("GET", f"/v1/children/{w.child}/access-log?limit=500", w.officer)
    assert ("stranger_parent", "items.read") in {
        (e["actor"], e["action"]) for e in officers["events"]
    }
    # A co-parent in a separate household sees the contract parent as the report does: unnamed.
    _, separate = await api.call(
        "GET", f"/v1/children/{w.child}/access-log?limit=500", w.co_separate
    )
    parents = [e["actor"] for e in separate["events"] if e["role"] == "guardian"]
    assert "parent" in [e["actor"] for e in log["events"]]
    assert parents
    assert "parent" not in parents
    # Newest first, role and first name only: no surname, no ids, no addresses.
    assert log["events"][0]["action"] == "items.read"
    assert "Vries" not in json.dumps(log)
    assert anna_id not in json.dumps(log)
    assert all(
        set(e) <= {"at", "actor", "role", "action", "item_id", "outcome"} for e in log["events"]
    )
    # The other child's log does not show this child's accesses.
    _, other = await api.call(
        "GET", f"/v1/children/{w.other_group_child}/access-log", w.stranger_parent
    )
    assert all(e.get("item_id") != item["id"] for e in other["events"])

    # Who may see it: guardians (any household) and the privacy officer.
    for token, expected in [
        (w.co_separate, 200),
        (w.officer, 200),
        (w.staff, 403),
        (w.manager, 403),
        (w.stranger_parent, 404),
    ]:
        status, _ = await api.call("GET", f"/v1/children/{w.child}/access-log", token)
        assert status == expected
    # Paging back.
    _, page = await api.call("GET", f"/v1/children/{w.child}/access-log?limit=2", w.parent)
    assert len(page["events"]) == 2
    _, more = await api.call(
        "GET", f"/v1/children/{w.child}/access-log?limit=2&before={page['next_before']}", w.parent
    )
    assert more["events"][0]["at"] <= page["events"][-1]["at"]
    assert (await api.call("GET", f"/v1/children/{w.child}/access-log?limit=0", w.parent))[0] == 400


async def test_logins_are_recorded_with_address_and_agent_never_the_token(api: Api) -> None:
    w = await world(api)
    wrong = "kl_0123456789abcdef." + "S" * 43
    status, _ = await api.call("GET", "/v1/children", wrong, headers={"User-Agent": "Phone/1.0"})
    assert status == 401
    failed = (await events(api, action="login"))[-1]
    assert failed.outcome == "unauthenticated"
    assert (failed.ip, failed.agent) == ("127.0.0.1", "Phone/1.0")
    assert json.loads(failed.detail) == {"token": "0123456789abcdef"}
    await api.call("GET", f"/v1/children/{w.child}", w.parent, headers={"User-Agent": "Phone/1.0"})
    ok = (await events(api, action="directory.get_child"))[-1]
    assert (ok.outcome, ok.role, ok.agent) == ("ok", "guardian", "Phone/1.0")
    assert ok.token == w.parent[3:19]
    written = await audit_text(api)
    assert "S" * 43 not in written
    for token in (w.parent, api.admin):
        assert token.split(".", 1)[1] not in written


async def test_the_privacy_officer_verifies_the_chain(api: Api) -> None:
    w = await world(api)
    status, answer = await api.call("GET", "/v1/audit/verify", w.officer)
    assert status == 200
    assert answer["ok"] is True
    assert answer["events"] > 20
    assert len(answer["head"]) == 64
    assert (await api.call("GET", "/v1/audit/verify", w.parent))[0] == 403
    assert (await api.call("GET", "/v1/audit/verify", api.admin))[0] == 403
    async with api.client.app[DB].begin() as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == 7).values(outcome="ok!")
        )
    _, answer = await api.call("GET", "/v1/audit/verify", w.officer)
    assert answer["ok"] is False
    assert (answer["problems"][0]["seq"], answer["problems"][0]["problem"]) == (7, "edited")


async def test_after_destruction_the_events_remain_and_reveal_nothing(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w, title="Noor in de zandbak")
    await consent(api, w, "diary")
    diary = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Noor heeft vandaag geschilderd"},
        w.staff,
    )
    assert (await fetch(api, await link(api, w.parent, item["id"])))[0] == 200
    answer = await api.ok(
        "POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo", "diary"]}, w.parent
    )
    assert answer["results"]["photo"]["erased"] is True
    status, _ = await api.call("POST", f"/v1/items/{item['id']}/links", w.officer, {})
    assert status == 410

    destroyed = await events(api, action="key.destroy")
    assert {json.loads(e.detail)["category"] for e in destroyed} == {"photo", "diary"}
    assert all(json.loads(e.children) == [w.child] for e in destroyed)
    _, log = await api.call("GET", f"/v1/children/{w.child}/access-log", w.parent)
    actions = {(e["action"], e.get("item_id")) for e in log["events"]}
    assert ("link.use", item["id"]) in actions
    assert ("item.store", diary["id"]) in actions
    written = await audit_text(api)
    for secret in ("Noor", "Jansen", "zandbak", "geschilderd", "Zandbak-1"):
        assert secret not in written
    assert (await api.call("GET", "/v1/audit/verify", w.officer))[1]["ok"] is True


async def test_eight_parallel_requests_keep_the_chain_linear(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    paths = [await link(api, w.parent, item["id"], variant="thumb") for _ in range(8)]
    before = len(await events(api))
    answers = await asyncio.gather(
        *(fetch(api, path) for path in paths),
        *(api.call("GET", f"/v1/children/{w.child}/items", w.staff) for _ in range(8)),
    )
    assert [a[0] for a in answers] == [200] * 16
    assert len(await events(api)) == before + 16
    seqs = [e.seq for e in await events(api)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert (await api.call("GET", "/v1/audit/verify", w.officer))[1]["ok"] is True


async def test_nothing_happens_off_the_record(api: Api) -> None:
    """With the log unwritable: no bytes, no destruction, no consent change."""
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"])
    engine = api.client.app[DB]
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))

    status, headers, body = await fetch(api, path)
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "storage_unavailable"
    assert (await api.call("DELETE", f"/v1/items/{item['id']}", w.officer))[0] == 503
    status, _ = await api.call(
        "PUT", f"/v1/children/{w.child}/consents/photo", w.parent, {"granted": False}
    )
    assert status == 503
    status, _ = await api.call("GET", f"/v1/children/{w.child}/items", w.parent)
    assert status == 503  # no listing either
    assert (await api.client.get("/healthz")).status == 200

    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    # The photo is intact and the consent unchanged.
    assert (await fetch(api, path))[0] == 200
    async with engine.connect() as conn:
        granted = (await conn.execute(select(consents.c.granted))).scalars().all()
    assert False not in granted
    assert (await api.call("GET", "/v1/audit/verify", w.officer))[1]["ok"] is True


@pytest.mark.slow  # runs the kluis command several times
async def test_the_breach_question_and_verify_from_the_command_line(
    api: Api, tmp_path: Path
) -> None:
    w = await world(api)
    anna_id, anna_token = await anna(api, w)
    item = await photo_of(api, w)
    for _ in range(3):
        await fetch(api, await link(api, anna_token, item["id"]))
    settings = api.client.app[SETTINGS]
    env = clean_env(KLUIS_DATA_DIR=str(settings.data_dir), KLUIS_DATABASE_URL=settings.database_url)
    since = (api.clock.now - timedelta(hours=1)).isoformat()
    until = (api.clock.now + timedelta(hours=1)).isoformat()
    done = run(env, "audit", "touched", "--person", anna_id, "--since", since, "--until", until)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["children"] == {w.child: 6}  # three links issued, three used
    assert answer["items"] == {item["id"]: 6}
    assert answer["actions"] == {"link.issue": 3, "link.use": 3}
    nobody = run(
        env, "audit", "touched", "--person", w.staff_id, "--since", until, "--until", until
    )
    assert json.loads(nobody.stdout)["events"] == 0

    done = run(env, "audit", "verify")
    assert done.returncode == 0
    assert "intact" in done.stdout
    async with api.client.app[DB].begin() as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    done = run(env, "audit", "verify")
    assert done.returncode == 1
    assert "at 5: missing" in done.stdout
