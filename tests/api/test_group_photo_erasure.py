"""A group photo after one child's photo key is destroyed (an erasure, or the
end of the retention term): it is no longer that child's record, in any way
that child's family, its staff or its exports reach it, and it stays whole for
the other children it shows (docs/api-notes.md)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.links import fetch, link
from tests.helpers.world import World, second_child, world


async def photo(api: Api, w: World, child: str, **meta: Any) -> str:
    status, item = await upload(
        api, w.staff, child, {"kind": "photo", **meta}, jpeg_with_secrets(), "Samen.jpg"
    )
    assert status == 201, item
    return str(item["id"])


async def listed(api: Api, token: str, child: str) -> dict[str, bool]:
    page = await api.ok("GET", f"/v1/children/{child}/items?kind=photo", token=token)
    return {item["id"]: item.get("destroyed", False) for item in page["items"]}


async def exported(api: Api, token: str, child: str) -> set[str]:
    made = await api.ok("POST", f"/v1/children/{child}/exports", {"kinds": ["photo"]}, token)
    response = await api.client.get(urlsplit(made["url"]).path)
    assert response.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    return {item["id"] for item in json.loads(archive.read("diary.json"))["items"]}


async def test_an_erased_childs_group_photos_are_gone_for_it_and_stay_for_the_others(
    api: Api,
) -> None:
    w = await world(api)
    await consent(api, w)
    mila, mother = await second_child(api, w)
    solo = await photo(api, w, w.child)
    # Posted for Noor with Mila tagged, and posted for Mila with Noor tagged.
    ours = await photo(api, w, w.child, tagged_children=[mila])
    theirs = await photo(api, w, mila, tagged_children=[w.child])
    group = (ours, theirs)
    old_links = {item: await link(api, w.parent, item) for item in group}
    old_export = await api.ok(
        "POST", f"/v1/children/{w.child}/exports", {"kinds": ["photo"]}, w.parent
    )

    erased = await api.ok(
        "POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo"]}, w.parent
    )
    assert erased["results"]["photo"] == {"erased": True}

    for token in (w.parent, w.staff, w.officer):
        # In Noor's listing each is a tombstone, whoever asks.
        assert await listed(api, token, w.child) == {solo: True, ours: True, theirs: True}
    for item in group:
        # Noor's family: the record is gone for them, by every road.
        status, body = await api.call("GET", f"/v1/items/{item}", w.parent)
        assert (status, body["error"]["code"]) == (410, "destroyed"), item
        status, _, answer = await fetch(api, old_links[item])
        assert (status, json.loads(answer)["error"]["code"]) == (410, "destroyed"), item
        status, body = await api.call("POST", f"/v1/items/{item}/links", w.parent, {})
        assert (status, body["error"]["code"]) == (410, "destroyed"), item
        # Mila's family and staff: whole, and Noor no longer one of its children.
        details = await api.ok("GET", f"/v1/items/{item}", token=mother)
        assert details["children"] == [mila]
        assert (await fetch(api, await link(api, mother, item)))[0] == 200
        assert (await api.call("GET", f"/v1/items/{item}", w.staff))[0] == 200
    assert await listed(api, mother, mila) == {ours: False, theirs: False}

    # Noor's exports: the one made before stops, a new one holds none of them.
    status, _, answer = await fetch(api, urlsplit(old_export["url"]).path)
    assert (status, json.loads(answer)["error"]["code"]) == (410, "destroyed")
    assert "new export" in json.loads(answer)["error"]["message"]
    assert await exported(api, w.parent, w.child) == set()
    assert await exported(api, mother, mila) == set(group)

    # Noor's report holds no photo; the certificate counts all three of Noor's.
    report = await api.ok("GET", f"/v1/children/{w.child}/report", token=w.parent)
    assert report["categories"]["photo"]["count"] == 0
    certificates = await api.ok("GET", f"/v1/children/{w.child}/certificates", token=w.officer)
    assert [c["items"] for c in certificates["certificates"] if c["category"] == "photo"] == [3]

    # Tagging Noor again would undo the erasure (and revive the old link and
    # export): refused. Tags sent without Noor leave the tombstone as it is.
    path = f"/v1/items/{theirs}"
    status, body = await api.call("PATCH", path, w.staff, {"tagged_children": [w.child]})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert "cannot be tagged in it again" in body["error"]["message"]
    await api.ok("PATCH", path, {"tagged_children": []}, w.staff)
    assert await listed(api, w.parent, w.child) == {solo: True, ours: True, theirs: True}
    assert (await fetch(api, old_links[theirs]))[0] == 410


async def test_the_end_of_the_term_takes_the_group_photo_from_that_child_only(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    mila, mother = await second_child(api, w)
    group = await photo(api, w, w.child, tagged_children=[mila])
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now = datetime(2027, 12, 7, 12, tzinfo=UTC)
    report = await api.ok("POST", "/v1/retention/run", {}, w.officer)
    assert report["destroyed"].get("photo", 0) == 0  # no photo is gone: Mila keeps it

    assert await listed(api, w.officer, w.child) == {group: True}
    # The privacy officer still reaches it, but only as Mila's record.
    assert (await api.ok("GET", f"/v1/items/{group}", token=w.officer))["children"] == [mila]
    officer_link = await link(api, w.officer, group, reason="Inzageverzoek")
    status, _, answer = await fetch(api, officer_link)
    assert status == 200, answer
    assert (await api.ok("GET", f"/v1/items/{group}", token=mother))["children"] == [mila]
    certificates = await api.ok("GET", f"/v1/children/{w.child}/certificates", token=w.officer)
    assert [c["items"] for c in certificates["certificates"] if c["category"] == "photo"] == [1]


async def test_a_child_untagged_before_its_erasure_cannot_be_tagged_again(api: Api) -> None:
    """Untagged, erased, tagged again: the erasure still holds. Seen before: the
    untag took the child's share out of the record, the erasure found nothing
    to mark, and tagging the child again answered 200 and revived the link and
    the export its family had before the erasure."""
    w = await world(api)
    await consent(api, w)
    mila, _ = await second_child(api, w)
    group = await photo(api, w, mila, tagged_children=[w.child])
    never = await photo(api, w, mila)  # a photo Noor was never in
    old_link = await link(api, w.parent, group)
    old_export = await api.ok(
        "POST", f"/v1/children/{w.child}/exports", {"kinds": ["photo"]}, w.parent
    )
    path = f"/v1/items/{group}"
    await api.ok("PATCH", path, {"tagged_children": []}, w.staff)
    erased = await api.ok(
        "POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo"]}, w.parent
    )
    assert erased["results"]["photo"] == {"erased": True}

    status, body = await api.call("PATCH", path, w.staff, {"tagged_children": [w.child]})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert "cannot be tagged in it again" in body["error"]["message"]
    assert (await fetch(api, old_link))[0] != 200
    assert (await fetch(api, urlsplit(old_export["url"]).path))[0] != 200
    assert (await api.ok("GET", path, token=w.staff))["children"] == [mila]

    # A photo Noor was never in is a new record for her: tagging her is allowed.
    await api.ok("PATCH", f"/v1/items/{never}", {"tagged_children": [w.child]}, w.staff)
    assert await listed(api, w.parent, w.child) == {never: False}


async def test_an_erased_childs_school_handover_consent_still_gates_the_observation(
    api: Api,
) -> None:
    """The observation still shows the erased child: withdrawing its consent
    stops the handover and new ones, as before the erasure. Seen before: after
    the erasure the handover kept serving and a new one was 201."""
    w = await world(api)
    mila, mother = await second_child(api, w)
    await api.ok("PUT", f"/v1/children/{mila}/mentor", {"person_id": w.staff_id})
    await consent(api, w, "school_handover")
    await api.ok("PUT", f"/v1/children/{mila}/consents/school_handover", {"granted": True}, mother)
    status, item = await upload(
        api,
        w.staff,
        w.child,
        {"kind": "observation", "tagged_children": [mila]},
        io.BytesIO(PDF),
        "overdracht.pdf",
    )
    assert status == 201, item
    handovers = f"/v1/items/{item['id']}/handovers"
    issued = await api.ok("POST", handovers, {"recipient": "School", "max_downloads": 10}, w.staff)
    url = urlsplit(issued["url"]).path
    erased = await api.ok(
        "POST", f"/v1/children/{mila}/erasure", {"categories": ["observation"]}, mother
    )
    assert erased["results"]["observation"] == {"erased": True}
    assert (await fetch(api, url))[0] == 200  # still Noor's, and both consents in force

    await api.ok("PUT", f"/v1/children/{mila}/consents/school_handover", {"granted": False}, mother)
    status, _, answer = await fetch(api, url)
    assert (status, json.loads(answer)["error"]["code"]) == (403, "consent_missing")
    status, body = await api.call("POST", handovers, w.staff, {"recipient": "School 2"})
    assert (status, body["error"]["code"]) == (403, "consent_missing")


async def test_after_an_erasure_the_group_photos_later_use_is_not_on_that_childs_record(
    api: Api,
) -> None:
    w = await world(api)
    await consent(api, w)
    mila, mother = await second_child(api, w)
    mother_id = (await api.ok("GET", "/v1/me", token=mother))["id"]
    group = await photo(api, w, w.child, tagged_children=[mila])
    await link(api, w.officer, group, reason="Inzage vooraf")  # before: Noor's, and stays so

    def of_group(log: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(e["action"], e.get("reason")) for e in log["events"] if e.get("item_id") == group]

    await api.ok("POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo"]}, w.parent)
    api.clock.now += timedelta(minutes=5)
    since = api.clock.now
    before = await api.ok("GET", f"/v1/children/{w.child}/report", token=w.parent)
    kept = of_group(await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent))

    # Afterwards the privacy officer links it with a reason about Mila, her mother fetches it.
    reason = "Verzoek van Mila's moeder"
    officer_link = await link(api, w.officer, group, reason=reason)
    assert (await fetch(api, officer_link))[0] == 200
    await api.ok("GET", f"/v1/items/{group}", token=mother)
    assert (await fetch(api, await link(api, mother, group)))[0] == 200
    await api.ok("PATCH", f"/v1/items/{group}", {"title": "Samen"}, w.officer)

    noor = await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent)
    # Only what happened while it was Noor's record, as it was right after the erasure.
    assert reason not in json.dumps(noor)
    assert of_group(noor) == kept
    assert ("link.issue", "Inzage vooraf") in kept
    theirs = of_group(await api.ok("GET", f"/v1/children/{mila}/access-log", token=mother))
    assert ("link.issue", reason) in theirs
    assert {"items.read", "link.use", "items.rectify"} <= {action for action, _ in theirs}

    # Noor's report counts no later call on it; the breach question names only Mila.
    after = await api.ok("GET", f"/v1/children/{w.child}/report", token=w.parent)
    for role in ("privacy_officer", "system"):  # (Noor's parent reads it meanwhile)
        assert after["access"]["by_role"].get(role) == before["access"]["by_role"].get(role)
    until = api.clock.now + timedelta(minutes=1)
    query = f"person={mother_id}&since={since.isoformat()}&until={until.isoformat()}"
    touched = await api.ok("GET", f"/v1/audit/touched?{query}".replace("+", "%2B"), token=w.officer)
    assert touched["children"] == {mila: touched["events"]}, touched

    # Its deletion, later still, is Mila's record's end only.
    status, _ = await api.call("DELETE", f"/v1/items/{group}", w.officer)
    assert status == 204
    log = await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent)
    assert of_group(log) == kept
