"""The privacy officer's reasons: sealed per child, named by the audit event.

A reason is free text ("access request of 12 March, art. 15"), so the audit
log keeps only its id (``reason_id`` in the event's detail, under the
chain's hash); the text is kept once per child the access touched, sealed
under that child's profile key (associated data naming the reason and the
child), in table ``access_reasons``. The child's access log opens it for
its readers; it dies with the child's profile key.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import access_reasons
from vault.directory.sealing import Sealer
from vault.errors import Destroyed
from vault.tokens import new_id


def _label(reason_id: str) -> str:
    return f"access-reason:{reason_id}"


class Reasons:
    """The reason of one call, sealed for each child it reaches (once per child)."""

    def __init__(self, sealer: Sealer, text: str, now: datetime) -> None:
        self.id = new_id()
        self._sealer, self._text, self._now = sealer, text, now
        self._kept: set[str] = set()

    async def keep(self, children: Iterable[str]) -> str:
        """Seal the reason for ``children`` not yet done; the reason's id."""
        rows = []
        for child_id in sorted(set(children) - self._kept):
            try:
                sealed = await self._sealer.seal_for_child(child_id, _label(self.id), self._text)
            except Destroyed:
                continue  # nothing of the child is left to reach
            rows.append(
                {"id": self.id, "child_id": child_id, "sealed": sealed, "created_at": self._now}
            )
            self._kept.add(child_id)
        if rows:
            async with self._sealer.engine.begin() as conn:
                await conn.execute(insert(access_reasons), rows)
        return self.id


async def opened(
    engine: AsyncEngine, sealer: Sealer, child_id: str, ids: Iterable[str]
) -> dict[str, str]:
    """The child's reasons with these ids, opened (those no longer readable left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(access_reasons.c.id, access_reasons.c.sealed).where(
                    access_reasons.c.child_id == child_id, access_reasons.c.id.in_(wanted)
                )
            )
        ).all()
    out = {}
    for row in rows:
        text = await sealer.open_for_child(child_id, _label(row.id), row.sealed)
        if text is not None:
            out[row.id] = text
    return out
