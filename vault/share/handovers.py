"""Handovers to a school: a link for someone without an account, and its limits.

A handover allows ``max_downloads`` downloads of one observation
(docs/api-notes.md). A download is a whole body: a 200 answer to GET (also
one that a stale ``If-Range`` or several ranges turned into the whole
content). It is claimed *before the first byte leaves*, in one conditional
UPDATE that cannot race across requests or processes
(``downloads < max_downloads``), and given back when the body did not all
leave (a client that hung up), so the school keeps its downloads.

Ranged reads (206: a PDF viewer's probe, a resumed download) use no
download, but they are not a way round the limit: they are allowed only
while a download is left, and in all they send at most
``max_downloads × size`` bytes (``sent_bytes``, claimed the same way before
the bytes leave; what did not leave is given back). The bytes of a whole
body that was cut short count there too, so giving its download back is
bounded as well. So however many requests arrive, at most
``max_downloads`` whole bodies and ``max_downloads × size`` ranged bytes
leave. HEAD and 304 use nothing. The recipient's name is sealed under the
item's key.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.crypto.envelope import seal_item_record
from vault.db.schema import handovers
from vault.errors import NotFound
from vault.keys.service import KeyService
from vault.share.links import Claims, LinkExpired
from vault.tokens import new_id

NEW_HANDOVER = (
    "ask the childcare location (the child's mentor or the location manager) for a new handover."
)


def used_up(row: Row[Any]) -> str:
    """The refusal once every download is used."""
    times = "once" if row.max_downloads == 1 else f"{row.max_downloads} times"
    return f"This handover link has been downloaded {times}, as often as it allows; " + NEW_HANDOVER


def ranges_used_up(left: int) -> str:
    """The refusal of a range once ranged reads have sent all they may."""
    downloads = "1 download" if left == 1 else f"{left} downloads"
    return (
        "This handover link has sent as many partial (Range) reads as it allows; "
        f"download it whole, without a Range header ({downloads} left), or " + NEW_HANDOVER
    )


async def create(
    engine: AsyncEngine,
    keys: KeyService,
    item_id: str,
    issued_by: str,
    recipient: str,
    ttl: int,
    max_downloads: int,
    now: datetime,
) -> str:
    """Store a handover of ``item_id``; its id (the link's reference)."""
    handover_id = new_id()
    key = await keys.open_item_key(item_id)
    label = f"handover:{handover_id}"
    sealed = seal_item_record(key, item_id, label, json.dumps(recipient).encode())
    async with engine.begin() as conn:
        await conn.execute(
            insert(handovers).values(
                id=handover_id,
                item_id=item_id,
                issued_by=issued_by,
                recipient=sealed,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
                max_downloads=max_downloads,
                downloads=0,
                sent_bytes=0,
            )
        )
    return handover_id


async def find(engine: AsyncEngine, claims: Claims) -> Row[Any]:
    """The handover a verified link names; ``NotFound`` unless it matches the link."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(handovers).where(handovers.c.id == claims.reference))
        ).first()
    if row is None or row.item_id != claims.subject or row.issued_by != claims.principal:
        raise NotFound()
    return row


def check_left(row: Row[Any], expires: datetime) -> None:
    """``LinkExpired`` once every download is used (also for HEAD and 304,
    which use nothing)."""
    if row.downloads >= row.max_downloads:
        raise LinkExpired(expires, used_up(row))


async def claim(
    engine: AsyncEngine, row: Row[Any], size: int, nbytes: int, whole: bool, expires: datetime
) -> None:
    """Before anything is sent: a download for a whole body, else ``nbytes``
    of the ranged allowance; ``LinkExpired`` (its message true) if none is left."""
    left = handovers.c.downloads < handovers.c.max_downloads
    if whole:
        change = update(handovers).where(handovers.c.id == row.id, left)
        change = change.values(downloads=handovers.c.downloads + 1)
    else:
        fits = handovers.c.sent_bytes + nbytes <= handovers.c.max_downloads * size
        change = update(handovers).where(handovers.c.id == row.id, left, fits)
        change = change.values(sent_bytes=handovers.c.sent_bytes + nbytes)
    async with engine.begin() as conn:
        result = await conn.execute(change)
        if result.rowcount:
            return
        now = (await conn.execute(select(handovers).where(handovers.c.id == row.id))).one()
    if now.downloads >= now.max_downloads:
        raise LinkExpired(expires, used_up(now))
    raise LinkExpired(expires, ranges_used_up(now.max_downloads - now.downloads))


async def settle(
    engine: AsyncEngine, row: Row[Any], size: int, whole: bool, claimed: int, sent: int
) -> None:
    """After the answer: a whole body that did not all leave gives its
    download back, its bytes counted as ranged ones (only while they fit, so
    a client that hangs up again and again cannot go round the limit); a
    range gives back what did not leave."""
    if sent >= claimed:
        return
    if whole:
        change = (
            update(handovers)
            .where(
                handovers.c.id == row.id,
                handovers.c.downloads > 0,
                handovers.c.sent_bytes + sent <= handovers.c.max_downloads * size,
            )
            .values(
                downloads=handovers.c.downloads - 1,
                sent_bytes=handovers.c.sent_bytes + sent,
            )
        )
    else:
        change = (
            update(handovers)
            .where(handovers.c.id == row.id)
            .values(sent_bytes=handovers.c.sent_bytes - (claimed - sent))
        )
    async with engine.begin() as conn:
        await conn.execute(change)
