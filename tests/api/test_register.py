"""The request register (issue 19 item 3): ``/v1/requests`` with the
four-week deadline, overdue first, answers on the record; who may and may
not; notes sealed."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from tests.helpers.api import Api
from tests.helpers.world import world
from vault.api.resources import DB
from vault.db.schema import audit_events, requests

NOTE = "Wil weten wie de foto's van de verjaardag heeft bekeken"


def _iso(moment: object) -> str:
    return moment.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]


async def test_requests_are_registered_answered_and_listed(api: Api) -> None:
    w = await world(api)
    start = api.clock.now
    filed = await api.ok(
        "POST", "/v1/requests", {"type": "access", "child_id": w.child, "note": NOTE}, w.parent
    )
    assert filed["status"] == "open"
    assert (filed["received_at"], filed["due_at"]) == (
        _iso(start),
        _iso(start + timedelta(weeks=4)),
    )
    api.clock.now = start + timedelta(days=10)
    mine = await api.ok("POST", "/v1/requests", {"type": "objection"}, w.co_shared)
    api.clock.now = start + timedelta(days=11)
    other = await api.ok(
        "POST",
        "/v1/requests",
        {"type": "erasure", "child_id": w.other_group_child},
        w.stranger_parent,
    )
    api.clock.now = start + timedelta(days=12)
    by_officer = await api.ok(
        "POST", "/v1/requests", {"type": "portability", "child_id": w.child}, w.officer
    )

    # Who may file: guardians for their own children, the privacy officer.
    for token, body, status, code in [
        (w.staff, {"type": "access"}, 403, "forbidden"),
        (api.admin, {"type": "access"}, 403, "forbidden"),
        (w.parent, {"type": "access", "child_id": w.other_group_child}, 404, "not_found"),
        (w.parent, {"type": "complaint"}, 400, "invalid_input"),
        (w.parent, {"type": "access", "colour": 1}, 400, "invalid_input"),
        (w.parent, {"type": "access", "note": "Mijn BSN is 111222333"}, 422, "bsn_not_stored"),
    ]:
        got, answer = await api.call("POST", "/v1/requests", token, body)
        assert (got, answer["error"]["code"]) == (status, code), body

    # Past the first deadline: it is overdue, the others are not yet.
    api.clock.now = start + timedelta(weeks=4, days=5)
    register = (await api.ok("GET", "/v1/requests", token=w.officer))["requests"]
    assert [r["id"] for r in register] == [filed["id"], mine["id"], other["id"], by_officer["id"]]
    assert [r["overdue"] for r in register] == [True, False, False, False]
    # A guardian sees only their own; staff see none.
    own = (await api.ok("GET", "/v1/requests", token=w.parent))["requests"]
    assert [r["id"] for r in own] == [filed["id"]]
    got, answer = await api.call("GET", "/v1/requests", w.staff)
    assert (got, answer["error"]["code"]) == (403, "forbidden")

    # Only the privacy officer answers, once.
    path = f"/v1/requests/{filed['id']}/answer"
    reply = {"outcome": "granted", "note": "Overzicht per post verstuurd"}
    for token in (w.parent, w.staff, api.admin):
        got, answer = await api.call("POST", path, token, reply)
        assert (got, answer["error"]["code"]) == (403, "forbidden")
    done = await api.ok("POST", path, reply, w.officer)
    assert (done["status"], done["overdue"], done["answered_at"]) == (
        "answered",
        False,
        _iso(api.clock.now),
    )
    got, answer = await api.call("POST", path, w.officer, reply)
    assert (got, answer["error"]["code"]) == (409, "conflict")
    got, answer = await api.call("POST", "/v1/requests/" + "0" * 32 + "/answer", w.officer, reply)
    assert (got, answer["error"]["code"]) == (404, "not_found")
    got, _ = await api.call("POST", path, w.officer, {"outcome": "maybe", "note": "x"})
    assert got == 400
    # Later: the open overdue one first, then by due date (the answered one is not overdue).
    api.clock.now = start + timedelta(days=39)
    register = (await api.ok("GET", "/v1/requests", token=w.officer))["requests"]
    assert [(r["id"], r["overdue"]) for r in register] == [
        (mine["id"], True),
        (filed["id"], False),
        (other["id"], False),
        (by_officer["id"], False),
    ]
    answered = (await api.ok("GET", "/v1/requests?status=answered", token=w.officer))["requests"]
    assert [r["id"] for r in answered] == [filed["id"]]
    still_open = (await api.ok("GET", "/v1/requests?status=open", token=w.officer))["requests"]
    assert filed["id"] not in [r["id"] for r in still_open]
    assert (await api.call("GET", "/v1/requests?status=lost", w.officer))[0] == 400

    # On the record: the outcome, never a note; the notes are sealed.
    async with api.client.app[DB].connect() as conn:
        events = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "requests.answer")
            )
        ).all()
        rows = (await conn.execute(select(requests))).all()
    ok = [json.loads(e.detail) for e in events if e.outcome == "ok"]
    assert [(d["request_id"], d["answer"]) for d in ok] == [(filed["id"], "granted")]
    assert all("Overzicht" not in e.detail for e in events)
    sealed = [r for r in rows if r.sealed_note is not None]
    assert len(sealed) == 1
    assert NOTE.encode() not in sealed[0].sealed_note
