"""A real ``kluis`` process that kills itself (SIGKILL) at a chosen point.

``python -m tests.helpers.killpoint MODULE:QUALNAME kluis-args...`` runs the
``kluis`` command (``python -m vault``) with the coroutine method or
function ``QUALNAME`` of ``MODULE`` wrapped: the first time it returns
something (a non-empty list of destroyed keys, say), the process sends
itself SIGKILL before the caller sees the answer, as a power loss at that
point would stop it. Nothing in ``vault/`` knows of it; the test's own code
runs only in the killed process. :func:`killed_at` starts one and waits.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import runpy
import signal
import sys
from typing import Any

from tests.helpers.processes import kluis


def arm(spec: str) -> None:
    module_name, _, qualname = spec.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    if not asyncio.iscoroutinefunction(original):
        raise SystemExit(f"{spec} is not a coroutine function")

    @functools.wraps(original)
    async def dying(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        if result:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, dying)


async def killed_at(env: dict[str, str], spec: str, *args: str) -> tuple[int, str, str]:
    """Run ``kluis *args`` killed once ``spec`` returns something:
    (exit status, stdout, stderr); -9 when the kill came."""
    return await kluis(env, *args, launcher=["-m", "tests.helpers.killpoint", spec])


if __name__ == "__main__":
    arm(sys.argv[1])
    sys.argv = ["kluis", *sys.argv[2:]]
    runpy.run_module("vault", run_name="__main__", alter_sys=True)
