"""Destruction certificates readable (issue 19 item 7): ``GET
/v1/children/{id}/certificates`` for the privacy officer, and ``kluis
retention certificates``, also after the child's records are gone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api, start
from tests.helpers.cli import clean_env, run
from tests.helpers.items import consent, upload
from tests.helpers.world import world
from vault.api.resources import DB
from vault.config import DatabaseSettings, Settings
from vault.db.schema import audit_events


async def test_the_privacy_officer_reads_a_childs_certificates(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database=DatabaseSettings(url=db_url))
    api: Api = await start(settings, aiohttp_client)
    w = await world(api)
    path = f"/v1/children/{w.child}/certificates"
    assert await api.ok("GET", path, token=w.officer) == {"certificates": []}
    await consent(api, w)
    await consent(api, w, "diary")
    for _ in range(2):
        status, _ = await upload(api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets())
        assert status == 201
    await api.ok(
        "POST",
        f"/v1/children/{w.child}/items",
        {"kind": "diary", "date": "2026-11-21", "text": "Fijne dag"},
        w.staff,
    )
    erased = await api.ok(
        "POST", f"/v1/children/{w.child}/erasure", {"categories": ["photo", "diary"]}, w.parent
    )
    assert erased["results"]["photo"] == {"erased": True}

    body = await api.ok("GET", path, token=w.officer)
    found = {c["category"]: c for c in body["certificates"]}
    assert set(found) == {"photo", "diary"}
    assert (found["photo"]["items"], found["diary"]["items"]) == (2, 1)
    for certificate in found.values():
        assert certificate["epochs"]
        assert all(name.startswith(("live-", "shred-")) for name in certificate["epochs"])
        assert certificate["destroyed_at"].startswith("2026-11-21")
        assert certificate["run_id"]
    # Nobody else reads them.
    for token, status, code in [
        (w.parent, 403, "forbidden"),
        (w.staff, 403, "forbidden"),
        (w.manager, 403, "forbidden"),
        (api.admin, 403, "forbidden"),
        (w.stranger_parent, 404, "not_found"),
    ]:
        got, answer = await api.call("GET", path, token)
        assert (got, answer["error"]["code"]) == (status, code), token
    assert (await api.call("GET", "/v1/children/" + "0" * 32 + "/certificates", w.officer))[
        0
    ] == 404
    async with api.client.app[DB].connect() as conn:
        outcomes = (
            await conn.scalars(
                select(audit_events.c.outcome).where(audit_events.c.action == "rights.certificates")
            )
        ).all()
    assert sorted(set(outcomes)) == ["forbidden", "not_found", "ok"]
    await api.client.close()

    # The command prints the same, one JSON object a line.
    env = clean_env(KLUIS_DATA_DIR=str(tmp_path / "data"), KLUIS_DATABASE_URL=db_url)
    result = await asyncio.to_thread(run, env, "retention", "certificates", w.child)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(c["category"], c["items"], c["cause"]) for c in lines} == {
        ("photo", 2, "erasure"),
        ("diary", 1, "erasure"),
    }
