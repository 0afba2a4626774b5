"""Publication links (issue 19 item 6): ``POST /v1/items/{id}/publications``
by the location manager, refused without every child's
``external_publication`` consent, at issue and at every use; only the
preview is published."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, stored, upload
from tests.helpers.links import fetch, photo_of
from tests.helpers.world import second_child, world
from vault.api.resources import DB
from vault.db.schema import audit_events, publications


async def test_the_location_manager_publishes_a_consented_photo(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    path = f"/v1/items/{photo['id']}/publications"
    got, body = await api.call("POST", path, w.manager, {"channel": "website"})
    assert (got, body["error"]["code"]) == (403, "consent_missing")
    await consent(api, w, "external_publication")

    # Who may: the location manager only.
    for token, status, code in [
        (w.staff, 403, "forbidden"),
        (w.parent, 403, "forbidden"),
        (w.officer, 403, "forbidden"),
        (w.other_staff, 404, "not_found"),
        (w.stranger_parent, 404, "not_found"),
    ]:
        got, body = await api.call("POST", path, token, {"channel": "website"})
        assert (got, body["error"]["code"]) == (status, code), token
    for bad in ({}, {"channel": "tv"}, {"channel": "website", "variant": "original"}):
        assert (await api.call("POST", path, w.manager, bad))[0] == 400, bad

    made = await api.ok("POST", path, {"channel": "website"}, w.manager)
    assert made["expires_at"] == (api.clock.now + timedelta(days=7)).isoformat().replace(
        "+00:00", "Z"
    )
    capped = await api.ok(
        "POST", path, {"channel": "newsletter", "ttl_seconds": 90 * 86400}, w.manager
    )
    assert capped["expires_at"].startswith((api.clock.now + timedelta(days=30)).date().isoformat())
    link = urlsplit(made["url"]).path
    assert link.startswith("/p/")
    status, _, data = await fetch(api, link)
    assert status == 200
    assert data == await stored(api, photo["id"], "preview")  # the preview, never the original
    assert data != await stored(api, photo["id"], "original")

    # A withdrawn consent stops it at the next use; granted again, it opens again.
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/consents/external_publication",
        {"granted": False},
        w.parent,
    )
    assert (await fetch(api, link))[0] == 403
    await consent(api, w, "external_publication")
    assert (await fetch(api, link))[0] == 200
    # Expired: refused.
    api.clock.now += timedelta(days=8)
    assert (await fetch(api, link))[0] == 403

    async with api.client.app[DB].connect() as conn:
        rows = (await conn.execute(select(publications))).all()
        uses = (
            await conn.execute(
                select(audit_events.c.outcome, audit_events.c.role).where(
                    audit_events.c.action == "publication.use"
                )
            )
        ).all()
    assert sorted(r.channel for r in rows) == ["newsletter", "website"]
    assert {(u.outcome, u.role) for u in uses} >= {("ok", "public"), ("consent_missing", "public")}


async def test_every_child_in_the_photo_must_consent(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    await consent(api, w, "external_publication")
    mila, mother = await second_child(api, w)
    status, group = await upload(
        api, w.staff, w.child, {"kind": "photo", "tagged_children": [mila]}, jpeg_with_secrets()
    )
    assert status == 201
    path = f"/v1/items/{group['id']}/publications"
    got, body = await api.call("POST", path, w.manager, {"channel": "social_media"})
    assert (got, body["error"]["code"]) == (403, "consent_missing")
    await api.ok(
        "PUT", f"/v1/children/{mila}/consents/external_publication", {"granted": True}, mother
    )
    made = await api.ok("POST", path, {"channel": "social_media"}, w.manager)
    assert (await fetch(api, urlsplit(made["url"]).path))[0] == 200
    await api.ok(
        "PUT", f"/v1/children/{mila}/consents/external_publication", {"granted": False}, mother
    )
    assert (await fetch(api, urlsplit(made["url"]).path))[0] == 403
    # Only photos are published.
    await consent(api, w, "diary")
    diary = await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Fijne dag"},
        w.staff,
    )
    got, body = await api.call(
        "POST", f"/v1/items/{diary['id']}/publications", w.manager, {"channel": "website"}
    )
    assert (got, body["error"]["code"]) == (403, "forbidden")
