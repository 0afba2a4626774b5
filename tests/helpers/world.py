"""A small organisation to test against: one location, two groups, people in every role."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol


class Calls(Protocol):
    """What the organisation is made with: the in-process :class:`Api` or a
    client of a served vault."""

    async def ok(
        self, method: str, path: str, json: Any = None, token: str | None = None
    ) -> Any: ...

    async def person(self, role: str, name: str = "Someone") -> tuple[str, str]: ...


@dataclasses.dataclass
class World:
    child: str
    other_group_child: str
    group: str
    other_group: str
    parent: str
    co_shared: str
    co_separate: str
    stranger_parent: str
    staff: str
    other_staff: str
    manager: str
    administration: str
    officer: str
    inspector: str
    parent_id: str
    staff_id: str
    admin_id: str = ""


async def world(api: Calls) -> World:
    location = (await api.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
    group = (await api.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"}))["id"]
    other = (await api.ok("POST", "/v1/groups", {"location_id": location, "name": "Vlinders"}))[
        "id"
    ]
    child = (
        await api.ok(
            "POST",
            "/v1/children",
            {
                "first_name": "Noor",
                "last_name": "Jansen",
                "birth_date": "2023-04-02",
                "group_id": group,
            },
        )
    )["id"]
    other_child = (
        await api.ok(
            "POST",
            "/v1/children",
            {
                "first_name": "Sem",
                "last_name": "Bakker",
                "birth_date": "2022-01-15",
                "group_id": other,
            },
        )
    )["id"]
    await api.ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    tokens = {}
    ids = {}
    for name, role in [
        ("parent", "guardian"),
        ("co_shared", "guardian"),
        ("co_separate", "guardian"),
        ("stranger_parent", "guardian"),
        ("staff", "staff"),
        ("other_staff", "staff"),
        ("manager", "location_manager"),
        ("administration", "administration"),
        ("officer", "privacy_officer"),
        ("inspector", "inspector"),
    ]:
        ids[name], tokens[name] = await api.person(role, name)
    await api.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": ids["parent"], "relation": "contract_parent", "household": "shared"},
    )
    await api.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": ids["co_shared"], "relation": "co_parent", "household": "shared"},
    )
    await api.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": ids["co_separate"], "relation": "co_parent", "household": "separate"},
    )
    await api.ok(
        "POST",
        f"/v1/children/{other_child}/guardians",
        {"person_id": ids["stranger_parent"], "relation": "contract_parent", "household": "shared"},
    )
    await api.ok("POST", f"/v1/groups/{group}/staff", {"person_id": ids["staff"]})
    await api.ok("POST", f"/v1/groups/{other}/staff", {"person_id": ids["other_staff"]})
    await api.ok("POST", f"/v1/locations/{location}/managers", {"person_id": ids["manager"]})
    await api.ok("PUT", f"/v1/children/{child}/mentor", {"person_id": ids["staff"]})
    return World(
        child=child,
        other_group_child=other_child,
        group=group,
        other_group=other,
        parent_id=ids["parent"],
        staff_id=ids["staff"],
        **tokens,
    )


async def second_child(api: Calls, w: World) -> tuple[str, str]:
    """Mila, in the same group, with photo consent; returns (child id, mother's token)."""
    child = (
        await api.ok(
            "POST",
            "/v1/children",
            {
                "first_name": "Mila",
                "last_name": "V",
                "birth_date": "2023-06-01",
                "group_id": w.group,
            },
        )
    )["id"]
    await api.ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    mother_id, mother = await api.person("guardian")
    await api.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": mother_id, "relation": "contract_parent", "household": "shared"},
    )
    await api.ok("PUT", f"/v1/children/{child}/consents/photo", {"granted": True}, mother)
    return child, mother
