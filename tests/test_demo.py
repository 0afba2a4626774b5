"""``kluis demo`` as someone trying the product runs it: init, demo, serve, sign in.

On a fresh vault (embedded defaults) the demo prints where to sign in and
the accounts; a real ``kluis serve`` then lets each parent sign in with the
printed password and see what the sample means them to see: their child's
timeline with its photos (metadata stripped: no GPS in a fetched
original), not the group photo when their child is not in it, the video
with its posters once the job worker has made them, the invoice only for
the contract parent's household, the 8-week banner's dates for the child
whose contract ended. A second ``kluis demo`` refuses and changes nothing;
neither a password nor a child's name reaches the server's log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.keystores import SoftHsm, softhsm_store
from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.media.tools import exiftool, need
from tests.servers import MinioServer, PostgresServer
from vault.config import load_settings
from vault.db.schema import children, guardians
from vault.demo import pictures, sample
from vault.demo.organisation import new_password
from vault.directory.bsn import contains_bsn
from vault.directory.children import read_profile
from vault.wiring import open_vault

_ACCOUNT = re.compile(r"^(\w+)\s+(\S+@\S+)\s+(\S+)\s{2}(.+)$")
SCALE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "kluis.scale.toml"
CHILD_NAMES = {kid.first_name for kid in sample.KIDS} | {kid.last_name for kid in sample.KIDS}


@dataclasses.dataclass(frozen=True)
class Printed:
    role: str
    email: str
    password: str


def accounts_in(out: str) -> dict[str, Printed]:
    """The accounts ``kluis demo`` printed, by e-mail address."""
    found = {}
    for line in out.splitlines():
        match = _ACCOUNT.match(line)
        if match and match.group(1) != "role":
            found[match.group(2)] = Printed(match.group(1), match.group(2), match.group(3))
    return found


def email_of(key: str) -> str:
    return next(person.email for person in sample.PEOPLE if person.key == key)


def state_of(data: Path) -> str:
    """A digest of everything the vault holds: every row, every file's bytes."""
    digest = hashlib.sha256()
    db = sqlite3.connect(data / "kluis.db")
    try:
        for line in db.iterdump():
            digest.update(line.encode())
    finally:
        db.close()
    for path in sorted(data.rglob("*")):
        if path.is_file() and not path.name.startswith("kluis.db"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


async def children_by_name(env: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """First name -> (child id, guardian ids), read from the vault itself."""
    async with open_vault(load_settings(env), store=False) as vault:
        async with vault.engine.connect() as conn:
            ids = (await conn.scalars(children.select().with_only_columns(children.c.id))).all()
            links = (await conn.execute(guardians.select())).all()
        found = {}
        for child_id in ids:
            profile = await read_profile(vault.engine, vault.keys, child_id)
            found[profile.first_name] = (
                child_id,
                [row.person_id for row in links if row.child_id == child_id],
            )
    return found


async def sign_in(session: aiohttp.ClientSession, server: Server, who: Printed) -> Client:
    async with session.post(
        f"{server.base}/v1/sessions", json={"email": who.email, "password": who.password}
    ) as answer:
        body = await answer.json()
        assert answer.status == 201, body
    return Client(session, server.base, body["token"])


async def timeline(client: Client, child_id: str) -> list[dict[str, Any]]:
    page = await client.ok("GET", f"/v1/children/{child_id}/items?limit=100")
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


@pytest.mark.localdisk
@pytest.mark.sqlite
@pytest.mark.slow
async def test_demo_on_a_fresh_vault_then_its_people_sign_in(tmp_path: Path) -> None:
    need("ffmpeg")
    data = tmp_path / "data"
    env = kluis_env(KLUIS_DATA_DIR=str(data))
    status, _, err = await kluis(env, "init")
    assert status == 0, err

    status, out, err = await kluis(env, "demo")
    assert status == 0, err
    assert "sign in at http://127.0.0.1:8080/app/" in out
    assert "No video" not in out
    printed = accounts_in(out)
    assert {person.email for person in sample.PEOPLE} == set(printed)
    assert {a.role for a in printed.values()} >= {
        "guardian",
        "staff",
        "location_manager",
        "privacy_officer",
    }
    assert len({a.password for a in printed.values()}) == len(printed)
    for secret in [a.password for a in printed.values()] + sorted(CHILD_NAMES):
        assert secret not in err, "the demo's log names a child or a password"

    kids = await children_by_name(env)
    lotte, lotte_guardians = kids["Lotte"]
    daan, _ = kids["Daan"]
    mila, _ = kids["Mila"]
    finn, _ = kids["Finn"]

    server = await Server(env, tmp_path / "serve.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            eva = await sign_in(session, server, printed[email_of("eva")])
            mine = await timeline(eva, lotte)
            kinds = [item["kind"] for item in mine]
            assert {"photo", "video", "diary", "observation", "invoice"} <= set(kinds)
            stamps = [item["created_at"] for item in mine]
            assert stamps == sorted(stamps, reverse=True), "the timeline is not newest first"
            photos = [item for item in mine if item["kind"] == "photo"]
            group = next(item for item in photos if len(item["children"]) == 3)
            assert mila in group["children"]
            assert finn in group["children"]
            assert lotte in group["children"]
            # Thumbnails in one batch call, as the app fetches them.
            batch = await eva.ok(
                "POST",
                "/v1/links",
                {"items": [{"item_id": p["id"], "variant": "thumb"} for p in photos]},
            )
            for link in batch["links"]:
                status, thumb = await eva.fetch(link["url"], server.base)
                assert status == 200
                assert thumb[:3] == b"\xff\xd8\xff"
            link = await eva.ok("POST", f"/v1/items/{group['id']}/links", {})
            status, original = await eva.fetch(link["url"], server.base)
            assert status == 200
            fetched = tmp_path / "original.jpg"
            fetched.write_bytes(original)
            tags = exiftool(fetched)
            assert not [k for k in tags if "GPS" in k], tags
            assert pictures.CAMERA[0] not in str(tags)

            # A co-parent in a separate household: the same child, not the invoice.
            ruben = await sign_in(session, server, printed[email_of("ruben")])
            theirs = {item["kind"] for item in await timeline(ruben, lotte)}
            assert "photo" in theirs
            assert "invoice" not in theirs
            assert len(lotte_guardians) == 2

            # A child without photo consent: diary only, and never the group photo.
            fenna = await sign_in(session, server, printed[email_of("fenna")])
            assert {item["kind"] for item in await timeline(fenna, daan)} == {"diary"}
            status, refused = await fenna.call("POST", f"/v1/items/{group['id']}/links", {})
            assert status == 404, refused

            # The group photo and the video for the family of a child tagged in them.
            noor = await sign_in(session, server, printed[email_of("noor")])
            hers = await timeline(noor, mila)
            assert group["id"] in [item["id"] for item in hers]
            (clip,) = [item for item in hers if item["kind"] == "video"]
            posters: list[str] = []
            deadline = asyncio.get_running_loop().time() + 180
            while not {"preview", "thumb"} <= set(posters):
                assert asyncio.get_running_loop().time() < deadline, "no posters were made"
                await asyncio.sleep(0.5)
                posters = (await noor.ok("GET", f"/v1/items/{clip['id']}"))["variants"]
            poster = await noor.ok("POST", f"/v1/items/{clip['id']}/links", {"variant": "thumb"})
            status, image = await noor.fetch(poster["url"], server.base)
            assert status == 200
            assert image[:3] == b"\xff\xd8\xff"

            # The contract that ended: the dates the 8-week banner shows.
            bas = await sign_in(session, server, printed[email_of("bas")])
            today = datetime.now(UTC).date()
            schedule = await bas.ok("GET", f"/v1/children/{finn}/retention")
            end = date.fromisoformat(schedule["placement_end"])
            assert end == today - timedelta(days=10)
            visible = date.fromisoformat(schedule["categories"]["photo"]["visible_until"])
            assert visible == end + timedelta(weeks=8)
            assert len(await timeline(bas, finn)) >= 3

            # Staff see their group's children, with the consents to check.
            joris = await sign_in(session, server, printed[email_of("joris")])
            consents = await joris.ok("GET", f"/v1/children/{daan}/consents")
            assert consents["current"]["photo"] is False
            assert consents["current"]["diary"] is True
    finally:
        await server.stop()
    assert server.server_errors() == []
    log = server.output()
    for secret in [a.password for a in printed.values()] + sorted(CHILD_NAMES):
        assert secret not in log, "the server's log names a child or a password"

    before = state_of(data)
    status, again, err = await kluis(env, "demo")
    assert status == 1
    assert "already holds records" in err
    assert "Nothing was written" in err
    assert "@" not in again
    assert state_of(data) == before, "a refused demo changed the vault"
    status, out, err = await kluis(env, "audit", "verify")
    assert status == 0, out + err


@pytest.mark.minio
@pytest.mark.postgres
@pytest.mark.softhsm
@pytest.mark.slow
async def test_demo_on_minio_postgres_and_an_hsm(
    tmp_path: Path, minio_server: MinioServer, postgres_server: PostgresServer, softhsm: SoftHsm
) -> None:
    """The configuration given is the one filled: the scale setup, its
    installation lock an advisory lock on PostgreSQL."""
    env = kluis_env(
        **softhsm_store(softhsm).env,
        KLUIS_CONFIG=str(SCALE_CONFIG),
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_SERVER_HOST="127.0.0.1",
        KLUIS_DATABASE_URL=postgres_server.create_database(),
        KLUIS_STORAGE_S3_ENDPOINT=minio_server.endpoint,
        KLUIS_STORAGE_S3_BUCKET="kluis-demo-test",
        KLUIS_STORAGE_S3_ACCESS_KEY=minio_server.access_key,
        KLUIS_STORAGE_S3_SECRET_KEY=minio_server.secret_key,
    )
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    status, out, err = await kluis(env, "demo")
    assert status == 0, err
    printed = accounts_in(out)
    lotte, _ = (await children_by_name(env))["Lotte"]
    server = await Server(env, tmp_path / "serve.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            eva = await sign_in(session, server, printed[email_of("eva")])
            photos = [item for item in await timeline(eva, lotte) if item["kind"] == "photo"]
            assert len(photos) == 2
            link = await eva.ok("POST", f"/v1/items/{photos[0]['id']}/links", {"variant": "thumb"})
            status, thumb = await eva.fetch(link["url"], server.base)
            assert status == 200
            assert thumb[:3] == b"\xff\xd8\xff"
    finally:
        await server.stop()
    assert server.server_errors() == []
    status, _, err = await kluis(env, "demo")
    assert status == 1
    assert "already holds records" in err


@pytest.mark.localdisk
@pytest.mark.sqlite
@pytest.mark.slow
async def test_two_at_once_without_ffmpeg_one_fills_and_says_there_is_no_video(
    tmp_path: Path,
) -> None:
    """Two ``kluis demo`` side by side: the installation lock lets one fill the
    vault and the other find it filled. Without ffmpeg there is no video, and
    one line says why."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = kluis_env(KLUIS_DATA_DIR=str(tmp_path / "data"), PATH=str(empty))
    status, _, err = await kluis(env, "init")
    assert status == 0, err
    runs = await asyncio.gather(kluis(env, "demo"), kluis(env, "demo"))
    assert sorted(status for status, _, _ in runs) == [0, 1]
    (out,) = [out for status, out, _ in runs if status == 0]
    (refusal,) = [err for status, _, err in runs if status == 1]
    assert "already holds records" in refusal
    (line,) = [line for line in out.splitlines() if line.startswith("No video")]
    assert "ffmpeg" in line
    assert "0 video" in out
    assert len(accounts_in(out)) == len(sample.PEOPLE)


def test_the_sample_photos_carry_what_a_camera_writes(tmp_path: Path) -> None:
    """What the vault must strip is there to begin with (the other test
    finds it gone from what a parent fetches)."""
    look = sample.KIDS[0].look
    path = tmp_path / "photo.jpg"
    path.write_bytes(pictures.photo([look], "slide", datetime(2026, 11, 30, 9, 30), "Joris"))
    tags = exiftool(path)
    assert [k for k in tags if "GPSLatitude" in k]
    assert [k for k in tags if "GPSLongitude" in k]
    assert pictures.CAMERA[0] in str(tags)


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in _texts(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [t for inner in value for t in _texts(inner)]
    if isinstance(value, dict):
        return [t for pair in value.items() for t in _texts(list(pair))]
    return []


def test_no_text_of_the_sample_holds_a_bsn_shaped_number() -> None:
    everything = (sample.PEOPLE, sample.KIDS, sample.PHOTOS, sample.VIDEO, sample.DIARIES)
    texts = _texts([*everything, sample.DOCUMENTS, sample.GROUPS, sample.LOCATION])
    assert len(texts) > 60
    assert [text for text in texts if contains_bsn(text)] == []
    # The demo's passwords pass the sign-in rules (those refuse a BSN-shaped run too).
    passwords = {new_password("someone@klavertje.example") for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 19 and not contains_bsn(p) for p in passwords)
