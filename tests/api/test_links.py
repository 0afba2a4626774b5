"""Signed links and delivery: Range, caching, and revocation at the moment of use."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
import pyvips
from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.sql import Executable

from tests.files import MP4_HEAD, jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, stored, upload
from tests.helpers.links import fetch, link, photo_of
from tests.helpers.polling import eventually
from tests.helpers.world import second_child, world
from vault.api.resources import DB, KEYRING, SIGNING
from vault.db import create_engine
from vault.db.schema import FACT_TABLES, child_keys, guardians, item_keys, people
from vault.keys import signing
from vault.keys.local import LocalKeyring
from vault.share.at_use import link_facts


async def test_a_link_serves_the_variant_with_safe_headers(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    answer = await api.ok("POST", f"/v1/items/{item['id']}/links", {"variant": "thumb"}, w.parent)
    assert answer["url"].startswith("http://127.0.0.1:")
    path = urlsplit(answer["url"]).path
    assert path.startswith("/l/")
    status, headers, body = await fetch(api, path)
    assert status == 200
    assert body == await stored(api, item["id"], "thumb")
    assert pyvips.Image.jpegload_buffer(body).width <= 320
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Length"] == str(len(body))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Cache-Control"] == "private, no-cache"  # ask again before showing it
    assert (
        headers["Content-Disposition"]
        == "inline; filename=\"Zandbak-1-thumb.jpg\"; filename*=UTF-8''Zandbak-1-thumb.jpg"
    )
    # HEAD: the same headers, no body; If-None-Match: 304.
    status, head_headers, head_body = await fetch(api, path, "HEAD")
    assert (status, head_body, head_headers["Content-Length"], head_headers["ETag"]) == (
        200,
        b"",
        str(len(body)),
        headers["ETag"],
    )
    status, _, body304 = await fetch(api, path, **{"If-None-Match": headers["ETag"]})
    assert (status, body304) == (304, b"")


async def test_ranges(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"], disposition="attachment")
    whole = await stored(api, item["id"], "original")
    size = len(whole)
    for header, expected in [
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, size)),
        ("bytes=-50", (size - 50, size)),
        (f"bytes=10-{size + 500}", (10, size)),
        (f"bytes={size - 1}-{size - 1}", (size - 1, size)),
    ]:
        status, headers, body = await fetch(api, path, Range=header)
        assert status == 206, header
        assert body == whole[expected[0] : expected[1]]
        assert headers["Content-Range"] == f"bytes {expected[0]}-{expected[1] - 1}/{size}"
        assert headers["Content-Disposition"].startswith("attachment;")
    status, headers, _ = await fetch(api, path, Range=f"bytes={size}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")
    status, _, body = await fetch(api, path, Range="bytes=0-1,5-6")
    assert (status, body) == (200, whole)  # several ranges: the whole thing
    status, _, body = await fetch(api, path, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert (status, body) == (200, whole)


@pytest.mark.slow
async def test_a_200mb_video_plays_with_random_seeks(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    block = random.Random(7).randbytes(1 << 20)
    size = 200 * (1 << 20)

    async def video() -> AsyncIterator[bytes]:
        yield MP4_HEAD
        for _ in range(200):
            yield block

    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, video(), "film.mp4")
    assert status == 201, item
    total = size + len(MP4_HEAD)
    path = await link(api, w.parent, item["id"], ttl_seconds=3600)
    whole = MP4_HEAD + block * 200  # once: a copy of 200 MB per seek took seconds
    rng = random.Random(11)
    for _ in range(60):
        start = rng.randrange(0, total)
        length = rng.choice([1, 17, 65536, 65537, 1 << 20, 3 << 20])
        end = min(total, start + length)
        status, headers, body = await fetch(api, path, Range=f"bytes={start}-{end - 1}")
        assert status == 206
        assert body == whole[start:end]
    status, headers, _ = await fetch(api, path, "HEAD")
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Length"] == str(total)


async def test_tampered_links_are_refused(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"])
    token = path.removeprefix("/l/")
    other = (await link(api, w.parent, item["id"], variant="thumb")).removeprefix("/l/")
    rng = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    mutants = {token[:-1], token[1:], token + "A", "", "x", token.replace(".", "", 1)}
    # The signature follows the last dot (a compressed payload starts with one).
    payload, signature = token.rsplit(".", 1)
    other_payload, other_signature = other.rsplit(".", 1)
    mutants |= {f"{other_payload}.{signature}", f"{payload}.{other_signature}"}
    while len(mutants) < 300:
        i = rng.randrange(len(token))
        mutants.add(token[:i] + rng.choice(alphabet.replace(token[i], "")) + token[i + 1 :])
    mutants.discard(token)
    # All at once, as a flood of forged links comes: each waits for the one
    # read of the secrets they share (vault/keys/signing.py), not a second each.
    answers = await asyncio.gather(*(fetch(api, f"/l/{mutant}") for mutant in mutants))
    original = await stored(api, item["id"], "original")
    for mutant, (status, _, body) in zip(mutants, answers, strict=True):
        assert status in (403, 404), mutant  # 404: no token at all in the path
        assert body != original
    assert (await fetch(api, path))[0] == 200  # the genuine link still works
    assert (await fetch(api, "/h/" + token))[0] == 403  # another purpose's path


async def test_link_issuing_rules(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    answer = await api.ok(
        "POST", f"/v1/items/{item['id']}/links", {"ttl_seconds": 999_999}, w.parent
    )
    expires = answer["expires_at"]
    assert expires == (api.clock.now + timedelta(seconds=3600)).isoformat().replace("+00:00", "Z")
    for body, status in [
        ({"variant": "poster"}, 400),
        ({"ttl_seconds": 0}, 400),
        ({"disposition": "download"}, 400),
    ]:
        assert (await api.call("POST", f"/v1/items/{item['id']}/links", w.parent, body))[
            0
        ] == status
    assert (await api.call("POST", f"/v1/items/{item['id']}/links", w.other_staff, {}))[0] == 404
    assert (await api.call("POST", "/v1/items/nothing/links", w.parent, {}))[0] == 404
    assert (await api.call("POST", f"/v1/items/{item['id']}/links", None, {}))[0] == 401


async def test_a_timeline_asks_for_many_thumbnails_at_once(api: Api) -> None:
    w = await world(api)
    made = [await photo_of(api, w) for _ in range(5)]
    wanted = [{"item_id": m["id"], "variant": "thumb"} for m in made]
    wanted += [{"item_id": "missing"}, {"item_id": made[0]["id"], "variant": "original"}]
    answer = await api.ok("POST", "/v1/links", {"items": wanted}, w.parent)
    links = answer["links"]
    assert [entry["item_id"] for entry in links] == [e["item_id"] for e in wanted]
    assert links[5] == {
        "item_id": "missing",
        "error": {"code": "not_found", "message": links[5]["error"]["message"]},
    }
    for entry in links[:5]:
        assert entry["variant"] == "thumb"
        assert (await fetch(api, urlsplit(entry["url"]).path))[0] == 200
    too_many = [{"item_id": made[0]["id"]}] * 501
    assert (await api.call("POST", "/v1/links", w.parent, {"items": too_many}))[0] == 400
    assert (await api.call("POST", "/v1/links", w.parent, {"items": [{"id": "x"}]}))[0] == 400


async def test_links_stop_at_once_when_access_ends(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    paths = {
        name: await link(api, getattr(w, name), item["id"], ttl_seconds=3600)
        for name in ("parent", "staff")
    }
    # A block: the parent's own link stops, the staff member's does not.
    await api.ok("POST", f"/v1/people/{w.parent_id}/block", {"reason": "doubt"})
    status, _, body = await fetch(api, paths["parent"])
    assert (status, body[:40]) == (403, b'{"error": {"code": "blocked", "message":')
    assert (await fetch(api, paths["staff"]))[0] == 200
    await api.ok("DELETE", f"/v1/people/{w.parent_id}/block")
    assert (await fetch(api, paths["parent"]))[0] == 200
    # The end of the window.
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-09-01"},
    )
    status, _, body = await fetch(api, paths["parent"])
    assert status == 403
    assert b"outside_window" in body
    await api.ok(
        "PUT", f"/v1/children/{w.child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    # Destruction.
    await api.ok("DELETE", f"/v1/items/{item['id']}", token=w.officer)
    status, _, body = await fetch(api, paths["staff"])
    assert status == 410
    assert b"destroyed" in body


async def test_a_link_answered_a_moment_ago_stops_when_facts_change_elsewhere(
    api: Api, db_url: str
) -> None:
    """Answers are reused while no fact changed. A change made by another
    process (here a second engine writing to the database directly, as the
    retention job or another instance would) stops a link that worked a
    moment ago, at its very next use."""
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"], ttl_seconds=3600)
    other = create_engine(db_url)

    async def change(*statements: Executable) -> None:
        async with other.begin() as conn:
            for statement in statements:
                await conn.execute(statement)

    try:
        assert (await fetch(api, path))[0] == 200
        assert (await fetch(api, path))[0] == 200
        parent = people.c.id == w.parent_id
        await change(update(people).where(parent).values(blocked_at=api.clock.now))
        status, _, body = await fetch(api, path)
        assert (status, b"blocked" in body) == (403, True)
        await change(update(people).where(parent).values(blocked_at=None))
        assert (await fetch(api, path))[0] == 200
        # The parent stops being the child's guardian.
        async with other.connect() as conn:
            relation = (
                (await conn.execute(select(guardians).where(guardians.c.person_id == w.parent_id)))
                .mappings()
                .one()
            )
        await change(delete(guardians).where(guardians.c.person_id == w.parent_id))
        status, _, body = await fetch(api, path)
        assert status == 404, body
        await change(insert(guardians).values(**relation))
        assert (await fetch(api, path))[0] == 200
        # The item's keys are destroyed.
        await change(delete(item_keys).where(item_keys.c.item_id == item["id"]))
        status, _, body = await fetch(api, path)
        assert (status, b"destroyed" in body) == (410, True)
    finally:
        await other.dispose()


async def test_a_link_stops_when_another_process_destroys_the_master_key(api: Api) -> None:
    """The item key opened for a link is kept while the link lives. A master
    key destroyed by another process (``kluis retention run``, stopped before
    it marked the child keys' rows) stops the link at its next use all the
    same: the key never comes back from what was kept."""
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"], ttl_seconds=3600)
    assert (await fetch(api, path))[0] == 200
    assert (await fetch(api, path))[0] == 200  # answered with the key kept for the link
    app = api.client.app
    ring = app[KEYRING]
    assert isinstance(ring, LocalKeyring)
    async with app[DB].connect() as conn:
        epochs = (
            await conn.scalars(
                select(child_keys.c.epoch)
                .join(item_keys, item_keys.c.child_key_id == child_keys.c.id)
                .where(item_keys.c.item_id == item["id"])
            )
        ).all()
    assert epochs
    elsewhere = await LocalKeyring.open(ring.path)  # another process's own view of the file
    for name in set(epochs):
        assert await elsewhere.destroy_key(name, api.clock.now)
    status, _, body = await fetch(api, path)
    assert (status, b"destroyed" in body) == (410, True)
    assert (await fetch(api, path))[0] == 410


async def test_the_facts_a_link_is_answered_on_are_all_watched(api: Api) -> None:
    """Every table read to answer a link is one whose changes move the facts
    version; a table read but not watched would let a cached answer go stale."""
    w = await world(api)
    item = await photo_of(api, w)
    engine = api.client.app[DB]
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with engine.connect() as conn:
            resolved = await conn.run_sync(link_facts, w.parent_id, item["id"])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert resolved is not None
    tables = {
        name.lower()
        for sql in statements
        for name in re.findall(r"\b(?:FROM|JOIN)\s+\"?(\w+)", sql, re.IGNORECASE)
    }
    assert {"people", "items", "consents", "item_keys"} <= tables
    assert tables <= set(FACT_TABLES), tables - set(FACT_TABLES)


async def test_a_group_photo_link_stops_for_another_family_when_consent_is_withdrawn(
    api: Api,
) -> None:
    w = await world(api)
    second, mother = await second_child(api, w)
    await consent(api, w)
    status, item = await upload(
        api, w.staff, w.child, {"kind": "photo", "tagged_children": [second]}, jpeg_with_secrets()
    )
    assert status == 201
    noor_family = await link(api, w.parent, item["id"], ttl_seconds=3600)
    mila_family = await link(api, mother, item["id"], ttl_seconds=3600)
    assert (await fetch(api, noor_family))[0] == 200
    api.clock.now += timedelta(seconds=30)
    await api.ok("PUT", f"/v1/children/{second}/consents/photo", {"granted": False}, mother)
    status, _, body = await fetch(api, noor_family)
    assert status == 403
    assert b"consent_missing" in body
    assert (await fetch(api, mila_family))[0] == 200


async def test_expiry_and_key_rotation(api: Api) -> None:
    w = await world(api)
    item = await photo_of(api, w)
    path = await link(api, w.parent, item["id"], ttl_seconds=60)
    app = api.client.app
    await signing.rotate(app[DB], app[KEYRING], api.clock.now)
    await app[SIGNING].refresh()
    assert (await fetch(api, path))[0] == 200  # a rotation does not break links in flight
    api.clock.now += timedelta(seconds=61)
    status, _, body = await fetch(api, path)
    assert status == 403
    assert b"link_expired" in body
    api.clock.now -= timedelta(seconds=61)
    for _ in range(3):  # the signing secret falls off the kept list
        await signing.rotate(app[DB], app[KEYRING], api.clock.now)
    await app[SIGNING].refresh()
    status, _, body = await fetch(api, path)
    assert status == 403
    assert b"link_invalid" in body


async def test_handovers_to_a_school(api: Api) -> None:
    w = await world(api)
    status, item = await upload(
        api,
        w.staff,
        w.child,
        {"kind": "observation", "title": "Overdracht"},
        b"%PDF-1.4\n% observation\n%%EOF\n",
        "overdracht.pdf",
    )
    assert status == 201, item
    body = {"recipient": "Basisschool De Regenboog"}
    status, answer = await api.call("POST", f"/v1/items/{item['id']}/handovers", w.staff, body)
    assert (status, answer["error"]["code"]) == (403, "consent_missing")  # w.staff is the mentor
    await consent(api, w, "school_handover")
    answer = await api.ok(
        "POST", f"/v1/items/{item['id']}/handovers", {**body, "ttl_seconds": 10**9}, w.staff
    )
    assert answer["expires_at"] == (api.clock.now + timedelta(days=14)).isoformat().replace(
        "+00:00", "Z"
    )
    path = urlsplit(answer["url"]).path
    assert path.startswith("/h/")
    assert (await fetch(api, path, "HEAD"))[0] == 200  # a look does not count
    for _ in range(3):
        status, headers, data = await fetch(api, path)
        assert (status, data) == (200, b"%PDF-1.4\n% observation\n%%EOF\n")
        assert headers["Content-Disposition"].startswith('attachment; filename="overdracht.pdf"')
    status, _, data = await fetch(api, path)
    assert status == 403
    assert b"link_expired" in data
    # Only the mentor or the location manager; only observations.
    assert (await api.call("POST", f"/v1/items/{item['id']}/handovers", w.parent, body))[1][
        "error"
    ]["code"] == "forbidden"
    second = await api.ok("POST", f"/v1/items/{item['id']}/handovers", body, w.manager)
    await api.ok(
        "PUT", f"/v1/children/{w.child}/consents/school_handover", {"granted": False}, w.parent
    )
    status, _, data = await fetch(api, urlsplit(second["url"]).path)
    assert status == 403
    assert b"consent_missing" in data


async def test_a_client_that_hangs_up_mid_stream_releases_everything(api: Api) -> None:
    w = await world(api)
    await consent(api, w)

    async def video() -> AsyncIterator[bytes]:
        yield MP4_HEAD
        for _ in range(64):
            yield b"\x01" * (1 << 20)

    status, item = await upload(api, w.staff, w.child, {"kind": "video"}, video(), "v.mp4")
    assert status == 201
    path = await link(api, w.parent, item["id"], ttl_seconds=3600)
    process = psutil.Process()
    before = process.num_fds()
    for _ in range(5):
        response = await api.client.get(path)
        assert response.status == 200
        await response.content.readexactly(256 * 1024)
        response.close()  # hang up with most of the 64 MB unsent
    await eventually(
        lambda: process.num_fds() <= before + 1, "no blob file left open per abandoned download"
    )
    status, _, body = await fetch(api, path, Range="bytes=0-9")
    assert (status, body) == (206, MP4_HEAD[:10])
