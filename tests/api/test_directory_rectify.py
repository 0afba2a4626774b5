"""Rectification of the directory (issue 19 item 1): ``PATCH
/v1/children/{id}``, ``PATCH``/``DELETE /v1/children/{id}/guardians/{person_id}``,
``DELETE /v1/groups/{id}/staff/{person_id}``; who may, bad input, the
conflict of a child left without a contract parent, visibility moved at once."""

from __future__ import annotations

from sqlalchemy import select

from tests.helpers.api import Api
from tests.helpers.links import photo_of
from tests.helpers.world import world
from vault.api.resources import DB
from vault.db.schema import audit_events


async def test_a_childs_name_date_and_group_are_corrected(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    path = f"/v1/children/{w.child}"
    item = f"/v1/items/{photo['id']}"
    assert (await api.call("GET", item, w.staff))[0] == 200
    assert (await api.call("GET", item, w.other_staff))[0] == 404

    for token in (w.parent, w.staff, w.officer, w.manager):
        got, body = await api.call("PATCH", path, token, {"first_name": "Nora"})
        assert (got, body["error"]["code"]) == (403, "forbidden"), token
    for bad, status in [
        ({}, 400),
        ({"nickname": "No"}, 400),
        ({"first_name": ""}, 400),
        ({"birth_date": "2099-01-01"}, 400),
        ({"last_name": "BSN 111222333"}, 422),
    ]:
        assert (await api.call("PATCH", path, api.admin, bad))[0] == status, bad
    assert (await api.call("PATCH", "/v1/children/" + "0" * 32, api.admin, {"first_name": "X"}))[
        0
    ] == 404
    assert (await api.call("PATCH", path, api.admin, {"group_id": "0" * 32}))[0] == 404

    got, body = await api.call(
        "PATCH", path, api.admin, {"first_name": "Nora", "birth_date": "2023-04-12"}
    )
    assert got == 200, body
    assert body == {
        "id": w.child,
        "first_name": "Nora",
        "last_name": "Jansen",
        "birth_date": "2023-04-12",
        "group_id": w.group,
    }
    shown = await api.ok("GET", path, token=w.parent)
    assert (shown["first_name"], shown["birth_date"]) == ("Nora", "2023-04-12")

    # A new group: the old group's staff lose the child's records at once, the new gain them.
    body = await api.ok("PATCH", path, {"group_id": w.other_group})
    assert body["group_id"] == w.other_group
    assert (await api.call("GET", item, w.staff))[0] == 404
    assert (await api.call("GET", item, w.other_staff))[0] == 200

    async with api.client.app[DB].connect() as conn:
        details = (
            await conn.scalars(
                select(audit_events.c.detail).where(
                    audit_events.c.action == "directory.rectify_child"
                )
            )
        ).all()
    assert any("first_name" in d for d in details)
    assert all("Nora" not in d and "2023-04-12" not in d for d in details)


async def test_guardianship_is_changed_and_ended(api: Api) -> None:
    w = await world(api)
    path = f"/v1/children/{w.child}/guardians"
    parent = f"{path}/{w.parent_id}"
    for token in (w.parent, w.staff, w.officer):
        got, body = await api.call("PATCH", parent, token, {"household": "shared"})
        assert (got, body["error"]["code"]) == (403, "forbidden")
        got, body = await api.call("DELETE", parent, token)
        assert (got, body["error"]["code"]) == (403, "forbidden")
    # The only contract parent stays one while the records are visible to guardians.
    got, body = await api.call("DELETE", parent, api.admin)
    assert (got, body["error"]["code"]) == (409, "conflict")
    got, body = await api.call("PATCH", parent, api.admin, {"relation": "co_parent"})
    assert (got, body["error"]["code"]) == (409, "conflict")
    for bad in (
        {},
        {"household": "both"},
        {"relation": "contract_parent", "household": "separate"},
    ):
        assert (await api.call("PATCH", parent, api.admin, bad))[0] == 400, bad
    got, body = await api.call("DELETE", f"{path}/{w.staff_id}", api.admin)
    assert (got, body["error"]["code"]) == (404, "not_found")

    # A second guardian becomes a contract parent; then the first may go, and loses the child.
    second, second_token = await api.person("guardian", "Tweede ouder")
    await api.ok(
        "POST", path, {"person_id": second, "relation": "co_parent", "household": "separate"}
    )
    assert (await api.call("GET", f"/v1/children/{w.child}", second_token))[0] == 200
    await api.ok(
        "PATCH", f"{path}/{second}", {"relation": "contract_parent", "household": "shared"}
    )
    assert (await api.call("DELETE", parent, api.admin))[0] == 204
    assert (await api.call("GET", f"/v1/children/{w.child}", w.parent))[0] == 404
    assert (await api.call("GET", f"/v1/children/{w.child}", second_token))[0] == 200
    assert (await api.call("DELETE", parent, api.admin))[0] == 404


async def test_staff_are_taken_off_a_group(api: Api) -> None:
    w = await world(api)
    photo = await photo_of(api, w)
    path = f"/v1/groups/{w.group}/staff/{w.staff_id}"
    for token in (w.staff, w.manager, w.officer):
        got, body = await api.call("DELETE", path, token)
        assert (got, body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.staff))[0] == 200
    assert (await api.call("DELETE", path, api.admin))[0] == 204
    assert (await api.call("GET", f"/v1/items/{photo['id']}", w.staff))[0] == 404
    assert (await api.call("DELETE", path, api.admin))[0] == 404
    got, body = await api.call("DELETE", f"/v1/groups/{'0' * 32}/staff/{w.staff_id}", api.admin)
    assert (got, body["error"]["code"]) == (404, "not_found")
