"""Steps of the sign-in tests: people with an address, their invitations
read from the real outbox (opened with the vault's own mail key), sign-ins."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tests.helpers.api import Api
from vault.accounts.totp import code_at, step_of
from vault.api.resources import DB, KEYRING
from vault.db.schema import outbox
from vault.mail.messages import Message
from vault.mail.outbox import open_message

PASSWORD = "correct horse battery staple"
PHONE = "KluisApp/2.1 (iPhone; iOS 18.1)"
LAPTOP = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"


async def mails(api: Api, kind: str | None = None) -> list[tuple[str, Message]]:
    """Every message still in the outbox (status, message), oldest first."""
    engine = api.client.app[DB]
    query = select(outbox.c.id, outbox.c.status, outbox.c.sealed, outbox.c.kind).order_by(
        outbox.c.created_at, outbox.c.id
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = []
    for row in rows:
        if (kind is None or row.kind == kind) and row.sealed is not None:
            message = await open_message(api.client.app[KEYRING], row.id, row.sealed)
            found.append((row.status, message))
    return found


async def invitation_token(api: Api, email: str) -> str:
    """The token in the newest invitation mailed to ``email``."""
    for _, message in reversed(await mails(api, "invitation")):
        if message.to == email:
            match = re.search(r"/invite/(ki_[A-Za-z0-9_.-]+)", message.text)
            assert match, message.text
            return match[1]
    raise AssertionError(f"no invitation for {email}")


async def person(api: Api, role: str, email: str, name: str = "Someone") -> str:
    body = await api.ok("POST", "/v1/people", {"name": name, "email": email, "role": role})
    return str(body["id"])


async def accept(
    api: Api, token: str, password: str = PASSWORD, agent: str = PHONE
) -> tuple[int, Any]:
    return await api.call(
        "POST",
        f"/v1/invitations/{token}/accept",
        json={"password": password},
        headers={"User-Agent": agent},
    )


async def invited(
    api: Api, role: str, email: str, password: str = PASSWORD, agent: str = PHONE
) -> tuple[str, str]:
    """A person invited and signed up: (person id, session token)."""
    person_id = await person(api, role, email)
    await api.ok("POST", f"/v1/people/{person_id}/invitations")
    status, body = await accept(api, await invitation_token(api, email), password, agent)
    assert status == 201, body
    return person_id, str(body["token"])


async def sign_in(
    api: Api,
    email: str,
    password: str = PASSWORD,
    totp: str | None = None,
    agent: str = PHONE,
    forwarded_for: str | None = None,
) -> tuple[int, Any]:
    """``forwarded_for``: as if through a reverse proxy that says so."""
    body: dict[str, Any] = {"email": email, "password": password}
    if totp is not None:
        body["totp"] = totp
    headers = {"User-Agent": agent}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return await api.call("POST", "/v1/sessions", json=body, headers=headers)


def code(secret: str, moment: datetime, steps: int = 0) -> str:
    """The one-time code ``steps`` steps away from ``moment``'s."""
    return code_at(secret, step_of(moment) + steps)
