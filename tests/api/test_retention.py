"""Retention over simulated time: visible → archived → destroyed; holds; erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.links import fetch, link
from tests.helpers.world import World, second_child, world
from vault.api.resources import DB, KEYRING, STORE
from vault.db.schema import child_keys, destruction_certificates
from vault.retention.certificates import backup_words


async def records(api: Api, w: World) -> dict[str, Any]:
    await consent(api, w)
    await consent(api, w, "diary")
    mila, mother = await second_child(api, w)
    made: dict[str, Any] = {"mila": mila, "mother": mother}
    made["photo"] = (await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets()))[1]
    made["group"] = (
        await upload(
            api, w.staff, w.child, {"kind": "photo", "tagged_children": [mila]}, jpeg_with_secrets()
        )
    )[1]
    made["diary"] = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Fijne dag"},
        w.staff,
    )
    made["invoice"] = (await upload(api, w.administration, w.child, {"kind": "invoice"}, PDF))[1]
    return made


async def run_retention(api: Api, w: World, **body: Any) -> dict[str, Any]:
    report: dict[str, Any] = await api.ok("POST", "/v1/retention/run", body, w.officer)
    return report


async def epochs_of(api: Api, child: str) -> dict[str, str]:
    async with api.client.app[DB].connect() as conn:
        rows = (
            await conn.execute(
                select(child_keys.c.category, child_keys.c.epoch).where(
                    child_keys.c.child_id == child, child_keys.c.destroyed_at.is_(None)
                )
            )
        ).all()
    return {r.category: r.epoch for r in rows}


async def blob_count(api: Api) -> int:
    return len([k async for k in api.client.app[STORE].list()])


async def test_the_life_of_a_childs_records(api: Api) -> None:
    w = await world(api)
    made = await records(api, w)
    assert set((await epochs_of(api, w.child)).values()) == {"live-2026-11"}
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )

    schedule = await api.ok("GET", f"/v1/children/{w.child}/retention", token=w.parent)
    assert schedule["placement_end"] == "2026-11-30"
    assert schedule["categories"]["photo"] == {
        "visible_until": "2027-01-25",
        "archived_from": "2027-01-26",
        "destroy_at": "2027-11-30",
        "statutory": False,
        "hold": False,
    }
    assert schedule["categories"]["child_protection"]["destroy_at"] == "2028-11-30"
    assert schedule["categories"]["invoice"]["destroy_at"] == "2033-11-30"
    assert schedule["categories"]["invoice"]["statutory"] is True
    # The end date moved the keys into the epochs of their destruction (term + 7 days' grace).
    epochs = await epochs_of(api, w.child)
    assert epochs["photo"] == "shred-2027-12"
    assert epochs["invoice"] == "shred-2033-12"
    assert epochs["profile"] == "shred-2033-12"

    # In the window: everything still visible to the family.
    api.clock.now = datetime(2027, 1, 20, tzinfo=UTC)
    assert (await api.call("GET", f"/v1/items/{made['photo']['id']}", w.parent))[0] == 200
    # Archived: the family and staff are out, the privacy officer still reaches it.
    api.clock.now = datetime(2027, 1, 26, 8, tzinfo=UTC)
    status, body = await api.call("GET", f"/v1/items/{made['photo']['id']}", w.parent)
    assert (status, body["error"]["code"]) == (403, "outside_window")
    assert (await api.call("GET", f"/v1/items/{made['photo']['id']}", w.staff))[0] == 403
    assert (await api.call("GET", f"/v1/items/{made['photo']['id']}", w.officer))[0] == 200
    hold = await api.ok(
        "POST",
        f"/v1/children/{w.child}/holds",
        {"category": "diary", "reason": "dispute"},
        w.officer,
    )
    assert (await api.ok("GET", f"/v1/children/{w.child}/retention", token=w.officer))[
        "categories"
    ]["diary"]["hold"]

    # The day before the grace period ends nothing goes; the day after it does.
    api.clock.now = datetime(2027, 12, 6, 12, tzinfo=UTC)
    report = await run_retention(api, w)
    assert report["destroyed"] == {}
    blobs_before = await blob_count(api)
    api.clock.now = datetime(2027, 12, 7, 12, tzinfo=UTC)
    officer_link = await link(
        api, w.officer, made["photo"]["id"], ttl_seconds=3600, reason="Inzageverzoek van de moeder"
    )
    assert (await fetch(api, officer_link))[0] == 200
    report = await run_retention(api, w)
    assert report["destroyed"] == {"photo": 1}  # the group photo lives on through Mila
    assert report["archived"] == 1
    assert report["held"] == 1
    assert await blob_count(api) == blobs_before - 3  # original, preview, thumb
    assert (await fetch(api, officer_link))[0] == 410
    status, body = await api.call("GET", f"/v1/items/{made['photo']['id']}", w.officer)
    assert (status, body["error"]["code"]) == (410, "destroyed")
    listing = await api.ok("GET", f"/v1/children/{w.child}/items", token=w.officer)
    states = {i["id"]: i.get("destroyed", False) for i in listing["items"]}
    assert states[made["photo"]["id"]] is True
    assert states[made["group"]["id"]] is True  # no longer this child's: Mila's alone
    assert states[made["diary"]["id"]] is False  # held
    assert states[made["invoice"]["id"]] is False  # statutory: 7 years
    assert (await api.call("GET", f"/v1/items/{made['group']['id']}", made["mother"]))[0] == 200
    again = await run_retention(api, w)
    assert again["destroyed"] == {}  # idempotent

    # Lifting the hold lets the next run destroy the diary.
    assert (await api.call("DELETE", f"/v1/holds/{hold['id']}", w.parent))[0] == 403
    assert (await api.call("DELETE", f"/v1/holds/{hold['id']}", w.officer))[0] == 204
    assert (await api.call("DELETE", f"/v1/holds/{hold['id']}", w.officer))[0] == 404
    report = await run_retention(api, w)
    assert report["destroyed"] == {"diary": 1}

    # Once December is over, its shred epoch's master key is destroyed.
    api.clock.now = datetime(2028, 1, 1, 1, tzinfo=UTC)
    report = await run_retention(api, w)
    assert "shred-2027-12" in report["epochs_destroyed"]
    destroyed = {e.name for e in await api.client.app[KEYRING].list_keys() if e.destroyed}
    assert "shred-2027-12" in destroyed
    async with api.client.app[DB].connect() as conn:
        certificates = (await conn.execute(select(destruction_certificates))).all()
    by_category = {c.category: c for c in certificates}
    assert by_category["photo"].item_count == 2  # its own photo, and the group photo
    assert by_category["photo"].bytes > 0
    assert by_category["photo"].epoch == "shred-2027-12"
    assert by_category["diary"].cause == "retention"
    # Copies in backups go dark when December's key is gone and the keyring's
    # own backups (kept at most the 35-day window) with it.
    assert by_category["photo"].backups_dark_at == datetime(2028, 2, 5, tzinfo=UTC)
    assert by_category["photo"].key_provider == "local"
    words = backup_words(by_category["photo"], timedelta(days=35), "local")
    assert words.backups_dark_at == datetime(2028, 2, 5, tzinfo=UTC)
    assert "keys backup" in words.backups_note


async def test_erasure_requests(api: Api) -> None:
    w = await world(api)
    made = await records(api, w)
    answer = await api.ok(
        "POST",
        f"/v1/children/{w.child}/erasure",
        {"categories": ["photo", "invoice", "diary"]},
        w.parent,
    )
    assert answer["results"]["photo"] == {"erased": True}
    assert answer["results"]["diary"] == {"erased": True}
    assert answer["results"]["invoice"] == {
        "erased": False,
        "reason": "statutory_retention",
        "destroy_at": None,
    }
    assert (await api.call("GET", f"/v1/items/{made['photo']['id']}", w.parent))[0] == 410
    assert (await api.call("GET", f"/v1/items/{made['diary']['id']}", w.parent))[0] == 410
    assert (await api.call("GET", f"/v1/items/{made['invoice']['id']}", w.parent))[0] == 200
    assert (await api.call("GET", f"/v1/items/{made['group']['id']}", made["mother"]))[0] == 200
    async with api.client.app[DB].connect() as conn:
        erased = (
            await conn.execute(
                select(destruction_certificates).where(
                    destruction_certificates.c.category == "photo"
                )
            )
        ).one()
    # Erased while the contract runs: the key lived in November's live epoch,
    # which backups of November may still need for the window after it.
    assert (erased.cause, erased.epoch) == ("erasure", "live-2026-11")
    assert erased.backups_dark_at == datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=70)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-12-31"},
    )
    answer = await api.ok(
        "POST", f"/v1/children/{w.child}/erasure", {"categories": ["invoice"]}, w.officer
    )
    assert answer["results"]["invoice"]["destroy_at"] == "2033-12-31"
    for token, status, code in ((w.staff, 403, "forbidden"), (w.stranger_parent, 404, "not_found")):
        got, body = await api.call("POST", f"/v1/children/{w.child}/erasure", token, {})
        assert (got, body["error"]["code"]) == (status, code)
    assert (
        await api.call("POST", f"/v1/children/{w.child}/erasure", w.parent, {"categories": ["x"]})
    )[0] == 400


async def test_changed_dates_move_the_keys(api: Api) -> None:
    w = await world(api)
    await records(api, w)
    path = f"/v1/children/{w.child}/placement"
    await api.ok("PUT", path, {"start_date": "2024-01-01", "end_date": "2026-11-30"})
    assert (await epochs_of(api, w.child))["photo"] == "shred-2027-12"
    await api.ok("PUT", path, {"start_date": "2024-01-01", "end_date": "2027-03-31"})  # extended
    assert (await epochs_of(api, w.child))["photo"] == "shred-2028-04"
    await api.ok("PUT", path, {"start_date": "2024-01-01", "end_date": None})  # back under contract
    assert set((await epochs_of(api, w.child)).values()) == {"live-2026-11"}
    # An end date long past destroys nothing by itself; the job does, at its next run.
    await api.ok("PUT", path, {"start_date": "2020-01-01", "end_date": "2021-01-01"})
    assert "photo" in await epochs_of(api, w.child)
    dry = await run_retention(api, w, dry_run=True)
    assert dry["destroyed"]["photo"] == 1
    assert "photo" in await epochs_of(api, w.child)
    real = await run_retention(api, w)
    assert real["destroyed"]["photo"] == 1
    assert "photo" not in await epochs_of(api, w.child)


async def test_only_the_privacy_officer_runs_retention(api: Api) -> None:
    w = await world(api)
    for token in (w.parent, w.staff, w.manager, api.admin):
        status, body = await api.call("POST", "/v1/retention/run", token, {})
        assert (status, body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("POST", "/v1/retention/run", w.officer, {"now": "tomorrow"}))[0] == 400
    assert (await api.call("POST", f"/v1/children/{w.child}/holds", w.parent, {"reason": "x"}))[
        0
    ] == 403
    assert (await api.call("GET", f"/v1/children/{w.child}/retention", w.staff))[0] == 403


@pytest.mark.minio
@pytest.mark.postgres
async def test_destroyed_blobs_are_gone_from_minio(api_s3: Api) -> None:
    api = api_s3
    w = await world(api)
    await consent(api, w)
    _, photo = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
    assert await blob_count(api) == 3
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now += timedelta(days=390)  # past the term and the 7 days of grace
    report = await run_retention(api, w)
    assert report["destroyed"] == {"photo": 1}
    assert await blob_count(api) == 0
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.officer))[0] == 410


async def test_placing_a_hold_destroys_nothing_by_itself(api: Api) -> None:
    w = await world(api)
    made = await records(api, w)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2020-01-01", "end_date": "2021-01-01"},
    )
    # Photos are long past their term; only the job may destroy them, not a hold on the diary.
    await api.ok(
        "POST",
        f"/v1/children/{w.child}/holds",
        {"category": "diary", "reason": "dispute"},
        w.officer,
    )
    assert "photo" in await epochs_of(api, w.child)
    assert (await api.call("GET", f"/v1/items/{made['photo']['id']}", w.officer))[0] == 200
    report = await run_retention(api, w)
    assert report["destroyed"] == {"photo": 1}
