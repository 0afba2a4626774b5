"""Destruction certificates for tests that destroy keys themselves.

Every destroyer requires a ``certify`` (vault/keys/service.py): a test that
calls one directly passes the retention job's own :func:`~vault.retention.
job.certifier`, under a run id of its own, and can read back what it wrote.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import destruction_certificates
from vault.keys.service import Certify
from vault.retention.job import certifier
from vault.tokens import new_id


def certify(moment: datetime, cause: str = "test") -> Certify:
    """Certificates dated ``moment``, of a run of their own, with ``cause``."""
    return certifier(moment, new_id(), cause)


async def certified(engine: AsyncEngine) -> list[tuple[str, str, str, int]]:
    """(child, category, key id, records) of every certificate, in that order."""
    table = destruction_certificates
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.child_id, table.c.category, table.c.key_id, table.c.item_count)
        )
        return sorted((r.child_id, r.category, r.key_id, r.item_count) for r in rows.all())
