"""The event loop ``kluis serve`` runs on: uvloop where it is installed.

uvloop (libuv underneath) is a drop-in for asyncio's own loop with cheaper
sockets, timers and callbacks: every link answer is a few trips through the
loop. ``server.event_loop`` chooses: ``auto`` (the default) takes uvloop
when it imports and asyncio's loop when it does not (a platform without a
wheel, an install without it), ``asyncio`` always the standard one (to rule
the loop out when something looks wrong), ``uvloop`` insists on it (a start
without it stops with the reason). Nothing else in the service depends on
which loop runs.

This module may touch the choice of loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from vault.errors import ConfigError

_T = TypeVar("_T")


def loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """(the name of the loop, its factory; None for asyncio's own) for
    ``server.event_loop``."""
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "server.event_loop is 'uvloop' but uvloop is not installed; install it "
                "(pip install uvloop) or set server.event_loop to 'auto' or 'asyncio'."
            ) from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T], choice: str = "auto") -> _T:
    """``asyncio.run(main)`` on the loop ``choice`` names."""
    _, factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
