"""Mail that arrives and is not lost, against a real SMTP server (aiosmtpd) on
loopback, on SQLite and PostgreSQL: delivery over STARTTLS in text and HTML,
a server that refuses, one that is down, dead letters, several senders."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers.accounts import person
from tests.helpers.api import Api, configured, start
from tests.helpers.smtp import SmtpServer, make_ca
from vault.api.resources import DB, KEYRING
from vault.config import MailSettings
from vault.db import create_engine
from vault.db.schema import outbox as outbox_table
from vault.mail import outbox
from vault.mail.sender import MailSender

SENDER = "Kluis <kluis@kinderopvang.example>"


def _mail_settings(server: SmtpServer, **more: object) -> MailSettings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "sender": SENDER,
        "timeout_seconds": 5.0,
        "retry_seconds": 30.0,
        "max_attempts": 4,
    }
    values.update(more)
    return MailSettings(**values)  # type: ignore[arg-type]


def _sender(api: Api, settings: MailSettings) -> MailSender:
    return MailSender(api.client.app[DB], api.client.app[KEYRING], settings, api.clock)


async def _invite(api: Api, email: str) -> None:
    person_id = await person(api, "guardian", email)
    await api.ok("POST", f"/v1/people/{person_id}/invitations")


async def _counts(api: Api) -> dict[str, int]:
    return (await outbox.status(api.client.app[DB])).counts


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def tls_api(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[SmtpServer, Api]]:
    """The service with its own mail sender running, to an SMTP server that
    requires STARTTLS with a certificate of a CA the vault is told to trust."""
    ca_file, context = make_ca(tmp_path)
    server = SmtpServer(tls=context, require_tls=True).start()
    chosen = _mail_settings(server, starttls="always", ca_file=str(ca_file), poll_seconds=0.05)
    mail = {f.name: getattr(chosen, f.name) for f in dataclasses.fields(chosen)}
    settings = configured(request, tmp_path / "data", db_url, mail=mail)
    try:
        yield server, await start(settings, aiohttp_client)
    finally:
        server.stop()


async def test_the_service_delivers_over_starttls_in_text_and_html(
    tls_api: tuple[SmtpServer, Api],
) -> None:
    server, api = tls_api
    await _invite(api, "ouder@example.org")
    (got,) = await asyncio.to_thread(server.wait_for, 1)
    assert got.tls is True
    assert got.recipients == ("ouder@example.org",)
    mail = got.message
    assert mail["From"] == SENDER
    assert mail["To"] == "ouder@example.org"
    assert mail["Subject"] == "Uitnodiging voor Kluis / Invitation to Kluis"
    assert mail["Auto-Submitted"] == "auto-generated"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    text, page = plain.get_content(), html.get_content()
    for part in (text, page):
        assert "uitgenodigd" in part
        assert "invited" in part
        assert "/invite/ki_" in part
    for _ in range(100):
        if (await _counts(api))["sent"] == 1:
            break
        await asyncio.sleep(0.05)
    assert await _counts(api) == {"pending": 0, "sending": 0, "sent": 1, "dead": 0}
    # Delivered: the sealed message (and the link in it) is gone from the database.
    async with api.client.app[DB].connect() as conn:
        assert (await conn.scalars(select(outbox_table.c.sealed))).all() == [None]


async def test_a_refusing_server_loses_nothing(api: Api, smtp: SmtpServer) -> None:
    await _invite(api, "a@example.org")
    smtp.refuse = "451 4.3.0 Try again later"
    sender = _sender(api, _mail_settings(smtp))
    assert await sender.run_once() == 0
    state = await outbox.status(api.client.app[DB])
    assert state.counts["pending"] == 1
    api.clock.now += timedelta(seconds=29)
    assert await sender.run_once() == 0  # not due yet: the first retry waits 30 s
    smtp.refuse = None
    api.clock.now += timedelta(seconds=1)
    assert await sender.run_once() == 1
    assert [r.recipients for r in smtp.received] == [("a@example.org",)]
    assert await sender.run_once() == 0  # sent once
    assert (await _counts(api))["sent"] == 1


async def test_a_server_that_is_down_gets_the_mail_when_it_is_back(
    api: Api, smtp: SmtpServer
) -> None:
    await _invite(api, "b@example.org")
    smtp.stop()
    sender = _sender(api, _mail_settings(smtp))
    for wait in (0, 30, 60):  # doubling waits between attempts
        api.clock.now += timedelta(seconds=wait)
        assert await sender.run_once() == 0
        api.clock.now += timedelta(seconds=wait // 2)
        assert await sender.run_once() == 0
    assert (await _counts(api))["pending"] == 1
    smtp.start()
    api.clock.now += timedelta(seconds=120)
    assert await sender.run_once() == 1
    assert len(smtp.received) == 1


async def test_dead_letters_are_visible_and_can_be_retried(api: Api, smtp: SmtpServer) -> None:
    await _invite(api, "gone@example.org")
    await _invite(api, "down@example.org")
    smtp.refuse = "550 5.1.1 <gone@example.org>: no such user"
    sender = _sender(api, _mail_settings(smtp, max_attempts=2))
    assert await sender.run_once() == 0
    state = await outbox.status(api.client.app[DB])
    assert state.counts["dead"] == 2  # a 5xx is final at once
    assert all("550" in (d.last_error or "") for d in state.dead)
    assert not any("gone@" in (d.last_error or "") for d in state.dead)
    metrics = await (await api.client.get("/metrics")).text()
    assert 'kluis_mail_outbox_messages{status="dead"} 2.0' in metrics
    smtp.refuse = None
    assert await outbox.retry_dead(api.client.app[DB], api.clock.now) == 2
    assert await sender.run_once() == 2
    assert sorted(r.recipients[0] for r in smtp.received) == [
        "down@example.org",
        "gone@example.org",
    ]


async def test_a_server_down_for_too_long_makes_a_dead_letter(api: Api, smtp: SmtpServer) -> None:
    await _invite(api, "late@example.org")
    smtp.stop()
    sender = _sender(api, _mail_settings(smtp, max_attempts=3))
    for _ in range(3):
        await sender.run_once()
        api.clock.now += timedelta(hours=1)
    state = await outbox.status(api.client.app[DB])
    assert state.counts["dead"] == 1
    assert state.dead[0].attempts == 3
    assert "Connect" in (state.dead[0].last_error or "")


async def test_starttls_always_refuses_a_server_without_it(api: Api, smtp: SmtpServer) -> None:
    await _invite(api, "plain@example.org")
    sender = _sender(api, _mail_settings(smtp, starttls="always"))
    assert await sender.run_once() == 0
    assert smtp.received == []
    state = await outbox.status(api.client.app[DB])
    assert state.counts["pending"] == 1
    # "auto" sends plainly to a server that offers no STARTTLS.
    api.clock.now += timedelta(minutes=1)
    assert await _sender(api, _mail_settings(smtp, starttls="auto")).run_once() == 1


async def test_several_senders_send_each_mail_once(api: Api, smtp: SmtpServer) -> None:
    for n in range(24):
        await _invite(api, f"p{n}@example.org")
    url = api.client.app[DB].url.render_as_string(hide_password=False)
    engines = [create_engine(url) for _ in range(3)]
    try:
        senders = [
            MailSender(engine, api.client.app[KEYRING], _mail_settings(smtp), api.clock)
            for engine in engines
        ]
        delivered = await asyncio.gather(*(s.run_once() for s in senders))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(delivered) == 24
    ids = [r.message["Message-ID"] for r in smtp.received]
    assert len(ids) == 24
    assert len(set(ids)) == 24
    assert sorted(r.recipients[0] for r in smtp.received) == sorted(
        f"p{n}@example.org" for n in range(24)
    )
    assert (await _counts(api))["sent"] == 24
