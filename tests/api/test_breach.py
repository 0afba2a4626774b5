"""The breach question over HTTP (``GET /v1/audit/touched``, an addition
beside API.md): what one account or one token touched between two moments,
for the privacy officer only, the same answer as ``kluis audit touched``."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.cli import clean_env, run
from tests.helpers.items import upload
from tests.helpers.links import fetch, link, photo_of
from tests.helpers.world import World, second_child, world
from vault.api.resources import DB, SETTINGS
from vault.db.schema import audit_events


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def ask(api: Api, caller: str, /, **query: str) -> tuple[int, Any]:
    return await api.call("GET", f"/v1/audit/touched?{urlencode(query)}", caller)


async def look(api: Api, token: str, item_id: str) -> None:
    """Open a record as a parent's app does: a link, then the link used."""
    status, _, _ = await fetch(api, await link(api, token, item_id))
    assert status == 200


@dataclasses.dataclass
class Scene:
    w: World
    #: The parent's second token (a second phone), and its id.
    phone: str
    since: datetime
    until: datetime
    before: str  # looked at by the parent before the window
    seen: str  # looked at by the parent's first token in the window
    on_phone: str  # looked at by the second token in the window
    after: str  # looked at by the parent after the window
    milas: str  # Mila's photo: her mother looks at it in the window
    mila: str


async def scene(api: Api) -> Scene:
    """A parent looks at photos of their child before, in and after a window,
    with two tokens; Mila's mother and a member of staff look too, in it."""
    w = await world(api)
    photos = [(await photo_of(api, w, title=f"Noor {n}"))["id"] for n in range(4)]
    mila, mother = await second_child(api, w)
    status, item = await upload(api, w.staff, mila, {"kind": "photo"}, jpeg_with_secrets())
    assert status == 201, item
    phone = (await api.ok("POST", f"/v1/people/{w.parent_id}/tokens"))["token"]

    await look(api, w.parent, photos[0])
    api.clock.now += timedelta(hours=1)
    since = api.clock.now
    api.clock.now += timedelta(minutes=1)
    await look(api, w.parent, photos[1])
    await look(api, phone, photos[2])
    await look(api, mother, item["id"])
    await look(api, w.staff, photos[3])
    # A record the parent may not see: refused, counted apart, reaches nothing.
    assert (await api.call("POST", f"/v1/items/{item['id']}/links", w.parent, {}))[0] == 404
    api.clock.now += timedelta(minutes=1)
    until = api.clock.now
    api.clock.now += timedelta(hours=1)
    await look(api, w.parent, photos[3])
    return Scene(
        w, phone, since, until, photos[0], photos[1], photos[2], photos[3], item["id"], mila
    )


async def test_the_privacy_officer_gets_what_a_parent_and_one_token_touched_in_a_window(
    api: Api,
) -> None:
    s = await scene(api)
    w = s.w
    status, answer = await ask(
        api, w.officer, person=w.parent_id, since=z(s.since), until=z(s.until)
    )
    assert status == 200, answer
    assert answer["person"] == w.parent_id
    assert "token" not in answer
    assert answer["known"] is True
    # Two records seen (one per token), two links each issued and used;
    # the refused link is counted and reaches nothing.
    assert answer["children"] == {w.child: 4}
    assert answer["items"] == {s.seen: 2, s.on_phone: 2}
    assert answer["kinds"] == {s.seen: "photo", s.on_phone: "photo"}
    assert answer["actions"] == {"link.issue": 3, "link.use": 2}
    assert (answer["events"], answer["refused"]) == (5, 1)
    first, last = (datetime.fromisoformat(answer[k]) for k in ("first", "last"))
    assert s.since <= first <= last < s.until
    assert datetime.fromisoformat(answer["since"]) == s.since
    # Not the photos before or after the window, nor what others looked at.
    for other in (s.before, s.after, s.milas):
        assert other not in answer["items"]
    assert s.mila not in answer["children"]

    # One token of the parent's: only what that phone touched. A link's use is
    # on the record under the person it was issued to (a link names no token),
    # so by token a record shows through the link the token asked for.
    phone_id = s.phone[3:19]
    status, answer = await ask(api, w.officer, token=phone_id, since=z(s.since), until=z(s.until))
    assert status == 200, answer
    assert (answer["token"], answer["known"]) == (phone_id, True)
    assert answer["items"] == {s.on_phone: 1}
    assert answer["children"] == {w.child: 1}
    assert answer["actions"] == {"link.issue": 1}

    # The window's ends: since is in, until is out.
    status, answer = await ask(
        api, w.officer, person=w.parent_id, since=z(s.until), until=z(s.until + timedelta(hours=2))
    )
    assert answer["items"] == {s.after: 2}, answer


