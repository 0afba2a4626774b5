"""The privacy officer's stated reason (issue 19 item 4): links, batches of
links and exports take a ``reason`` of 3 to 500 characters from them (400
``invalid_input`` without), the child's access log shows it, and the audit
log keeps only its id; everyone else is asked for none."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import select, text

from tests.helpers.api import Api
from tests.helpers.links import fetch, link, photo_of
from tests.helpers.world import world
from vault.api.resources import DB
from vault.db.schema import access_reasons

REASON = "Inzageverzoek van de vader van 12 november, art. 15"


async def _audit_text(api: Api) -> str:
    async with api.client.app[DB].connect() as conn:
        rows = (await conn.execute(text("SELECT detail FROM audit_events"))).all()
    return "\n".join(row.detail for row in rows)


async def test_the_privacy_officer_says_why(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    # The contract ended long ago: the records are archived, only the officer reaches them.
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now = datetime(2027, 6, 1, 9, tzinfo=UTC)
    item_links = f"/v1/items/{photo['id']}/links"
    assert (await api.call("POST", item_links, w.parent, {}))[1]["error"]["code"] == (
        "outside_window"
    )
    calls = [
        ("POST", item_links, {}),
        ("POST", "/v1/links", {"items": [{"item_id": photo["id"]}]}),
        ("POST", f"/v1/children/{w.child}/exports", {}),
    ]
    for method, path, body in calls:
        for reason, status, code in [
            (None, 400, "invalid_input"),
            ("ok", 400, "invalid_input"),
            ("x" * 501, 400, "invalid_input"),
            ("Voor BSN 111222333", 422, "bsn_not_stored"),
        ]:
            sent = body if reason is None else {**body, "reason": reason}
            got, answer = await api.call(method, path, w.officer, sent)
            assert (got, answer["error"]["code"]) == (status, code), (path, reason)
            if code == "invalid_input" and reason is None:
                assert "reason" in answer["error"]["message"]

    # With a reason: the link, a batch, an export; each opens.
    single = await link(api, w.officer, photo["id"], variant="thumb", reason=REASON)
    assert (await fetch(api, single))[0] == 200
    batch = await api.ok(
        "POST", "/v1/links", {"items": [{"item_id": photo["id"]}], "reason": REASON}, w.officer
    )
    assert (await fetch(api, urlsplit(batch["links"][0]["url"]).path))[0] == 200
    export = await api.ok("POST", f"/v1/children/{w.child}/exports", {"reason": REASON}, w.officer)
    assert (await fetch(api, urlsplit(export["url"]).path))[0] == 200

    # The child's access log shows why; the audit log holds only the reason's id.
    log = await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent)
    with_reason = [e for e in log["events"] if e.get("reason")]
    assert {e["action"] for e in with_reason} >= {"link.issue", "export.create"}
    assert {e["reason"] for e in with_reason} == {REASON}
    assert all(e["role"] == "privacy_officer" for e in with_reason)
    assert REASON not in await _audit_text(api)
    async with api.client.app[DB].connect() as conn:
        sealed = (await conn.execute(select(access_reasons))).all()
    assert len(sealed) == 3
    assert all(REASON.encode() not in row.sealed for row in sealed)


async def test_others_give_no_reason(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    assert (await fetch(api, await link(api, w.parent, photo["id"])))[0] == 200
    # A reason sent by a guardian is neither needed nor kept.
    assert (await fetch(api, await link(api, w.parent, photo["id"], reason=REASON)))[0] == 200
    async with api.client.app[DB].connect() as conn:
        assert (await conn.execute(select(access_reasons))).all() == []
