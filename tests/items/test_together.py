"""A photo's original is stored while its variants are made
(vault/items/ingest.py, ``together``): whatever fails or is cancelled, every
step has finished before the ingest goes on, so removing what was stored
sees all of it."""

from __future__ import annotations

import asyncio

import pytest

from vault.errors import InvalidInput, StorageUnavailable
from vault.items.ingest import together


async def test_the_steps_run_at_once_and_answer_in_order() -> None:
    started: list[str] = []

    async def step(name: str, delay: float) -> str:
        started.append(name)
        await asyncio.sleep(delay)
        return name

    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await together(step("slow", 0.3), step("quick", 0.0)) == ["slow", "quick"]
    assert loop.time() - began < 0.55  # not one after the other (0.3 + 0.3 would be sequential)
    assert sorted(started) == ["quick", "slow"]


async def test_a_failure_waits_for_the_other_steps_and_the_first_given_wins() -> None:
    finished: list[str] = []

    async def store() -> None:
        await asyncio.sleep(0.2)
        finished.append("stored")

    async def decode() -> None:
        raise InvalidInput("damaged")

    async def late_failure() -> None:
        await asyncio.sleep(0.1)
        raise StorageUnavailable()

    with pytest.raises(InvalidInput):
        await together(store(), decode())
    assert finished == ["stored"]  # the store finished before the failure came out
    with pytest.raises(StorageUnavailable):
        await together(late_failure(), decode())


async def test_cancelled_it_cancels_the_steps_and_waits_for_their_cleanup() -> None:
    cleaned: list[str] = []

    async def step(name: str) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.05)  # a store removing its partial file
            cleaned.append(name)

    task = asyncio.ensure_future(together(step("original"), step("variants")))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cleaned) == ["original", "variants"]
