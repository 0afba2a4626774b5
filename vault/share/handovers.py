"""Handovers to a school: a link for someone without an account, and its budget.

A handover allows ``max_downloads`` downloads of one observation. What a
download is, so that no shape of request can give more (docs/api-notes.md):
the handover holds a budget of ``max_downloads × size`` bytes, and every
request that sends bytes claims the bytes it is about to send *before the
first one leaves*, in one conditional UPDATE that cannot race
(``sent_bytes + n <= max_downloads × size``). A plain GET claims the whole
size; a Range request (also ``bytes=0-``) claims its range; HEAD and 304
claim nothing. When the answer ends, the bytes that did not leave (a client
that hung up) are given back, so a broken download resumes with Range
within the same download. However many requests arrive, in parallel or one
after the other, the bytes sent never exceed ``max_downloads`` whole
copies. The recipient's name is sealed under the item's key.
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

USED_UP = (
    "This handover link has been downloaded as often as it allows; ask the childcare "
    "organisation (the child's mentor) for a new one."
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


def check_left(row: Row[Any], size: int, expires: datetime) -> None:
    """``LinkExpired`` once the budget is spent (also for HEAD, which claims nothing)."""
    if size and row.sent_bytes >= row.max_downloads * size:
        raise LinkExpired(expires, USED_UP)


async def claim(
    engine: AsyncEngine, row: Row[Any], size: int, nbytes: int, expires: datetime
) -> None:
    """Take ``nbytes`` of the budget before they are sent; ``LinkExpired`` if they do not fit."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(handovers)
            .where(
                handovers.c.id == row.id,
                handovers.c.sent_bytes + nbytes <= handovers.c.max_downloads * size,
            )
            .values(sent_bytes=handovers.c.sent_bytes + nbytes)
        )
    if not result.rowcount:
        raise LinkExpired(expires, USED_UP)


async def settle(engine: AsyncEngine, row: Row[Any], claimed: int, sent: int) -> None:
    """After the answer: give back what did not leave; count the request."""
    async with engine.begin() as conn:
        await conn.execute(
            update(handovers)
            .where(handovers.c.id == row.id)
            .values(
                sent_bytes=handovers.c.sent_bytes - (claimed - sent),
                downloads=handovers.c.downloads + (1 if sent else 0),
            )
        )
