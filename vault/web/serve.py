"""``/app/``: the web app's own files, from the package, under a strict policy.

The app is plain HTML, CSS and JavaScript modules in ``vault/web/static``
(package data, so a wheel serves it with no network and no build step). It
talks only to the public API and its signed links, all on this origin, so
its Content-Security-Policy allows nothing but ``'self'``: no inline script
or style, no other host, no framing. Files are answered with an ETag and
``no-cache``: a browser keeps them but asks again, so a new version of the
vault is never mixed with the old app. ``GET /`` sends visitors to the app.

Touches no database, key or store: the files are public, the data is not.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources
from pathlib import PurePosixPath

from aiohttp import web

from vault.api.routes import route

#: The policy of the app's pages. ``blob:`` images are the staff's own
#: photos previewed before upload (object URLs made by the page itself).
APP_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

FILES: web.AppKey[dict[str, tuple[bytes, str, str]]] = web.AppKey("web_files")


def _load() -> dict[str, tuple[bytes, str, str]]:
    """Every file of the app: relative path -> (bytes, content type, ETag)."""
    found: dict[str, tuple[bytes, str, str]] = {}
    root = resources.files("vault.web") / "static"

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, name + "/")
                continue
            suffix = PurePosixPath(entry.name).suffix
            kind = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
            if kind is None:
                continue
            data = entry.read_bytes()
            tag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            found[name] = (data, kind, tag)

    walk(root, "")
    return found


def _answer(request: web.Request, name: str) -> web.Response:
    files = request.app[FILES]
    if name not in files:
        raise web.HTTPNotFound(text="There is no such file in the app.")
    data, kind, tag = files[name]
    headers = {
        "Content-Security-Policy": APP_POLICY,
        "Cache-Control": "no-cache",
        "ETag": tag,
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    }
    if tag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=data, headers=headers)
    response.content_type = kind.split(";")[0]
    if "charset=" in kind:
        response.charset = "utf-8"
    return response


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/app/")


async def index(request: web.Request) -> web.Response:
    return _answer(request, "index.html")


async def asset(request: web.Request) -> web.Response:
    return _answer(request, request.match_info["path"])


async def no_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound("/app/")


def setup(app: web.Application) -> None:
    app[FILES] = _load()
    route(app, "GET", "/", home, audit=None)
    route(app, "GET", "/app", no_slash, audit=None)
    route(app, "GET", "/app/", index, audit=None)
    route(app, "GET", "/app/{path:.+}", asset, audit=None)
