"""The SQLite writer process: killed, it is started again and the chain goes on;
while it cannot write, nothing is recorded as written."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.helpers.keystores import local_store
from vault.audit import event
from vault.audit.log import AuditLog, AuditUnavailable
from vault.audit.verify import verify
from vault.db import create_engine, upgrade
from vault.keys.provider import audit_check, audit_sign

pytestmark = pytest.mark.sqlite


async def test_a_writer_process_that_went_away_is_started_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kluis.db'}")
    await upgrade(engine)
    ring = await local_store(tmp_path).open()
    log = AuditLog(engine, audit_sign(ring), lambda: datetime.now(UTC), own_process=True)
    try:
        await log.record(event("link.use"))
        first = log._process._process  # type: ignore[union-attr]
        assert first is not None
        assert first.returncode is None
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()

        # The commit that finds it gone fails closed; the next one starts a new writer.
        outcomes = []
        for _ in range(2):
            try:
                await log.record(event("link.use"))
                outcomes.append("written")
            except AuditUnavailable:
                outcomes.append("refused")
        assert outcomes[-1] == "written"
        second = log._process._process  # type: ignore[union-attr]
        assert second is not None
        assert second.pid != first.pid

        # A write the database refuses is refused to the caller, and the writer lives on.
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_events RENAME TO elsewhere"))
        with pytest.raises(AuditUnavailable):
            await log.record(event("link.use"))
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE elsewhere RENAME TO audit_events"))
        await log.record(event("link.use"))
        assert log._process._process is second  # type: ignore[union-attr]

        result = await verify(engine, audit_check(ring))
        assert result.ok, result.problems
        assert result.events == 1 + outcomes.count("written") + 1
    finally:
        await log.close()
        await engine.dispose()
    assert second.returncode is not None, "closing the log ends its writer"
