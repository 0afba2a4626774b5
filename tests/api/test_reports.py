"""Reports (issue 19 item 2): what the vault holds on a child or a person, as
JSON and as a printable page, for whom the policy lets see it."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.files import PDF, jpeg_with_secrets
from tests.helpers.api import Api, configured, start
from tests.helpers.chromium import render
from tests.helpers.items import consent, upload
from tests.helpers.world import World, world
from vault.api.resources import DB
from vault.config import Processor
from vault.db.schema import audit_events

REASON = "Inzageverzoek van de moeder van 1 december, art. 15"
PROCESSORS = (
    Processor("Hostingpartner B.V.", "Hosting of the servers", "Nederland (EU)"),
    Processor(
        "Administratiekantoor",
        "Invoices and contracts",
        "Nederland (EU)",
        ("invoice", "annual_statement", "contract"),
    ),
)
FINANCIAL = {"invoice", "annual_statement", "contract"}


@pytest.fixture
async def api(db_url: str, tmp_path: Path, aiohttp_client: Any, request: Any) -> Api:
    """The service on SQLite and PostgreSQL, with a processor register."""
    settings = configured(request, tmp_path / "data", db_url)
    return await start(dataclasses.replace(settings, processors=PROCESSORS), aiohttp_client)


def _report(child: str, **query: str) -> str:
    path = f"/v1/children/{child}/report"
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


async def _records(api: Api, w: World) -> None:
    """Two photos, one invoice; a consent granted and withdrawn."""
    await consent(api, w)
    for n in range(2):
        status, body = await upload(
            api, w.staff, w.child, {"kind": "photo", "title": f"zandbak {n}"}, jpeg_with_secrets()
        )
        assert status == 201, body
    status, body = await upload(
        api, w.administration, w.child, {"kind": "invoice", "title": "November"}, PDF, "nov.pdf"
    )
    assert status == 201, body
    await consent(api, w, "external_publication")
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/consents/external_publication",
        {"granted": False},
        w.parent,
    )


async def test_who_may_see_a_childs_report(api: Api) -> None:
    w = await world(api)
    path = _report(w.child)
    for token, status, code in [
        (w.stranger_parent, 404, "not_found"),  # a guardian of another child
        (w.other_staff, 404, "not_found"),
        (w.staff, 403, "forbidden"),
        (w.manager, 403, "forbidden"),
        (w.administration, 403, "forbidden"),
        (w.inspector, 403, "forbidden"),
        (api.admin, 403, "forbidden"),
    ]:
        got, body = await api.call("GET", path, token)
        assert (got, body["error"]["code"]) == (status, code), token
    # The guardians; a co-parent of a separate household sees neither the
    # contract's kinds nor the other guardians.
    for token in (w.parent, w.co_shared):
        report = await api.ok("GET", path, token=token)
        assert set(report["categories"]) >= FINANCIAL
        assert len(report["guardians"]) == 3
    separate = await api.ok("GET", path, token=w.co_separate)
    assert not set(separate["categories"]) & FINANCIAL
    assert "photo" in separate["categories"]
    assert [g["household"] for g in separate["guardians"]] == ["separate"]

    # The privacy officer only with a reason.
    for query, status, code in [
        ({}, 400, "invalid_input"),
        ({"reason": "ok"}, 400, "invalid_input"),
        ({"reason": "x" * 501}, 400, "invalid_input"),
        ({"reason": "Voor BSN 111222333"}, 422, "bsn_not_stored"),
    ]:
        got, body = await api.call("GET", _report(w.child, **query), w.officer)
        assert (got, body["error"]["code"]) == (status, code), query
        if not query:
            assert "reason" in body["error"]["message"]
    got, body = await api.call("GET", path, w.officer, params={"reason": REASON})
    assert got == 200, body
    assert len(body["guardians"]) == 3
    log = await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent)
    viewed = [e for e in log["events"] if e["action"] == "reports.child" and e["outcome"] == "ok"]
    assert {e["role"] for e in viewed} == {"guardian", "privacy_officer"}
    assert [e["reason"] for e in viewed if e["role"] == "privacy_officer"] == [REASON]

    # The right of access outlives the window: archived, the parent still sees it.
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-11-30"},
    )
    api.clock.now = api.clock.now.replace(year=2027, month=6)
    assert (await api.call("GET", path, w.parent))[0] == 200
    assert (await api.call("GET", path, w.staff))[1]["error"]["code"] == "forbidden"


async def test_the_report_says_what_is_kept_until_when(api: Api) -> None:
    w = await world(api)
    await _records(api, w)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-12-31"},
    )
    schedule = await api.ok("GET", f"/v1/children/{w.child}/retention", token=w.parent)
    log = await api.ok("GET", f"/v1/children/{w.child}/access-log", token=w.parent)
    report = await api.ok("GET", _report(w.child), token=w.parent)

    assert report["child"] == {
        "id": w.child,
        "first_name": "Noor",
        "last_name": "Jansen",
        "birth_date": "2023-04-02",
    }
    assert report["generated_at"].startswith("2026-11-21T09:00:00")
    names = {g["name"]: (g["relation"], g["household"]) for g in report["guardians"]}
    assert names == {
        "parent": ("contract_parent", "shared"),
        "co_shared": ("co_parent", "shared"),
        "co_separate": ("co_parent", "separate"),
    }
    categories = report["categories"]
    assert {kind: c["count"] for kind, c in categories.items() if c["count"]} == {
        "photo": 2,
        "invoice": 1,
    }
    for kind, entry in schedule["categories"].items():
        mine = categories[kind]
        for field in ("visible_until", "archived_from", "destroy_at", "statutory"):
            assert mine[field] == entry[field], (kind, field)
    assert categories["photo"]["destroy_at"] == "2027-12-31"
    assert categories["invoice"]["destroy_at"] == "2033-12-31"
    assert categories["photo"]["visible_until"] == "2027-02-25"
    assert categories["invoice"]["statutory"]
    assert not categories["photo"]["statutory"]
    assert categories["photo"]["recipients"] == ["Hostingpartner B.V."]
    assert categories["invoice"]["recipients"] == ["Hostingpartner B.V.", "Administratiekantoor"]
    assert "photo consent" in categories["photo"]["purpose"]
    assert report["processors"] == [
        {"name": p.name, "purpose": p.purpose, "location": p.location} for p in PROCESSORS
    ]

    consents = report["consents"]
    assert consents["current"] == {
        "photo": True,
        "diary": False,
        "external_publication": False,
        "school_handover": False,
    }
    changes = [(c["type"], c["granted"], c["by"]) for c in consents["history"]]
    assert changes == [
        ("photo", True, w.parent_id),
        ("external_publication", True, w.parent_id),
        ("external_publication", False, w.parent_id),
    ]

    # Who looked: every event the access log shows, and that look at the log itself.
    roles = Counter(e["role"] for e in log["events"]) + Counter({"guardian": 1})
    assert report["access"]["by_role"] == dict(roles)
    assert report["access"]["events"] == len(log["events"]) + 1
    assert report["access"]["by_role"]["staff"] >= 2  # the two photos
    assert report["access"]["since"] == min(e["at"] for e in log["events"])


async def test_query_parameters(api: Api) -> None:
    w = await world(api)
    plain = await api.ok("GET", _report(w.child), token=w.parent)
    # Unknown parameters are ignored, as for every query of this API (cache busters).
    got, busted = await api.call("GET", _report(w.child, _="123"), w.parent)
    assert got == 200
    assert busted["categories"] == plain["categories"]
    for path in (_report(w.child, format="pdf"), "/v1/me/report?format=xml"):
        got, body = await api.call("GET", path, w.parent)
        assert (got, body["error"]["code"]) == (400, "invalid_input"), path
        assert "format" in body["error"]["message"]


async def test_a_persons_own_report(api: Api) -> None:
    w = await world(api)
    second = await api.ok("POST", f"/v1/people/{w.parent_id}/tokens")
    await api.ok("GET", f"/v1/children/{w.child}", token=w.parent)
    report = await api.ok("GET", "/v1/me/report", token=w.parent)
    assert report["person"] == {"id": w.parent_id, "name": "parent", "role": "guardian"} | {
        "email": None
    }
    assert report["children"] == [w.child]
    assert len(report["tokens"]) == 2
    used = [t for t in report["tokens"] if t["last_used_at"]]
    assert len(used) == 1
    assert all(t["expires_at"] for t in report["tokens"])
    assert report["access"]["events"] >= 1
    assert set(report["access"]["by_role"]) == {"guardian"}
    # Revoked tokens are no working tokens.
    await api.ok("DELETE", f"/v1/people/{w.parent_id}/tokens")
    assert (await api.call("GET", "/v1/me/report", w.parent))[0] == 401
    fresh = await api.ok("POST", f"/v1/people/{w.parent_id}/tokens")
    mine = await api.ok("GET", "/v1/me/report", token=fresh["token"])
    assert len(mine["tokens"]) == 1
    assert mine["tokens"][0]["id"] not in {t["id"] for t in report["tokens"]}
    assert second["token"] != fresh["token"]
    # Each view is on the record, with its format.
    await api.ok("GET", "/v1/me/report?format=html", token=w.staff)
    async with api.client.app[DB].connect() as conn:
        rows = (
            await conn.execute(
                select(audit_events.c.actor, audit_events.c.detail)
                .where(audit_events.c.action == "reports.me", audit_events.c.outcome == "ok")
                .order_by(audit_events.c.seq)
            )
        ).all()
    assert [(r.actor, json.loads(r.detail)["format"]) for r in rows] == [
        (w.parent_id, "json"),
        (w.parent_id, "json"),
        (w.staff_id, "html"),
    ]
    # Staff: their mentee; every role has one.
    staff = await api.ok("GET", "/v1/me/report", token=w.staff)
    assert staff["children"] == [w.child]
    assert staff["person"]["role"] == "staff"
    for token in (w.officer, w.inspector, api.admin):
        assert (await api.call("GET", "/v1/me/report", token))[0] == 200


def _style_matches_policy(page: str, policy: str) -> bool:
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    return f"style-src 'sha256-{digest}'" in policy


async def test_the_page_escapes_every_value(api: Api) -> None:
    w = await world(api)
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    await api.ok("PATCH", f"/v1/children/{w.child}", {"first_name": hostile})
    person, _ = await api.person("guardian", hostile)
    await api.ok(
        "POST",
        f"/v1/children/{w.child}/guardians",
        {"person_id": person, "relation": "co_parent", "household": "shared"},
    )
    for path, token in [
        (_report(w.child, format="html"), w.parent),
        ("/v1/me/report?format=html", w.parent),
    ]:
        response = await api.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        policy = response.headers["Content-Security-Policy"]
        assert policy.startswith("default-src 'none'")
        assert "script-src" not in policy
        assert "unsafe" not in policy
        assert _style_matches_policy(page, policy)
        assert "<script" not in page
        assert "<img" not in page
        assert "<link" not in page
        assert "http://" not in page
        assert "https://" not in page
    child_page = await (
        await api.client.get(
            _report(w.child, format="html"), headers={"Authorization": f"Bearer {w.parent}"}
        )
    ).text()
    assert child_page.count("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img") == 2
    assert "Hostingpartner B.V." in child_page


async def test_the_page_says_what_happened_in_words(
    db_url: str, tmp_path: Path, request: Any, aiohttp_client: Any
) -> None:
    """A "no" that was never a "yes" is not a withdrawal; dates ahead are plans;
    roles in Dutch; no processors listed is said as such, not as "none"."""
    api = await start(configured(request, tmp_path / "data", db_url), aiohttp_client)
    w = await world(api)
    path = f"/v1/children/{w.child}/consents"
    await api.ok("PUT", f"{path}/school_handover", {"granted": False}, w.parent)
    await api.ok("PUT", f"{path}/photo", {"granted": True}, w.parent)
    await api.ok("PUT", f"{path}/photo", {"granted": False}, w.parent)
    response = await api.client.get(
        _report(w.child, format="html"), headers={"Authorization": f"Bearer {w.parent}"}
    )
    page = await response.text()
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    handover = [r for r in rows if "Overdracht naar school" in r and "UTC" in r]
    photo = [r for r in rows if "Foto&#x27;s en video&#x27;s" in r and "UTC" in r]
    assert len(handover) == 1
    assert "niet gegeven" in handover[0]
    assert "ingetrokken" not in handover[0]
    assert ["gegeven" in photo[0], "ingetrokken" in photo[1]] == [True, True]
    assert "Wordt vernietigd op" in page
    assert "ouder of verzorger" in page  # who looked: the parent, in Dutch
    assert "geen verwerkers opgegeven" in page
    # A reason too short says how long it must be.
    got, body = await api.call("GET", _report(w.child, reason="ab"), w.officer)
    assert (got, body["error"]["code"]) == (400, "invalid_input")
    assert "at least 3 characters" in body["error"]["message"]


async def test_the_printable_report_in_a_browser(api: Api, tmp_path: Path, chromium: str) -> None:
    w = await world(api)
    await _records(api, w)
    await api.ok(
        "PUT",
        f"/v1/children/{w.child}/placement",
        {"start_date": "2024-01-01", "end_date": "2026-12-31"},
    )
    url = str(api.client.make_url(_report(w.child, format="html")))
    seen = await render(
        chromium,
        url,
        tmp_path / "profile",
        headers={"Authorization": f"Bearer {w.parent}"},
        probe="getComputedStyle(document.querySelector('th')).backgroundColor",
    )
    for shot in (tmp_path / "child-report.png", Path("artifacts") / "child-report.png"):
        shot.parent.mkdir(exist_ok=True)
        shot.write_bytes(seen.png)
    assert seen.png.startswith(b"\x89PNG")
    assert len(seen.png) > 10_000
    # The style came through the page's Content-Security-Policy.
    assert seen.probe == "rgb(238, 238, 238)"
    text = seen.text
    assert "Noor Jansen" in text
    for category in ("Foto's", "Photos", "Facturen", "Invoices", "Meldcode"):
        assert category in text, category
    # The schedule's dates, in Dutch words and as ISO dates.
    for date in ("31 december 2027", "2027-12-31", "31 december 2033", "25 februari 2027"):
        assert date in text, date
    assert "Administratiekantoor" in text
    assert "ingetrokken" in text  # the withdrawn publication consent
