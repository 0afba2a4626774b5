"""The plain baseline: aiohttp's ``FileResponse`` for files in one directory, nothing else.

    .venv/bin/python -m bench.plain DIR PORT

Started by bench/serving.py as a process of its own (no access log, the
default event loop), so its CPU per request is counted apart from the load.
It serves only the files directly in DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def app(www: Path) -> web.Application:
    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(www / Path(request.match_info["name"]).name)

    application = web.Application()
    application.router.add_get("/{name}", file)
    return application


if __name__ == "__main__":
    web.run_app(
        app(Path(sys.argv[1])),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        access_log=None,
        print=None,
    )
