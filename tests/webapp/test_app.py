"""The web app in a real browser (Debian's Chromium driven by Playwright)
against one real ``kluis serve``: what a parent, a member of staff and the
privacy officer see and do. Screenshots of each main screen go to
``artifacts/webapp/``; axe-core checks each for serious accessibility faults."""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, FilePayload, Page, Route, ViewportSize, expect

from tests.files import PDF, camera_jpeg
from tests.helpers.organisation import placed_child
from tests.helpers.processes import Server
from tests.helpers.webapp import (
    ARTIFACTS,
    PASSWORD,
    World,
    current_code,
    photo,
    serious_violations,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.sqlite, pytest.mark.localdisk]

PHONE: ViewportSize = {"width": 390, "height": 844}
TABLET: ViewportSize = {"width": 1024, "height": 768}
MONTHS = "januari februari maart april mei juni juli augustus september oktober november december"


def dutch(day: date) -> str:
    return f"{day.day} {MONTHS.split()[day.month - 1]} {day.year}"


@asynccontextmanager
async def opened(
    browser: Browser, viewport: ViewportSize = PHONE, **options: Any
) -> AsyncIterator[Page]:
    """A fresh context (its own sessionStorage): one person on one device
    (``options``: more of Playwright's, a time zone). Script errors and
    policy violations on the page fail the test."""
    context = await browser.new_context(viewport=viewport, accept_downloads=True, **options)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page
        assert problems == []
    finally:
        await context.close()


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def accessible(page: Page, axe: str, where: str) -> None:
    found = await serious_violations(page, axe)
    assert found == [], f"{where}: {json.dumps(found, indent=1)}"


async def with_token(page: Page, server: Server, token: str) -> None:
    """Arrive as after single sign-on: /app/#token=…"""
    await page.goto(f"{server.base}/app/#token={token}")
    await expect(page.locator("h1")).not_to_have_text("Aanmelden")


async def played_past(page: Page, moment: float) -> None:
    """Wait for the player to have played past ``moment`` (a function, not a
    string: the page's policy forbids evaluating strings, and rightly so)."""
    await page.wait_for_function(
        "at => { const v = document.getElementById('player');"
        " return !v.seeking && v.currentTime > at; }",
        arg=moment,
    )


async def tiles(page: Page) -> list[str]:
    items: list[str] = await page.locator("#timeline li").evaluate_all(
        "els => els.map(e => e.dataset.item)"
    )
    return items


