"""Two instances behind a balancer: one PostgreSQL, one MinIO, one HSM token.

What a load balancer does to a client: any request may reach any instance.
So a link issued on one is answered by the other, an export started on one
resumes on the other, a signing rotation made from one place reaches both
without a restart, and several ``kluis init`` at once (a rollout) all
succeed with one of them creating.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.files import PDF
from tests.helpers.keystores import SoftHsm, softhsm_store
from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.helpers.s3 import s3_settings
from tests.servers import MinioServer, PostgresServer

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.postgres, pytest.mark.minio, pytest.mark.softhsm]


async def test_two_instances_share_links_exports_and_signing_secrets(
    tmp_path: Path,
    minio_server: MinioServer,
    postgres_server: PostgresServer,
    softhsm: SoftHsm,
) -> None:
    store = softhsm_store(softhsm)
    s3 = s3_settings(minio_server)
    env = kluis_env(
        KLUIS_CONFIG=str(ROOT / "config" / "kluis.scale.toml"),
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_SERVER_HOST="127.0.0.1",
        KLUIS_DATABASE_URL=postgres_server.create_database(),
        KLUIS_STORAGE_S3_ENDPOINT=minio_server.endpoint,
        KLUIS_STORAGE_S3_BUCKET=s3.s3_bucket,
        KLUIS_STORAGE_S3_ACCESS_KEY=minio_server.access_key,
        KLUIS_STORAGE_S3_SECRET_KEY=minio_server.secret_key,
        KLUIS_LINKS_SIGNING_REFRESH_SECONDS="2",
        **store.env,
    )
    inits = await asyncio.gather(*(kluis(env, "init") for _ in range(3)))
    assert [status for status, _, _ in inits] == [0, 0, 0], inits
    creators = [out for _, out, _ in inits if "shown only this once" in out]
    assert len(creators) == 1
    admin_token = creators[0].strip().splitlines()[-1]

    a, b = Server(env, tmp_path / "a.log"), Server(env, tmp_path / "b.log")
    await asyncio.gather(a.start(), b.start())
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, a.base, admin_token)
            location = (await admin.ok("POST", "/v1/locations", {"name": "L"}))["id"]
            group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "G"}))[
                "id"
            ]
            staff = await admin.ok("POST", "/v1/people", {"name": "S", "role": "staff"})
            parent = await admin.ok("POST", "/v1/people", {"name": "P", "role": "guardian"})
            await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
            child = (
                await admin.on(b).ok(
                    "POST",
                    "/v1/children",
                    {
                        "first_name": "N",
                        "last_name": "J",
                        "birth_date": "2023-04-02",
                        "group_id": group,
                    },
                )
            )["id"]
            await admin.ok(
                "PUT",
                f"/v1/children/{child}/placement",
                {"start_date": "2024-01-01", "end_date": None},
            )
            await admin.on(b).ok(
                "POST",
                f"/v1/children/{child}/guardians",
                {"person_id": parent["id"], "relation": "contract_parent", "household": "shared"},
            )
            documents = {}
            for n, server in enumerate((a, b, a)):
                body = PDF + f"% document {n}\n".encode() * (5000 + n)
                status, item = (
                    await admin.as_(staff["token"])
                    .on(server)
                    .upload(child, {"kind": "observation"}, body, f"obs-{n}.pdf")
                )
                assert status == 201, item
                documents[item["id"]] = body
            guardian = admin.as_(parent["token"])

            # A link issued on one instance is answered by the other, both ways.
            for issuer, other in ((a, b), (b, a)):
                for item, body in documents.items():
                    link = await guardian.on(issuer).ok("POST", f"/v1/items/{item}/links", {})
                    assert await guardian.fetch(link["url"], other.base) == (200, body)

            # An export made on A, downloaded half from B and resumed on A.
            export = await guardian.on(a).ok("POST", f"/v1/children/{child}/exports", {})
            path = export["url"][export["url"].index("/x/") :]
            half = export["size"] // 2
            async with session.get(b.base + path, headers={"Range": f"bytes=0-{half - 1}"}) as r:
                assert r.status == 206
                first = await r.read()
            async with session.get(a.base + path, headers={"Range": f"bytes={half}-"}) as r:
                assert r.status == 206
                rest = await r.read()
            async with session.get(b.base + path) as r:
                whole = await r.read()
            assert first + rest == whole
            assert len(whole) == export["size"]

            # Rotations from the command line (as from a third place), no restart.
            item = next(iter(documents))
            old = (await guardian.on(a).ok("POST", f"/v1/items/{item}/links", {}))["url"]
            for _ in range(3):  # the old secret falls off the kept three
                status, _, err = await kluis(env, "keys", "rotate-signing")
                assert status == 0, err
            deadline = time.monotonic() + 30
            while (await guardian.fetch(old, a.base))[0] == 200:  # A reads them again...
                assert time.monotonic() < deadline, "A never took up the rotation"
                await asyncio.sleep(0.2)
            assert (await guardian.fetch(old, a.base))[0] == 403
            fresh = (await guardian.on(a).ok("POST", f"/v1/items/{item}/links", {}))["url"]
            # ...and B answers a link signed with the new secret at once.
            assert await guardian.fetch(fresh, b.base) == (200, documents[item])
            assert (await guardian.fetch(old, b.base))[0] == 403
    finally:
        await asyncio.gather(a.stop(), b.stop())
    for server in (a, b):
        assert server.server_errors() == [], server.output()[-3000:]
