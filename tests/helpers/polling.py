"""Waiting for something to happen: ask again until it has, or a deadline.

A test that sleeps a fixed time and then asserts is slow when the host is
quick and flaky when it is busy; one that polls is neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    check: Callable[[], bool], what: str, within: float = 10.0, every: float = 0.01
) -> None:
    """Return once ``check()`` is true; fail, naming ``what``, after ``within`` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not so after {within:g} s: {what}")
        await asyncio.sleep(every)