async def test_the_question_is_on_the_record_and_nothing_names_a_child(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = await scene(api)
    w = s.w
    status, _ = await ask(api, w.officer, person=w.parent_id, since=z(s.since), until=z(s.until))
    assert status == 200
    async with api.client.app[DB].connect() as conn:
        rows = (
            await conn.execute(select(audit_events).where(audit_events.c.action == "audit.touched"))
        ).all()
    assert len(rows) == 1
    (asked,) = rows
    officer = (await api.ok("GET", "/v1/me", token=w.officer))["id"]
    assert (asked.actor, asked.role, asked.outcome) == (officer, "privacy_officer", "ok")
    detail = json.loads(asked.detail)
    assert {key: detail[key] for key in ("person", "token", "since", "until")} == {
        "person": w.parent_id,
        "token": None,
        "since": z(s.since).replace("Z", ".000000Z"),
        "until": z(s.until).replace("Z", ".000000Z"),
    }
    assert json.loads(asked.children) == []
    everything = "\n".join(str(value) for value in asked) + caplog.text
    for name in ("Noor", "Jansen", "Mila"):
        assert name not in everything

    # A refusal is on the record too, under the caller.
    assert (await ask(api, w.parent, person=w.parent_id, since=z(s.since), until=z(s.until)))[
        0
    ] == 403
    async with api.client.app[DB].connect() as conn:
        outcomes = (
            await conn.scalars(
                select(audit_events.c.outcome).where(audit_events.c.action == "audit.touched")
            )
        ).all()
    assert sorted(outcomes) == ["forbidden", "ok"]


async def test_everyone_but_the_privacy_officer_is_refused(api: Api) -> None:
    w = await world(api)
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
    for token in (
        w.parent,
        w.staff,
        w.manager,
        w.administration,
        w.inspector,
        api.admin,
    ):
        status, answer = await ask(api, token, person=w.parent_id, **window)
        assert (status, answer["error"]["code"]) == (403, "forbidden"), answer
        # Refused before the question is read: nothing about it is told.
        assert (await ask(api, token))[0] == 403
    assert (await api.call("GET", "/v1/audit/touched?person=x"))[0] == 401


DAY_AFTER = "2026-11-02T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({}, "'since' is missing"),
        ({"since": "2026-11-01T00:00:00Z"}, "'until' is missing"),
        (
            {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"},
            "exactly one of 'person'",
        ),
        (
            {
                "person": "0" * 32,
                "token": "0" * 16,
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-11-02T00:00:00Z",
            },
            "exactly one of 'person'",
        ),
        (
            {"person": "0" * 32, "since": "2026-11-02T00:00:00Z", "until": "2026-11-02T00:00:00Z"},
            "'since' must be before 'until'",
        ),
        (
            {"person": "0" * 32, "since": "2025-11-01T00:00:00Z", "until": "2026-11-03T00:00:00Z"},
            "at most 366 days",
        ),
        (
            {"person": "0" * 32, "since": "2026-11-01T00:00:00", "until": "2026-11-02T00:00:00Z"},
            "with its time zone",
        ),
        (
            # A bare number is no moment (msgspec would read Unix seconds).
            {"person": "0" * 32, "since": "20261101", "until": "20261102"},
            "ISO 8601",
        ),
        (
            {"person": "0" * 32, "since": "1764658800", "until": "2026-11-02T00:00:00Z"},
            "ISO 8601",
        ),
        (
            # A '+' a URL did not escape arrives as a space.
            {
                "person": "0" * 32,
                "since": "2026-11-01T00:00:00 01:00",
                "until": "2026-11-02T00:00:00Z",
            },
            "%2B",
        ),
        (
            {
                "person": "Noor Jansen",
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-11-02T00:00:00Z",
            },
            "a person's id",
        ),
        (
            {
                "token": "kl_0123456789abcdef.secret",
                "since": "2026-11-01T00:00:00Z",
                "until": "2026-11-02T00:00:00Z",
            },
            "never the whole token",
        ),
    ],
)
async def test_a_question_asked_wrongly_says_what_to_send(
    api: Api, query: dict[str, str], says: str
) -> None:
    officer = (await api.person("privacy_officer"))[1]
    status, answer = await ask(api, officer, **query)
    assert (status, answer["error"]["code"]) == (400, "invalid_input"), answer
    assert says in answer["error"]["message"]


async def test_a_person_or_token_the_directory_does_not_know_gets_an_empty_answer(
    api: Api,
) -> None:
    officer = (await api.person("privacy_officer"))[1]
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
    for who in ({"person": "0" * 32}, {"token": "0" * 16}):
        status, answer = await ask(api, officer, **who, **window)
        assert status == 200, answer
        assert answer["known"] is False
        assert (answer["events"], answer["children"], answer["items"]) == (0, {}, {})
        assert answer["first"] is None
        assert answer["last"] is None


@pytest.mark.slow  # runs the kluis command
async def test_the_command_line_and_the_http_answer_agree(api: Api) -> None:
    s = await scene(api)
    w = s.w
    settings = api.client.app[SETTINGS]
    env = clean_env(KLUIS_DATA_DIR=str(settings.data_dir), KLUIS_DATABASE_URL=settings.database_url)
    for who, flag in ((w.parent_id, "person"), (s.phone[3:19], "token")):
        window = {"since": z(s.since), "until": z(s.until)}
        done = run(
            env, "audit", "touched", f"--{flag}", who, "--since", z(s.since), "--until", z(s.until)
        )
        assert done.returncode == 0, done.stderr
        cli = json.loads(done.stdout)
        status, http = await ask(api, w.officer, **{flag: who}, **window)
        assert status == 200, http
        for key in ("events", "refused", "children", "items", "actions"):
            assert http[key] == cli[key], key
        for key in ("first", "last"):
            assert datetime.fromisoformat(http[key]) == datetime.fromisoformat(cli[key])
        assert http["items"]
