"""A small organisation over HTTP, for tests that drive real ``kluis serve`` processes."""

from __future__ import annotations

import secrets

from tests.files import PDF
from tests.helpers.processes import Client


def document(label: str) -> bytes:
    """A small PDF with bytes of its own (so every download can be compared)."""
    return PDF + f"% {label} {secrets.token_hex(8)}\n".encode()


async def organisation(admin: Client) -> tuple[Client, Client, list[str]]:
    """A location, a group, a member of staff, a parent and three children."""
    location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
    group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"}))[
        "id"
    ]
    staff = await admin.ok("POST", "/v1/people", {"name": "Sanne", "role": "staff"})
    parent = await admin.ok("POST", "/v1/people", {"name": "Ouder", "role": "guardian"})
    await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    children = []
    for n in range(3):
        child = (
            await admin.ok(
                "POST",
                "/v1/children",
                {
                    "first_name": f"Kind{n}",
                    "last_name": "Test",
                    "birth_date": "2023-04-02",
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
            {"person_id": parent["id"], "relation": "contract_parent", "household": "shared"},
        )
        children.append(child)
    guardian = admin.as_(parent["token"])
    for child in children:
        await guardian.ok("PUT", f"/v1/children/{child}/consents/photo", {"granted": True})
    return admin.as_(staff["token"]), guardian, children