async def test_a_parent_signs_in_pages_the_timeline_opens_a_photo_and_plays_a_video_past_its_link(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    async with opened(browser) as page:
        answer = await page.goto(f"{server.base}/")
        assert answer is not None
        assert page.url == f"{server.base}/app/"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        await expect(page.get_by_role("heading", name="Aanmelden")).to_be_visible()
        await expect(page.locator("#signout")).to_be_hidden()  # nobody to sign out yet
        await shot(page, "sign-in")
        await accessible(page, axe_source, "sign-in")
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.get_by_role("button", name="Nederlands").click()

        await page.get_by_label("E-mailadres").fill(w.anna.email)
        await page.get_by_label("Wachtwoord").fill("not the password at all")
        await page.get_by_role("button", name="Aanmelden").click()
        await expect(page.get_by_role("alert")).to_contain_text("klopt niet")
        await page.get_by_label("Wachtwoord").fill(PASSWORD)
        await page.get_by_role("button", name="Aanmelden").click()
        await expect(page.get_by_role("alert")).to_contain_text("code uit uw authenticator")
        assert w.anna.totp is not None
        code = page.get_by_label("Code uit uw app (6 cijfers)")
        await expect(code).to_be_focused()
        await code.fill(current_code(w.anna.totp))
        await code.press("Enter")  # the keyboard alone signs in
        await expect(page.get_by_role("heading", name="Mijn kinderen")).to_be_visible()
        assert "token" not in page.url
        await expect(page.locator("main")).to_contain_text("Rupsjes")
        await shot(page, "children")

        batches: list[str] = []
        page.on("request", lambda r: batches.append(r.url) if r.url.endswith("/v1/links") else None)
        await page.get_by_role("link", name="Anna Jansen").click()
        await expect(page.locator("#timeline li")).to_have_count(12)
        first = await tiles(page)
        newest = await w.staff.ok("GET", f"/v1/children/{w.anna.child}/items?limit=12")
        assert first == [item["id"] for item in newest["items"]]  # newest first
        await expect(page.locator("#timeline .diary").first).to_contain_text("toren gebouwd")
        # Titles, and when a photo was taken rather than stored.
        group = page.locator(f'li[data-item="{w.group_photo}"] .caption')
        await expect(group).to_contain_text("Groepsfoto · 15 jun 2026")
        await expect(page.locator(f'li[data-item="{w.photos[9]}"]')).to_contain_text(
            "Buiten spelen 9"
        )
        thumbs = page.locator("#timeline img")
        await expect(thumbs.first).to_have_js_property("complete", True)
        assert await thumbs.first.evaluate("img => img.naturalWidth") > 0
        assert len(batches) == 1  # one batch link call for the page's thumbnails
        await shot(page, "timeline")
        await accessible(page, axe_source, "timeline")
        await page.get_by_role("button", name="Meer laden").click()
        await expect(page.locator("#timeline li")).to_have_count(
            13
        )  # 10 photos, the group photo, the video, the diary
        assert len(batches) == 2
        assert (await tiles(page))[:12] == first
        # The end: no button that would load the first page again.
        await expect(page.get_by_role("button", name="Meer laden")).to_be_hidden()
        await expect(page.get_by_text("Dit is alles.")).to_be_visible()

        # A photo: the preview first, the original on request.
        await page.locator(f'li[data-item="{w.group_photo}"] button').click()
        viewer = page.locator("#viewer-image")
        await expect(viewer).to_have_attribute("data-variant", "preview")
        await expect(viewer).to_have_js_property("complete", True)
        assert await viewer.evaluate("img => img.naturalWidth") > 0
        await shot(page, "photo-viewer")
        await accessible(page, axe_source, "photo viewer")
        await page.get_by_role("button", name="Origineel tonen").click()
        await expect(viewer).to_have_attribute("data-variant", "original")
        await expect(viewer).to_have_js_property("complete", True)
        assert await viewer.evaluate("img => img.naturalWidth") == 407
        await page.get_by_role("button", name="Sluiten").click()

        # The video, with links that live 3 s: it must outlive them.
        await page.evaluate("localStorage.setItem('kluis.linkTtlSeconds', '3')")
        await page.locator(f'li[data-item="{w.video}"] button').click()
        video = page.locator("#player")
        await expect(video).to_have_attribute("data-links", "1")
        await video.evaluate("v => v.play()")
        await played_past(page, 0.3)
        for at in (2.0, 5.5, 4.0):
            await video.evaluate(f"v => {{ v.currentTime = {at}; }}")
            await played_past(page, at + 0.3)
        await shot(page, "video")
        await accessible(page, axe_source, "video player")
        await video.evaluate("v => v.pause()")
        paused_at = await video.evaluate("v => v.currentTime")
        # On a busy host the first link may already have been renewed by a seek.
        issued = int(await video.get_attribute("data-links") or 0)
        await asyncio.sleep(4.5)
        stale = await video.evaluate(
            "async v => { const r = await fetch(v.src);"
            " return [r.status, (await r.json()).error.code]; }"
        )
        assert stale == [403, "link_expired"]
        await video.evaluate("v => { v.currentTime = 1.5; }")
        await expect(video).to_have_attribute("data-links", str(issued + 1))
        await expect(video).to_have_attribute("data-renewing", "")
        assert abs(await video.evaluate("v => v.currentTime") - 1.5) < 0.2
        await video.evaluate("v => v.play()")
        await played_past(page, 1.9)
        assert await video.evaluate("v => v.error") is None
        await expect(page.locator("dialog [role=alert]")).to_be_hidden()
        assert paused_at > 4.0


async def test_withdrawal_is_explained_first_and_the_other_family_loses_the_group_photo(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    async with opened(browser) as bram, opened(browser) as anna:
        await with_token(bram, server, w.bram.token)
        assert "token" not in bram.url  # taken out of the address bar
        assert await bram.evaluate("sessionStorage.getItem('kluis.token')") == w.bram.token
        await bram.goto(f"{server.base}/app/#/child/{w.bram.child}")
        await expect(bram.locator(f'li[data-item="{w.group_photo}"] img')).to_have_count(1)

        await with_token(anna, server, w.anna.token)
        await anna.goto(f"{server.base}/app/#/child/{w.anna.child}/consents")
        await expect(anna.locator("#consents thead th")).to_have_text(
            ["Toestemming", "Stand", "Wijzigen"]
        )
        row = anna.locator('tr[data-consent="photo"]')
        await expect(row).to_contain_text("Gegeven")
        await row.get_by_role("button", name="Intrekken").click()
        effects = anna.locator("#withdraw-effects")
        await expect(effects).to_contain_text("niet meer te zien voor andere gezinnen")
        await expect(effects).to_contain_text("Anna")
        await expect(effects).to_contain_text("Groepsfoto's en video's")
        await shot(anna, "consent-withdrawal")
        await accessible(anna, axe_source, "consent withdrawal")
        current = await w.admin.as_(w.anna.token).ok("GET", f"/v1/children/{w.anna.child}/consents")
        assert current["current"]["photo"] is True  # nothing changed before the confirmation
        await anna.get_by_role("button", name="Ja, intrekken").click()
        await expect(row).to_contain_text("Niet gegeven")
        latest = anna.locator("#consent-history li").first
        await expect(latest).to_contain_text("Foto's en video's · Niet gegeven (door u)")
        await shot(anna, "consents")
        await accessible(anna, axe_source, "consents")

        await bram.reload()
        await expect(bram.locator("#timeline")).to_have_attribute("data-pages", "1")
        await expect(bram.locator("#timeline-empty")).to_be_visible()  # it was the only one
        await expect(bram.locator(f'li[data-item="{w.group_photo}"]')).to_have_count(0)
        # Anna's family still sees its own group photo.
        await anna.goto(f"{server.base}/app/#/child/{w.anna.child}")
        await expect(anna.locator(f'li[data-item="{w.group_photo}"]')).to_have_count(1)


async def test_staff_see_consent_at_a_glance_and_one_of_three_uploads_is_refused_in_words(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    # Daan's contract runs when the screen opens and has ended by the time staff upload.
    group = (await w.admin.ok("GET", f"/v1/children/{w.cas}"))["group_id"]
    daan = await w.admin.ok(
        "POST",
        "/v1/children",
        {
            "first_name": "Daan",
            "last_name": "Visser",
            "birth_date": "2023-05-01",
            "group_id": group,
        },
    )
    placement = f"/v1/children/{daan['id']}/placement"
    await w.admin.ok("PUT", placement, {"start_date": "2024-01-01", "end_date": None})
    async with opened(browser, TABLET) as page:
        await with_token(page, server, w.staff_token)
        await expect(page.get_by_role("heading", name="Mijn groepen")).to_be_visible()
        await expect(page.locator("#diary-photos")).to_be_hidden()  # no photos uploaded yet
        await expect(page.locator(f'tr[data-child="{w.cas}"]')).to_have_attribute(
            "data-photo", "no"
        )
        await expect(page.locator(f'tr[data-child="{w.bram.child}"]')).to_have_attribute(
            "data-photo", "yes"
        )
        before = await w.staff.ok("GET", f"/v1/children/{w.bram.child}/items?kind=photo&limit=200")
        await page.get_by_label("Kies foto's of een video").set_input_files(
            [
                FilePayload(name=f"tablet-{n}.jpg", mimeType="image/jpeg", buffer=photo(20 + n))
                for n in range(3)
            ]
        )
        rows = page.locator("#upload-list li")
        await expect(rows).to_have_count(3)
        for n in range(3):
            await rows.nth(n).locator(f'input[data-child="{w.bram.child}"]').check()
        await rows.nth(2).locator(f'input[data-child="{w.cas}"]').check()
        await shot(page, "staff-upload-chosen")
        await page.get_by_role("button", name="Uploaden").click()
        await expect(rows.nth(2)).to_have_attribute("data-outcome", "consent_missing")
        await expect(rows.nth(0)).to_have_attribute("data-outcome", "stored")
        await expect(rows.nth(1)).to_have_attribute("data-outcome", "stored")
        await expect(rows.nth(2).locator(".state")).to_have_text(
            "Geweigerd: voor Cas is geen toestemming voor foto's gegeven."
        )
        await expect(rows.nth(0)).to_contain_text("Opgeslagen")
        # The screen's last word counts the refusal too, not a bare "stored".
        await expect(page.locator("#status")).to_have_text(
            "2 opgeslagen, 1 geweigerd: zie per bestand waarom."
        )
        refused_bar = rows.nth(2).locator("progress")
        assert (
            await refused_bar.evaluate("p => getComputedStyle(p).accentColor") == "rgb(164, 22, 26)"
        )
        assert await rows.nth(0).locator("progress").evaluate("p => p.value") == 1
        await shot(page, "staff")
        await accessible(page, axe_source, "staff")
        after = await w.staff.ok("GET", f"/v1/children/{w.bram.child}/items?kind=photo&limit=200")
        assert len(after["items"]) == len(before["items"]) + 2

        # A diary entry with one of the photos just uploaded.
        first = await rows.nth(0).get_attribute("data-item")
        await page.get_by_label("Kind", exact=True).select_option(label="Bram")
        await page.get_by_label("Tekst").fill("Bram heeft geschilderd.")
        await page.locator(f'#diary-photos input[data-photo="{first}"]').check()
        await page.get_by_role("button", name="Versturen").click()
        await expect(page.locator("#diary-form")).to_contain_text("opgeslagen")
        diary = await w.staff.ok("GET", f"/v1/children/{w.bram.child}/items?kind=diary")
        entry = await w.staff.ok("GET", f"/v1/items/{diary['items'][0]['id']}")
        assert entry["photo_ids"] == [first]

        # An observation (a PDF) for the mentor's file.
        await page.get_by_label("Soort").select_option(label="Observatie (mentor)")
        await page.get_by_label("Kies foto's of een video").set_input_files(
            [FilePayload(name="observatie.pdf", mimeType="application/pdf", buffer=PDF)]
        )
        await expect(rows).to_have_count(1)
        await rows.nth(0).locator(f'input[data-child="{w.bram.child}"]').check()
        await page.get_by_role("button", name="Uploaden").click()
        await expect(rows.nth(0)).to_have_attribute("data-outcome", "stored")
        kept = await w.staff.ok("GET", f"/v1/children/{w.bram.child}/items?kind=observation")
        assert [item["id"] for item in kept["items"]] == [
            await rows.nth(0).get_attribute("data-item")
        ]

        ended = date.today() - timedelta(days=2)
        await w.admin.ok(
            "PUT", placement, {"start_date": "2024-01-01", "end_date": ended.isoformat()}
        )
        await page.get_by_label("Kies foto's of een video").set_input_files(
            [FilePayload(name="daan.pdf", mimeType="application/pdf", buffer=PDF)]
        )
        await rows.nth(0).locator(f'input[data-child="{daan["id"]}"]').check()
        await page.get_by_role("button", name="Uploaden").click()
        await expect(rows.nth(0)).to_have_attribute("data-outcome", "outside_window")
        await expect(rows.nth(0).locator(".state")).to_contain_text(
            "contract van Daan is beëindigd"
        )
        # Opened again, the screen says so and does not offer Daan for tagging.
        await page.reload()
        row = page.locator(f'tr[data-child="{daan["id"]}"]')
        await expect(row).to_have_attribute("data-photo", "ended")
        await expect(row).to_contain_text(f"contract beëindigd op {dutch(ended)}")
        await page.get_by_label("Kies foto's of een video").set_input_files(
            [FilePayload(name="later.jpg", mimeType="image/jpeg", buffer=photo(40))]
        )
        await expect(rows.nth(0).locator(f'input[data-child="{w.bram.child}"]')).to_have_count(1)
        await expect(rows.nth(0).locator(f'input[data-child="{daan["id"]}"]')).to_have_count(0)


def contents(saved: Path) -> bytes:
    return saved.read_bytes()


def assert_valid_export(saved: Path, size: int) -> None:
    data = saved.read_bytes()
    assert len(data) == size
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert "index.html" in names
    assert "diary.json" in names


async def test_an_export_downloads_as_a_valid_zip_with_the_window_banner_and_sign_out_ends_it(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    end = date.today() - timedelta(days=3)  # ended: the 8-week window runs
    await w.admin.ok(
        "PUT",
        f"/v1/children/{w.bram.child}/placement",
        {"start_date": "2024-01-01", "end_date": end.isoformat()},
    )
    bram_api = w.admin.as_(w.bram.token)
    retention: Any = await bram_api.ok("GET", f"/v1/children/{w.bram.child}/retention")
    until = date.fromisoformat(retention["categories"]["photo"]["visible_until"])
    async with opened(browser) as page:
        await with_token(page, server, w.bram.token)
        # The observation staff filed above (a PDF): a document, downloaded, not a picture.
        await page.goto(f"{server.base}/app/#/child/{w.bram.child}")
        document = page.locator('#timeline li[data-kind="observation"]')
        await expect(document).to_contain_text("Observatie")
        async with page.expect_download(timeout=10_000) as waiting:
            await document.get_by_role("button").click()
        pdf = await waiting.value
        assert pdf.suggested_filename == "observatie.pdf"
        assert contents(await pdf.path()) == PDF
        await expect(page.locator("#viewer-image")).to_have_count(0)
        await page.goto(f"{server.base}/app/#/child/{w.bram.child}/export")
        banner = page.locator("#window-banner")
        await expect(banner).to_contain_text(f"eindigde op {dutch(end)}")
        await expect(banner).to_contain_text(dutch(until))
        await page.get_by_role("button", name="Export maken").click()
        link = page.locator("#export-download")
        await expect(link).to_be_visible()
        size = int(await link.get_attribute("data-size") or 0)
        # In binary units, as the server's size messages give them (vault/sizes.py).
        scale, unit = (2**20, "MiB") if size >= 2**20 else (2**10, "KiB")
        shown = Decimal(size / scale).quantize(Decimal("0.1"), ROUND_HALF_UP)
        await expect(page.locator("#export-fetch")).to_contain_text(
            f"({str(shown).replace('.', ',')} {unit})"
        )
        # The first answer breaks off halfway: the app resumes from that byte.
        asked: list[str | None] = []
        resumed: list[int] = []

        async def break_first(route: Route) -> None:
            asked.append(route.request.headers.get("range"))
            if len(asked) > 1:
                rest = await route.fetch()
                resumed.append(rest.status)
                await route.fulfill(response=rest)
                return
            whole = await route.fetch()
            body = await whole.body()
            await route.fulfill(status=200, headers=whole.headers, body=body[: len(body) // 2])

        await page.route("**/x/**", break_first)
        async with page.expect_download() as waiting:
            await page.get_by_role("button", name="Export downloaden").click()
        assert_valid_export(await (await waiting.value).path(), size)
        await expect(page.locator("#export-state")).to_have_text("De export is gedownload.")
        assert await page.locator("#export-progress").evaluate("p => p.value") == 1
        assert asked == [None, f"bytes={size // 2}-"]
        assert resumed == [206]  # only the rest was sent again
        await page.unroute("**/x/**")
        await shot(page, "export")
        await accessible(page, axe_source, "export")

        # The plain link: the browser's own download.
        async with page.expect_download() as waiting:
            await link.click()
        assert_valid_export(await (await waiting.value).path(), size)

        await page.goto(f"{server.base}/app/#/child/{w.bram.child}/access")
        access = page.locator("#access-log")
        made = access.locator('tr[data-action="export.create"]').first
        await expect(made).to_contain_text("maakte een export")  # words, not codes
        await expect(made).to_contain_text("ouder")
        await expect(made).to_contain_text("gelukt")
        assert "export.create" not in await access.inner_text()
        # It fits the phone: nothing wider than the screen.
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await shot(page, "access-log")
        await accessible(page, axe_source, "access log")

        await page.get_by_role("button", name="Afmelden").click()
        await expect(page.get_by_role("heading", name="Aanmelden")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0
        status, _ = await bram_api.call("GET", "/v1/me")
        assert status == 401  # the token stopped at once


async def test_the_privacy_officer_sees_the_register_overdue_first_and_verifies_the_audit_log(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    async with opened(browser) as anna:
        await with_token(anna, server, w.anna.token)
        await anna.get_by_role("link", name="Verzoeken").click()
        await anna.get_by_label("Soort verzoek").select_option(label="Inzage")
        await anna.get_by_label("Toelichting (optioneel)").fill("Graag alles wat u van Anna heeft.")
        await anna.get_by_role("button", name="Versturen").click()
        await expect(anna.get_by_text("Uw verzoek is ontvangen")).to_be_visible()
        await expect(anna.locator("#requests tbody tr")).to_have_count(1)
        await shot(anna, "requests")
        await accessible(anna, axe_source, "requests")
    async with opened(browser, TABLET) as page:
        await with_token(page, server, w.officer_token)
        await expect(page.get_by_role("heading", name="Privacyfunctionaris")).to_be_visible()
        await expect(page.locator("#requests tbody tr")).to_have_count(1)
        await expect(page.locator("#requests")).to_contain_text("Inzage")
        await page.get_by_role("button", name="Auditlog controleren").click()
        await expect(page.locator("#verify-result")).to_contain_text("intact")
        await page.get_by_label("Kind-id").fill(w.anna.child)
        await page.get_by_role("button", name="Tonen").click()
        await expect(page.locator("#certificates")).to_contain_text("Geen verklaringen")
        await shot(page, "privacy-officer")
        await accessible(page, axe_source, "privacy officer")


async def test_the_privacy_officer_asks_what_a_parent_touched_and_sees_the_children_and_photos(
    served: tuple[Server, World], browser: Browser, axe_source: str
) -> None:
    server, w = served
    # Whole seconds: the screen's moments are typed to the second.
    since = datetime.now(UTC).replace(microsecond=0)
    async with opened(browser) as anna:
        await with_token(anna, server, w.anna.token)
        await anna.goto(f"{server.base}/app/#/child/{w.anna.child}")
        await expect(anna.locator("#timeline li")).to_have_count(12)  # the first page only
        await expect(anna.locator("#timeline img").first).to_have_js_property("complete", True)
        await anna.locator(f'li[data-item="{w.photos[5]}"] button').click()
        await expect(anna.locator("#viewer-image")).to_have_js_property("complete", True)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    # Not the officer's own zone (nor UTC): a window read in the wrong zone misses it all.
    zone = "Australia/Darwin"  # UTC+09:30 the whole year

    def wall(moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")

    async with opened(browser, TABLET, timezone_id=zone) as page:
        await with_token(page, server, w.officer_token)
        form = page.locator("#touched-form")
        await expect(form.get_by_role("heading")).to_have_text(
            "Wat heeft een account of token aangeraakt?"
        )
        await expect(page.locator("#touched-zone")).to_contain_text("Australia/Darwin (UTC+09:30)")
        # Both ids, or none: said before anything is asked.
        await page.get_by_label("Token-id").fill("0123456789abcdef")
        await page.get_by_label("Persoon-id (account)").fill(w.anna.person)
        await page.get_by_role("button", name="Opvragen").click()
        await expect(page.locator("#touched-problem")).to_have_text(
            "Vul een persoon-id óf een token-id in, niet allebei."
        )
        await page.get_by_label("Token-id").fill("")
        await page.get_by_label("Vanaf", exact=True).fill(wall(since))
        await page.get_by_label("Tot", exact=True).fill(wall(until))
        await page.get_by_label("Tot", exact=True).press("Enter")  # the keyboard alone asks
        result = page.locator("#touched-result")
        await expect(result).to_have_attribute("data-events", re.compile(r"^[1-9]"))
        await expect(page.locator("#touched-problem")).to_be_hidden()
        await expect(page.locator("#touched-summary")).to_contain_text("heeft dit account")
        child = page.locator(f'#touched-children tr[data-child="{w.anna.child}"]')
        await expect(child).to_contain_text("Anna Jansen")
        await expect(page.locator(f'#touched-children tr[data-child="{w.cas}"]')).to_have_count(0)
        opened_photo = page.locator(f'#touched-items tr[data-item="{w.photos[5]}"]')
        await expect(opened_photo).to_contain_text("Foto")
        # The second page of the timeline was looked at earlier, not in this window.
        await expect(page.locator(f'#touched-items tr[data-item="{w.photos[0]}"]')).to_have_count(0)
        await expect(page.locator('#touched-actions tr[data-action="link.use"]')).to_contain_text(
            "bekeek een foto of bestand"
        )
        # The screen shows what the API answers for that window, no more, no less.
        asked = await w.admin.as_(w.officer_token).ok(
            "GET",
            f"/v1/audit/touched?person={w.anna.person}"
            f"&since={since.isoformat().replace('+00:00', 'Z')}"
            f"&until={until.isoformat().replace('+00:00', 'Z')}",
        )
        shown = await page.locator("#touched-items tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.item)"
        )
        assert sorted(shown) == sorted(asked["items"])
        assert w.photos[5] in asked["items"]
        # Counts in words a person reads: "1 kind", never "1 kinderen".
        children, items = len(asked["children"]), len(asked["items"])
        summary = page.locator("#touched-summary")
        said_children = "1 kind " if children == 1 else f"{children} kinderen"
        said_items = "1 stuk " if items == 1 else f"{items} stukken"
        await expect(summary).to_contain_text(said_children)
        await expect(summary).to_contain_text(said_items)
        await expect(summary).not_to_contain_text(re.compile(r"\b1 (kinderen|stukken)\b"))
        # A sign-in is said in words, not as its code.
        await expect(page.locator("#touched-actions")).not_to_contain_text("signin.")
        await shot(page, "breach-question")
        await accessible(page, axe_source, "breach question")
        await page.get_by_role("button", name="English").click()
        await expect(
            page.get_by_role("heading", name="What did an account or token touch?")
        ).to_be_visible()
        await expect(page.get_by_label("Person id (account)")).to_be_visible()
        await page.get_by_role("button", name="Nederlands").click()


async def test_the_accessibility_check_finds_what_it_is_there_to_find(
    browser: Browser, axe_source: str
) -> None:
    """The check above is not vacuous: a button without a name and a picture
    without a text alternative are reported as critical."""
    page = await browser.new_page()
    try:
        await page.set_content(
            '<html lang="nl"><body><main><h1>x</h1><img src="data:,">'
            "<button></button></main></body></html>"
        )
        found = {v["id"] for v in await serious_violations(page, axe_source)}
    finally:
        await page.close()
    assert {"image-alt", "button-name"} <= found


async def test_a_photo_shows_when_its_camera_took_it_and_a_diary_entry_its_own_day(
    served: tuple[Server, World], browser: Browser, tmp_path: Path
) -> None:
    """A photo uploaded without a date shows the time its EXIF says it was
    taken (a camera that did not say its zone: its clock, as read, wherever the
    parent is), and a diary entry the day staff chose, not when either was stored."""
    server, w = served
    admin = w.admin
    location = (await admin.ok("POST", "/v1/locations", {"name": "De Wilg"}))["id"]
    group = (await admin.ok("POST", "/v1/groups", {"location_id": location, "name": "Vlinders"}))[
        "id"
    ]
    staff = await admin.ok("POST", "/v1/people", {"name": "Iris", "role": "staff"})
    await admin.ok("POST", f"/v1/groups/{group}/staff", {"person_id": staff["id"]})
    parent = await admin.ok("POST", "/v1/people", {"name": "Ouder van Dex", "role": "guardian"})
    child = await placed_child(admin, group, parent["id"], "Dex", "Smit", "2023-05-06")
    for kind in ("photo", "diary"):
        await admin.as_(parent["token"]).ok(
            "PUT", f"/v1/children/{child}/consents/{kind}", {"granted": True}
        )
    crew = admin.as_(staff["token"])
    # Its EXIF: DateTimeOriginal 2026:05:01 10:00:00, no offset.
    status, item = await crew.upload(
        child, {"kind": "photo", "title": "Zandbak"}, camera_jpeg(tmp_path).read_bytes(), "z.jpg"
    )
    assert status == 201, item
    entry = await crew.ok(
        "POST",
        f"/v1/children/{child}/items",
        {"kind": "diary", "date": "2026-11-20", "text": "Dex heeft geschilderd."},
    )
    stored_on = datetime.fromisoformat(entry["created_at"]).astimezone(ZoneInfo("Europe/Amsterdam"))
    assert stored_on.date() != date(2026, 11, 20)

    async with opened(browser, timezone_id="America/New_York") as page:
        await with_token(page, server, parent["token"])
        await page.goto(f"{server.base}/app/#/child/{child}")
        await expect(page.locator("#timeline li")).to_have_count(2)
        photo_caption = page.locator(f'li[data-item="{item["id"]}"] .caption')
        await expect(photo_caption).to_contain_text("Zandbak · 1 mei 2026")
        await expect(photo_caption).to_contain_text("10:00")
        diary = page.locator(f'li[data-item="{entry["id"]}"]')
        await expect(diary.locator(".diary")).to_contain_text("geschilderd")
        # The day alone: no time of day, which would be when it was stored.
        await expect(diary.locator(".caption")).to_have_text(
            f"Dagboek · {dutch(date(2026, 11, 20))}"
        )
        await shot(page, "timeline-taken")
