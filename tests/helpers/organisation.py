"""A small organisation over HTTP, for tests that drive real ``kluis serve`` processes."""

from __future__ import annotations

import secrets

from tests.files import PDF
from tests.helpers.processes import Client


def document(label: str) -> bytes:
    """A small PDF with bytes of its own (so every download can be compared)."""
    return PDF + f"% {label} {secrets.token_hex(8)}\n".encode()


async def placed_child(
    admin: Client, group: str, guardian: str, first_name: str, last_name: str, birth_date: str
) -> str:
    """A child in ``group``, placed since 2024 with no end, ``guardian``'s
    (a person's id) as contract parent; the child's id."""
    child = (
        await admin.ok(
            "POST",
            "/v1/children",
            {
                "first_name": first_name,
                "last_name": last_name,
                "birth_date": birth_date,
                "group_id": group,
            },
        )
    )["id"]
    await admin.ok(
        "PUT", f"/v1/children/{child}/placement", {"start_date": "2024-01-01", "end_date": None}
    )
    await admin.ok(
        "POST",
        f"/v1/children/{child}/guardians",
        {"person_id": guardian, "relation": "contract_parent", "household": "shared"},
    )
    return str(child)


async def organisation(admin: Client) -> tuple[Client, Client, list[str]]:
    """A location, a group, a member of staff, a parent and three children."""
    location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
    group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"}))[
        "id"
    ]
    staff = await admin.ok("POST", "/v1/people", {"name": "Sanne", "role": "staff"})
    parent = await admin.ok("POST", "/v1/people", {"name": "Ouder", "role": "guardian"})
    await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    children = [
        await placed_child(admin, group, parent["id"], f"Kind{n}", "Test", "2023-04-02")
        for n in range(3)
    ]
    guardian = admin.as_(parent["token"])
    for child in children:
        await guardian.ok("PUT", f"/v1/children/{child}/consents/photo", {"granted": True})
    return admin.as_(staff["token"]), guardian, children
