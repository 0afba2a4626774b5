"""Restriction of processing (issue 19 item 5): ``POST``/``DELETE
/v1/children/{id}/restriction``. While it stands nothing new is added for
the child and nothing of it is read or handed out but by the privacy
officer (403 ``restricted``), links issued before included; retention runs.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import upload
from tests.helpers.links import fetch, link, photo_of
from tests.helpers.world import world
from vault.api.resources import DB
from vault.db.schema import audit_events, restrictions

REASON = "Bezwaar van de moeder tegen de verwerking, in behandeling"


async def test_a_restriction_stops_everyone_but_the_privacy_officer(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    earlier = await link(api, w.parent, photo["id"], variant="thumb")
    assert (await fetch(api, earlier))[0] == 200
    path = f"/v1/children/{w.child}/restriction"

    # Only the privacy officer restricts.
    for token, status, code in [
        (w.parent, 403, "forbidden"),
        (w.staff, 403, "forbidden"),
        (api.admin, 403, "forbidden"),
        (w.stranger_parent, 404, "not_found"),
    ]:
        got, body = await api.call("POST", path, token, {"reason": REASON})
        assert (got, body["error"]["code"]) == (status, code), token
    for bad, status in [({}, 400), ({"reason": ""}, 400), ({"reason": "BSN 111222333"}, 422)]:
        assert (await api.call("POST", path, w.officer, bad))[0] == status, bad
    made = await api.ok("POST", path, {"reason": REASON}, w.officer)
    got, body = await api.call("POST", path, w.officer, {"reason": REASON})
    assert (got, body["error"]["code"]) == (409, "conflict")

    # Nothing is read, listed, linked, handed out or added, by anyone else...
    refused = [
        await api.call("GET", f"/v1/items/{photo['id']}", w.parent),
        await api.call("GET", f"/v1/children/{w.child}/items", w.parent),
        await api.call("GET", f"/v1/items/{photo['id']}", w.staff),
        await api.call("POST", f"/v1/items/{photo['id']}/links", w.parent, {}),
        await api.call("POST", f"/v1/children/{w.child}/exports", w.parent, {}),
        await api.call("PATCH", f"/v1/items/{photo['id']}", w.staff, {"title": "Nieuw"}),
        await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets()),
    ]
    for status, body in refused:
        assert (status, body["error"]["code"]) == (403, "restricted")
    # ...not even through a link issued before.
    assert (await fetch(api, earlier))[0] == 403
    # The privacy officer still reaches the records; retention still runs.
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.officer))[0] == 200
    assert (await api.call("POST", "/v1/retention/run", w.officer, {"dry_run": True}))[0] == 200
    # The directory facts stay readable.
    assert (await api.call("GET", f"/v1/children/{w.child}", w.parent))[0] == 200

    # Lifted: all as before. Lifting twice: none stands.
    for token in (w.parent, w.staff):
        got, body = await api.call("DELETE", path, token)
        assert (got, body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("DELETE", path, w.officer))[0] == 204
    got, body = await api.call("DELETE", path, w.officer)
    assert (got, body["error"]["code"]) == (404, "not_found")
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.parent))[0] == 200
    assert (await fetch(api, earlier))[0] == 200
    # A new restriction can be placed again after the lift.
    assert (await api.call("POST", path, w.officer, {"reason": REASON}))[0] == 201

    async with api.client.app[DB].connect() as conn:
        rows = (await conn.execute(select(restrictions).order_by(restrictions.c.created_at))).all()
        events = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.outcome, audit_events.c.detail).where(
                    audit_events.c.action.in_(("rights.restrict", "rights.lift_restriction"))
                )
            )
        ).all()
    assert rows[0].id == made["id"]
    assert rows[0].lifted_at is not None
    assert all(REASON.encode() not in row.sealed_reason for row in rows)
    ok = [(e.action, json.loads(e.detail).get("restriction")) for e in events if e.outcome == "ok"]
    assert ("rights.restrict", made["id"]) in ok
    assert ("rights.lift_restriction", made["id"]) in ok
    assert all(REASON not in e.detail for e in events)
