"""Directory text written through the API is never in clear at rest (issue 18 item 4).

Nor is a sign-in address: an account keeps its address as the directory's
keyed hash, and a failed sign-in is counted under that hash too.

People's names and e-mail addresses, block reasons, location and group
names, children's names and hold reasons: a copy of the database (SQLite's
file and log; a pg_dump and the tables' files on PostgreSQL) holds none of
them, while the service still answers with them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.accounts import accept, invitation_token, person, sign_in
from tests.helpers.api import start
from tests.helpers.at_rest import database_bytes
from vault.config import DatabaseSettings, Settings

TEXT = {
    "person": "Hendrikje Oosterbroek-Wiersma",
    "email": "hendrikje.oosterbroek@voorbeeld.nl",
    "block": "Meldt zich onder valse naam aan de telefoon",
    "location": "Kindcentrum Het Zonnedauwtje",
    "group": "Groep Kwakkelvlinders",
    "first": "Zwaantje",
    "last": "Teunissen-Brouwer",
    "hold": "Voogdijzaak bij de rechtbank Arnhem",
}
TABLES = ("people", "locations", "care_groups", "children", "holds", "audit_events")


async def test_names_addresses_and_reasons_are_sealed_at_rest(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> None:
    postgres = None if db_url.startswith("sqlite") else request.getfixturevalue("postgres_server")
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api = await start(settings, aiohttp_client)
    person = await api.ok(
        "POST", "/v1/people", {"name": TEXT["person"], "email": TEXT["email"], "role": "guardian"}
    )
    await api.ok("POST", f"/v1/people/{person['id']}/block", {"reason": TEXT["block"]})
    location = (await api.ok("POST", "/v1/locations", {"name": TEXT["location"]}))["id"]
    group = (await api.ok("POST", "/v1/groups", {"location_id": location, "name": TEXT["group"]}))[
        "id"
    ]
    child = (
        await api.ok(
            "POST",
            "/v1/children",
            {
                "first_name": TEXT["first"],
                "last_name": TEXT["last"],
                "birth_date": "2023-05-06",
                "group_id": group,
            },
        )
    )["id"]
    _, officer = await api.person("privacy_officer", "Functionaris")
    await api.ok("POST", f"/v1/children/{child}/holds", {"reason": TEXT["hold"]}, officer)

    # The service still reads them.
    shown = await api.ok("GET", f"/v1/children/{child}")
    assert (shown["first_name"], shown["last_name"]) == (TEXT["first"], TEXT["last"])
    status, _ = await api.call("GET", f"/v1/children/{child}", person["token"])
    assert status == 403  # blocked: the block (and its sealed reason) stands

    await api.client.close()
    dump = await database_bytes(db_url, postgres, TABLES)
    assert person["id"].encode() in dump  # what is kept in clear is found: the search can fail
    for what, value in TEXT.items():
        for spelled in (value, value.lower(), value.upper()):
            assert spelled.encode() not in dump, what
        # Nor in UTF-16 (as a text column might be kept), nor a distinctive part.
        assert value.encode("utf-16-le") not in dump, what
        assert value.split()[-1].encode() not in dump, what


ADDRESS = "Wietske.Hoogeveen-Dijkstra@Voorbeeld.nl"
#: What a sign-in leaves: the account, its session, the failures counted on
#: the address, the invitation and its mail, the audit trail.
SIGN_IN_TABLES = (
    "people",
    "accounts",
    "tokens",
    "auth_failures",
    "invitations",
    "outbox",
    "audit_events",
)


async def test_signing_up_and_in_leaves_no_address_in_clear(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> None:
    postgres = None if db_url.startswith("sqlite") else request.getfixturevalue("postgres_server")
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api = await start(settings, aiohttp_client)
    person_id = await person(api, "guardian", ADDRESS, "Wietske")
    await api.ok("POST", f"/v1/people/{person_id}/invitations")
    status, body = await accept(api, await invitation_token(api, ADDRESS))
    assert status == 201, body
    # Sign-in by address, in any case and with stray spaces; a wrong password counted.
    assert (await sign_in(api, ADDRESS, "not the password at all"))[0] == 401
    for typed in (ADDRESS.lower(), ADDRESS.upper(), f"  {ADDRESS} "):
        status, body = await sign_in(api, typed)
        assert status == 201, (typed, body)
    assert (await sign_in(api, "someone.else@voorbeeld.nl"))[0] == 401

    await api.client.close()
    dump = await database_bytes(db_url, postgres, SIGN_IN_TABLES)
    assert person_id.encode() in dump  # the search can fail
    local = ADDRESS.partition("@")[0]
    for spelled in (ADDRESS, ADDRESS.lower(), ADDRESS.upper(), local, local.lower()):
        assert spelled.encode() not in dump, spelled
        assert spelled.encode("utf-16-le") not in dump, spelled
    # Nor as a plain SHA-256 of the address (one could test guessed addresses against it).
    digest = hashlib.sha256(ADDRESS.lower().encode()).hexdigest()
    assert digest.encode() not in dump
    assert bytes.fromhex(digest) not in dump
