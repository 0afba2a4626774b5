"""The web app's test world, made through the API of one real ``kluis serve``:
a location with one group, a member of staff, two families and a child
without photo consent; photos (one of them a group photo of both families'
children), a short video made by ffmpeg, a diary entry. Also what the
browser tests share: where screenshots go, and the accessibility check."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.files import phone_video, picture
from tests.helpers.processes import Client
from tests.helpers.smtp import SmtpServer
from vault.accounts.totp import code_at, step_of

PASSWORD = "correct horse battery staple"
#: Screenshots of each main screen (gitignored ``artifacts/``, as tests/api/test_exports.py).
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "webapp"


def photo(label: int, width: int = 320, height: int = 240) -> bytes:
    """A small JPEG with bytes of its own."""
    image = picture(width + label, height)
    data: bytes = image.jpegsave_buffer(Q=80, keep="none")
    return data


@dataclasses.dataclass
class Family:
    email: str
    person: str
    child: str
    first_name: str
    token: str
    #: The one-time code secret, once they set up a second factor.
    totp: str | None = None


@dataclasses.dataclass
class World:
    admin: Client
    staff: Client
    staff_token: str
    officer_token: str
    anna: Family  # signs in with a password
    bram: Family  # arrives with a token (as after single sign-on)
    cas: str  # a child in the same group without photo consent
    group_photo: str
    video: str
    photos: list[str]


async def _invited_password(admin: Client, smtp: SmtpServer, person: str, seen: int) -> None:
    await admin.ok("POST", f"/v1/people/{person}/invitations")
    mails = await asyncio.to_thread(smtp.wait_for, seen + 1, 30.0)
    text = mails[seen].message.get_body(("plain",))
    assert text is not None
    found = re.search(r"/invite/(ki_[A-Za-z0-9_.-]+)", text.get_content())
    assert found, text.get_content()
    await admin.ok("POST", f"/v1/invitations/{found[1]}/accept", {"password": PASSWORD})


async def _second_factor(admin: Client, email: str) -> str:
    """Sign in with the password and set up one-time codes: the secret."""
    session = await admin.ok("POST", "/v1/sessions", {"email": email, "password": PASSWORD})
    own = admin.as_(session["token"])
    secret = str((await own.ok("POST", "/v1/me/totp"))["secret"])
    # The step before this one: the browser's sign-in later uses a later step
    # (a used step is never accepted again).
    code = code_at(secret, step_of(datetime.now(UTC)) - 1)
    await own.ok("POST", "/v1/me/totp/confirm", {"code": code})
    await own.ok("DELETE", "/v1/sessions/current")
    return secret


def current_code(secret: str) -> str:
    return code_at(secret, step_of(datetime.now(UTC)))


async def make_world(admin: Client, smtp: SmtpServer, folder: Path) -> World:
    location = (await admin.ok("POST", "/v1/locations", {"name": "De Boomhut"}))["id"]
    group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Rupsjes"}))[
        "id"
    ]
    staff = await admin.ok(
        "POST", "/v1/people", {"name": "Sanne", "email": "sanne@example.org", "role": "staff"}
    )
    await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    officer = await admin.ok("POST", "/v1/people", {"name": "Pim", "role": "privacy_officer"})

    async def child(first: str, parent: str | None) -> str:
        made = await admin.ok(
            "POST",
            "/v1/children",
            {
                "first_name": first,
                "last_name": "Jansen",
                "birth_date": "2023-04-02",
                "group_id": group,
            },
        )
        await admin.ok(
            "PUT",
            f"/v1/children/{made['id']}/placement",
            {"start_date": "2024-01-01", "end_date": None},
        )
        if parent is not None:
            await admin.ok(
                "POST",
                f"/v1/children/{made['id']}/guardians",
                {"person_id": parent, "relation": "contract_parent", "household": "shared"},
            )
        return str(made["id"])

    families = []
    for first, email in (("Anna", "ouder.anna@example.org"), ("Bram", "ouder.bram@example.org")):
        parent = await admin.ok(
            "POST", "/v1/people", {"name": f"Ouder van {first}", "email": email, "role": "guardian"}
        )
        child_id = await child(first, parent["id"])
        for kind in ("photo", "diary"):
            await admin.as_(parent["token"]).ok(
                "PUT", f"/v1/children/{child_id}/consents/{kind}", {"granted": True}
            )
        families.append(Family(email, parent["id"], child_id, first, parent["token"]))
    anna, bram = families
    await _invited_password(admin, smtp, anna.person, 0)
    anna.totp = await _second_factor(admin, anna.email)
    cas = await child("Cas", None)

    crew = admin.as_(staff["token"])
    photos = []
    for n in range(10):  # with the rest, more than one page of the timeline (12)
        status, item = await crew.upload(
            anna.child, {"kind": "photo", "title": f"Buiten spelen {n}"}, photo(n), f"p{n}.jpg"
        )
        assert status == 201, item
        photos.append(item["id"])
    status, item = await crew.upload(
        anna.child,
        {
            "kind": "photo",
            "title": "Groepsfoto",
            "taken_at": "2026-06-15T10:30:00+02:00",
            "tagged_children": [bram.child],
        },
        photo(7, 400, 300),
        "groep.jpg",
    )
    assert status == 201, item
    group_photo = item["id"]
    clip = phone_video(folder, "mp4", faststart=True, seconds=8).read_bytes()
    status, item = await crew.upload(anna.child, {"kind": "video"}, clip, "clip.mp4")
    assert status == 201, item
    video = item["id"]
    await crew.ok(
        "POST",
        f"/v1/children/{anna.child}/items",
        {"kind": "diary", "date": "2026-12-01", "text": "Anna heeft vandaag een toren gebouwd."},
    )
    return World(
        admin=admin,
        staff=crew,
        staff_token=staff["token"],
        officer_token=officer["token"],
        anna=anna,
        bram=bram,
        cas=cas,
        group_photo=group_photo,
        video=video,
        photos=photos,
    )


async def serious_violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now.

    The script goes in through the DevTools protocol (``evaluate``), not a
    ``<script>`` tag, so the page's own policy (no inline script) stays on."""
    await page.evaluate(axe_source)
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]
