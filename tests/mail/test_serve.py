"""The outbox as it is run: ``kluis serve`` processes delivering it, and
``kluis mail status`` / ``retry`` beside them, against a real SMTP server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.helpers.processes import Client, Server, kluis, kluis_env
from tests.helpers.smtp import SmtpServer


def _env(tmp_path: Path, db_url: str, smtp: SmtpServer | None) -> dict[str, str]:
    mail = (
        {
            "KLUIS_MAIL_SMTP_HOST": "127.0.0.1",
            "KLUIS_MAIL_SMTP_PORT": str(smtp.port),
            "KLUIS_MAIL_SENDER": "Kluis <kluis@kinderopvang.example>",
            "KLUIS_MAIL_POLL_SECONDS": "0.2",
            "KLUIS_MAIL_RETRY_SECONDS": "0.5",
        }
        if smtp is not None
        else {}
    )
    return kluis_env(
        KLUIS_DATA_DIR=str(tmp_path / "data"),
        KLUIS_DATABASE_URL=db_url,
        KLUIS_LINKS_PUBLIC_URL="https://kluis.kinderopvang.example",
        **mail,
    )


async def _admin_token(env: dict[str, str]) -> str:
    status, out, err = await kluis(env, "init")
    assert status == 0, err
    return out.strip().splitlines()[-1]


async def _invite(admin: Client, email: str) -> None:
    person = await admin.ok("POST", "/v1/people", {"name": "P", "email": email, "role": "guardian"})
    await admin.ok("POST", f"/v1/people/{person['id']}/invitations")


async def _until(predicate: object, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("not in time")


async def test_two_servers_deliver_the_outbox_once_after_the_smtp_server_comes_back(
    tmp_path: Path, db_url: str
) -> None:
    smtp = SmtpServer()  # not started: down
    env = _env(tmp_path, db_url, smtp)
    admin_token = await _admin_token(env)
    a, b = Server(env, tmp_path / "a.log"), Server(env, tmp_path / "b.log")
    await asyncio.gather(a.start(), b.start())
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, a.base, admin_token)
            addresses = [f"ouder{n}@example.org" for n in range(8)]
            for n, address in enumerate(addresses):
                await _invite(admin.on(a if n % 2 else b), address)
            await asyncio.sleep(2)  # both senders try, and fail
            status, out, _ = await kluis(env, "mail", "status")
            assert status == 0, out
            assert "pending: 8" in out or "sending:" in out
            assert "sent: 0" in out
            smtp.start()
            received = await asyncio.to_thread(smtp.wait_for, 8, 60.0)

            async def all_sent() -> bool:
                _, out, _ = await kluis(env, "mail", "status")
                return "sent: 8" in out

            await _until(all_sent)
            await asyncio.sleep(1)  # nothing more comes
        assert sorted(r.recipients[0] for r in smtp.received) == sorted(addresses)
        assert len({r.message["Message-ID"] for r in received}) == 8
        assert all(r.message["Subject"].startswith("Uitnodiging") for r in received)
        plain = received[0].message.get_body(("plain",))
        assert plain is not None
        assert "https://kluis.kinderopvang.example/invite/ki_" in plain.get_content()
    finally:
        await asyncio.gather(a.stop(), b.stop())
        smtp.stop()
    assert a.server_errors() == []
    assert b.server_errors() == []


async def test_dead_letters_show_in_status_and_metrics_until_retried(
    tmp_path: Path, db_url: str
) -> None:
    smtp = SmtpServer().start()
    smtp.refuse = "550 5.7.1 Relaying denied"
    env = _env(tmp_path, db_url, smtp)
    admin_token = await _admin_token(env)
    server = await Server(env, tmp_path / "serve.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            admin = Client(session, server.base, admin_token)
            await _invite(admin, "dead@example.org")

            async def dead() -> bool:
                _, out, _ = await kluis(env, "mail", "status")
                return "dead: 1" in out

            await _until(dead)
            status, out, _ = await kluis(env, "mail", "status")
            assert status == 1
            assert "550 5.7.1 Relaying denied" in out
            assert "kluis mail retry" in out
            async with session.get(f"{server.base}/metrics") as answer:
                assert 'kluis_mail_outbox_messages{status="dead"} 1.0' in await answer.text()
            smtp.refuse = None
            status, out, _ = await kluis(env, "mail", "retry")
            assert (status, out.strip()) == (0, "dead letters put back in line: 1")
            await asyncio.to_thread(smtp.wait_for, 1)
    finally:
        await server.stop()
        smtp.stop()
    assert [r.recipients for r in smtp.received] == [("dead@example.org",)]


async def test_without_an_smtp_host_mail_waits_in_the_outbox_and_status_says_so(
    tmp_path: Path, db_url: str
) -> None:
    env = _env(tmp_path, db_url, None)
    admin_token = await _admin_token(env)
    server = await Server(env, tmp_path / "serve.log").start()
    try:
        async with aiohttp.ClientSession() as session:
            await _invite(Client(session, server.base, admin_token), "wait@example.org")
    finally:
        await server.stop()
    assert "mail.smtp_host is not set" in server.output()
    status, out, _ = await kluis(env, "mail", "status")
    assert status == 0
    assert "mail.smtp_host is not set: mail is kept in the outbox and not sent." in out
    assert "pending: 1" in out
