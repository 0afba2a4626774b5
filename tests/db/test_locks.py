"""Locks across processes on one database: held while the holder lives, free
the moment it dies, however it dies (the retention run, ``kluis init``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from vault.db import create_engine, locks, upgrade
from vault.errors import Conflict

HOLDER = """
import asyncio, sys
from vault.db import create_engine, locks
async def main():
    engine = create_engine(sys.argv[1])
    async with locks.held(engine, "retention"):
        print("held", flush=True)
        await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_a_lock_is_one_holders_and_freed_when_the_holder_is_killed(db_url: str) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, db_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert (await asyncio.wait_for(holder.stdout.readline(), 60)).strip() == b"held"
        with pytest.raises(Conflict, match="under way"):
            async with locks.held(engine, "retention", busy="A run is under way."):
                pass
        async with locks.held(engine, "init"):  # another name is another lock
            pass
        os.kill(holder.pid, signal.SIGKILL)
        await holder.wait()
        # Free at once: no lease to wait out, whatever clock the dead run used.
        async with locks.held(engine, "retention", wait=5):
            with pytest.raises(Conflict):
                async with locks.held(engine, "retention"):
                    pass
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await engine.dispose()


async def test_a_waiting_holder_gets_the_lock_when_it_is_released(db_url: str) -> None:
    engine = create_engine(db_url)
    await upgrade(engine)
    order: list[str] = []
    try:

        async def first() -> None:
            async with locks.held(engine, "init"):
                order.append("first in")
                await asyncio.sleep(0.3)
                order.append("first out")

        async def second() -> None:
            await asyncio.sleep(0.05)
            async with locks.held(engine, "init", wait=10):
                order.append("second in")

        await asyncio.gather(first(), second())
        assert order == ["first in", "first out", "second in"]
    finally:
        await engine.dispose()
