"""Rectification of records (API.md 1.1): ``PATCH /v1/items/{id}`` and
``PUT /v1/items/{id}/file``, who may and may not, bad input, the audit
events, and that nothing of a replaced version stays readable.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, text

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api, start
from tests.helpers.certificates import certify
from tests.helpers.items import consent, stored, upload
from tests.helpers.world import World, second_child, world
from vault.api.resources import DB, KEYRING, KEYS, STORE
from vault.audit.log import AuditLog
from vault.config import DatabaseSettings, Settings
from vault.crypto import IntegrityError
from vault.crypto.stream import decrypt_range
from vault.db import create_engine
from vault.db.schema import audit_events, item_blobs
from vault.keys.provider import audit_sign
from vault.keys.rotation import rotate
from vault.keys.service import KeyDestroyed, KeyService

TITLE = "Noor bij de zandbak"
NEW_TITLE = "Noor en Mila bouwen een kasteel"


async def _photo(api: Api, w: World, token: str | None = None) -> dict[str, Any]:
    await consent(api, w)
    status, item = await upload(
        api, token or w.staff, w.child, {"kind": "photo", "title": TITLE}, jpeg_with_secrets()
    )
    assert status == 201, item
    return dict(item)


async def _events(api: Api, action: str) -> list[Any]:
    async with api.client.app[DB].connect() as conn:
        query = select(audit_events).where(audit_events.c.action == action)
        return list((await conn.execute(query.order_by(audit_events.c.seq))).all())


async def _audit_text(api: Api) -> str:
    async with api.client.app[DB].connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM audit_events"))).all()
    return "\n".join(str(value) for row in rows for value in row)


def _file(data: bytes, name: str = "nieuw.jpg") -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename=name, content_type="application/octet-stream")
    return body


async def test_staff_correct_a_photos_title_and_date(api: Api) -> None:
    w = await world(api)
    item = await _photo(api, w)
    assert (item["version"], item["updated_at"]) == (1, None)
    api.clock.now += timedelta(minutes=5)
    status, body = await api.call(
        "PATCH",
        f"/v1/items/{item['id']}",
        w.staff,
        {"title": NEW_TITLE, "taken_at": "2026-11-20"},
    )
    assert status == 200, body
    assert (body["title"], body["taken_at"], body["version"]) == (NEW_TITLE, "2026-11-20", 1)
    assert body["updated_at"] == api.clock.now.isoformat().replace("+00:00", "Z")
    assert body["variants"] == item["variants"]
    shown = await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent)
    assert (shown["title"], shown["taken_at"]) == (NEW_TITLE, "2026-11-20")
    # An empty title removes it.
    status, body = await api.call("PATCH", f"/v1/items/{item['id']}", w.staff, {"title": ""})
    assert status == 200
    assert "title" not in body
    # The record says who changed which field, never a value.
    events = await _events(api, "items.rectify")
    assert [e.outcome for e in events] == ["ok", "ok"]
    assert json.loads(events[0].detail)["fields"] == ["taken_at", "title"]
    assert events[0].actor == w.staff_id
    assert w.child in json.loads(events[0].children)
    audit = await _audit_text(api)
    assert NEW_TITLE not in audit
    assert TITLE not in audit


async def test_who_may_correct_a_record(api: Api) -> None:
    w = await world(api)
    item = await _photo(api, w)
    path = f"/v1/items/{item['id']}"
    change = {"title": "Anders"}
    for token, status, code in [
        (w.parent, 403, "forbidden"),  # guardians read it; they ask for a correction instead
        (w.co_shared, 403, "forbidden"),
        (w.other_staff, 404, "not_found"),  # another group: not theirs to see
        (w.stranger_parent, 404, "not_found"),
        (w.administration, 404, "not_found"),  # not a kind administration reads
        (w.inspector, 404, "not_found"),
    ]:
        got, body = await api.call("PATCH", path, token, change)
        assert (got, body["error"]["code"]) == (status, code), token
        got, body = await api.call("PUT", f"{path}/file", token, data=_file(jpeg_with_secrets()))
        assert (got, body["error"]["code"]) == (status, code), token
    for token in (w.staff, w.manager, w.officer):
        assert (await api.call("PATCH", path, token, change))[0] == 200
    refused = await _events(api, "items.rectify")
    assert {e.outcome for e in refused} == {"forbidden", "not_found", "ok"}
    # Unknown records are 404 as well.
    assert (await api.call("PATCH", "/v1/items/" + "0" * 32, w.staff, change))[0] == 404


async def test_bad_corrections_are_refused_and_change_nothing(api: Api) -> None:
    w = await world(api)
    item = await _photo(api, w)
    path = f"/v1/items/{item['id']}"
    for body, status, code in [
        ({}, 400, "invalid_input"),
        ({"colour": "red"}, 400, "invalid_input"),
        ({"text": "Vandaag"}, 400, "invalid_input"),  # a diary entry's field
        ({"taken_at": "gisteren"}, 400, "invalid_input"),
        ({"title": "BSN 111222333 van Noor"}, 422, "bsn_not_stored"),
        ({"tagged_children": ["0" * 32]}, 404, "not_found"),
    ]:
        got, answer = await api.call("PATCH", path, w.staff, body)
        assert (got, answer["error"]["code"]) == (status, code), body
    shown = await api.ok("GET", path, token=w.staff)
    assert (shown["title"], shown["updated_at"]) == (TITLE, None)


async def test_a_diary_entry_is_corrected_as_a_new_version(api: Api) -> None:
    w = await world(api)
    await consent(api, w, "diary")
    status, entry = await api.call(
        "POST",
        f"/v1/children/{w.child}/items",
        w.staff,
        {"kind": "diary", "date": "2026-11-21", "text": "Noor heeft goed geslapen."},
    )
    assert status == 201, entry
    path = f"/v1/items/{entry['id']}"
    old_blob = (await _blob_keys(api, entry["id"]))["original"]
    got, body = await api.call("PATCH", path, w.staff, {"text": "Noor heeft slecht geslapen."})
    assert got == 200, body
    assert (body["text"], body["version"]) == ("Noor heeft slecht geslapen.", 2)
    assert await stored(api, entry["id"], "original") == b"Noor heeft slecht geslapen."
    assert old_blob not in [k async for k in api.client.app[STORE].list()]
    refused: list[dict[str, object]] = [{"title": "Dag"}, {"tagged_children": []}, {"text": "  "}]
    for bad in refused:
        assert (await api.call("PATCH", path, w.staff, bad))[0] == 400, bad
    assert (await api.call("PUT", f"{path}/file", w.staff, data=_file(b"x")))[0] == 400


async def test_tagging_a_child_is_adding_a_record_for_it(api: Api) -> None:
    w = await world(api)
    item = await _photo(api, w)
    path = f"/v1/items/{item['id']}"
    mila, mother = await second_child(api, w)
    assert (await api.call("GET", path, mother))[0] == 404
    got, body = await api.call("PATCH", path, w.staff, {"tagged_children": [mila]})
    assert got == 200, body
    assert sorted(body["children"]) == sorted([w.child, mila])
    assert (await api.call("GET", path, mother))[0] == 200
    # Untagged: her mother loses it at once; the posted child cannot be untagged.
    got, body = await api.call("PATCH", path, w.staff, {"tagged_children": []})
    assert (got, body["children"]) == (200, [w.child])
    assert (await api.call("GET", path, mother))[0] == 404
    # A child without photo consent cannot be tagged; one of another group is not found.
    await api.ok("PUT", f"/v1/children/{mila}/consents/photo", {"granted": False}, mother)
    got, body = await api.call("PATCH", path, w.staff, {"tagged_children": [mila]})
    assert (got, body["error"]["code"]) == (403, "consent_missing")
    got, body = await api.call("PATCH", path, w.staff, {"tagged_children": [w.other_group_child]})
    assert (got, body["error"]["code"]) == (404, "not_found")


async def _blob_keys(api: Api, item_id: str) -> dict[str, str]:
    async with api.client.app[DB].connect() as conn:
        rows = await conn.execute(
            select(item_blobs.c.variant, item_blobs.c.blob_key).where(
                item_blobs.c.item_id == item_id
            )
        )
        return {r.variant: r.blob_key for r in rows}


async def test_a_replaced_photo_is_a_new_version_and_the_old_one_is_gone(api: Api) -> None:
    w = await world(api)
    item = await _photo(api, w)
    path = f"/v1/items/{item['id']}"
    old = await _blob_keys(api, item["id"])
    got, body = await api.call(
        "PUT", f"{path}/file", w.staff, data=_file(jpeg_with_secrets(96, 48), "beter.jpg")
    )
    assert got == 200, body
    assert (body["version"], body["width"], body["height"]) == (2, 48, 96)  # turned upright
    assert (body["title"], body["file_name"]) == (TITLE, "beter.jpg")
    assert body["variants"] == ["original", "preview", "thumb"]
    new = await _blob_keys(api, item["id"])
    assert set(new) == set(old)
    assert not set(new.values()) & set(old.values())
    left = [k async for k in api.client.app[STORE].list()]
    assert not set(old.values()) & set(left)
    assert (await api.ok("GET", path, token=w.parent))["width"] == 48
    events = await _events(api, "items.replace_file")
    assert [(e.outcome, json.loads(e.detail)["version"]) for e in events] == [("ok", 2)]
    # Not a photo: refused by its bytes, nothing changed.
    got, body = await api.call("PUT", f"{path}/file", w.staff, data=_file(b"%PDF-1.7\n..."))
    assert got == 415, body
    assert await _blob_keys(api, item["id"]) == new
    got, body = await api.call("PUT", f"{path}/file", w.staff, json={"file": "x"})
    assert (got, body["error"]["code"]) == (400, "invalid_input")


@pytest.mark.localdisk
async def test_a_replaced_photo_is_unreadable_from_a_copy_taken_before(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> None:
    """Copies of the database and the blobs taken before a replacement: the
    live vault holds nothing that opens the old version at once, and the
    copies open it no longer once the backup window has passed (as for any
    destruction, docs/crypto.md), while the new version stays readable."""
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api = await start(settings, aiohttp_client)
    w = await world(api)
    item = await _photo(api, w)
    app = api.client.app
    old_original = await stored(api, item["id"], "original")
    old_blobs = await _blob_keys(api, item["id"])

    # The copy: the database (VACUUM INTO / pg_dump-like copy) and the blob directory.
    copy_url = await _copy_database(db_url, tmp_path, request)
    shutil.copytree(tmp_path / "data" / "blobs", tmp_path / "copy-blobs")

    got, body = await api.call(
        "PUT", f"/v1/items/{item['id']}/file", w.staff, data=_file(jpeg_with_secrets(96, 48))
    )
    assert got == 200, body
    # The live vault: the old blobs are gone and its key opens only the new version.
    live_key = await app[KEYS].open_item_key(item["id"])
    old_cipher = (tmp_path / "copy-blobs").rglob(old_blobs["original"])
    old_path = next(iter(old_cipher))
    with pytest.raises(IntegrityError):
        await _decrypt(live_key, item["id"], old_path.read_bytes())
    assert await stored(api, item["id"], "original") != old_original

    # Before the window passes the copy still restores (that is what it is for)...
    old_engine = create_engine(copy_url)
    provider = app[KEYRING]
    clock = api.clock
    try:
        old_keys = KeyService(
            old_engine, provider, AuditLog(old_engine, audit_sign(provider), clock)
        )
        old_key = await old_keys.open_item_key(item["id"])
        assert await _decrypt(old_key, item["id"], old_path.read_bytes()) == old_original
        # ...and after it no longer: the live epoch the copy's keys are under is destroyed.
        window = timedelta(days=settings.crypto.backup_window_days)
        start_at = clock.now
        for months in (1, 2):
            clock.now = start_at + timedelta(days=31 * months + 5)
            await rotate(
                app[KEYS], provider, clock.now, window, certify=certify(clock.now, "epoch")
            )
        with pytest.raises(KeyDestroyed):
            await old_keys.open_item_key(item["id"])
    finally:
        await old_engine.dispose()
    # The live vault still reads the new version.
    assert (await api.ok("GET", f"/v1/items/{item['id']}", token=w.parent))["width"] == 48
    assert await stored(api, item["id"], "original") != old_original


async def _decrypt(key: Any, item_id: str, blob: bytes) -> bytes:
    async def read(offset: int, length: int) -> Any:
        yield blob[offset : offset + length]

    return b"".join([p async for p in decrypt_range(key, item_id, "original", read, len(blob))])


async def _copy_database(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A copy of the database as it is now, as a backup would take it; its URL."""
    if db_url.startswith("sqlite"):
        target = tmp_path / "copy.db"
        engine = create_engine(db_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f"VACUUM INTO '{target}'"))
        finally:
            await engine.dispose()
        return f"sqlite+aiosqlite:///{target}"
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    pg = ["-h127.0.0.1", f"-p{server.port}", f"-U{server.user}"]
    dumped = await asyncio.to_thread(
        subprocess.run,
        [f"{server.bindir}/pg_dump", *pg, db_url.rsplit("/", 1)[1]],
        check=True,
        capture_output=True,
    )
    await asyncio.to_thread(
        subprocess.run,
        [f"{server.bindir}/psql", *pg, "-q", "-v", "ON_ERROR_STOP=1", url.rsplit("/", 1)[1]],
        input=dumped.stdout,
        check=True,
        capture_output=True,
        env={**os.environ, "PGOPTIONS": "--client-min-messages=warning"},
    )
    return url
