"""Routes declared with the name their calls go on the audit record as.

``route(app, "POST", "/v1/links", create_links, audit="link.issue")``: the
audit vocabulary is written where the route is, not derived from a
handler's name, so renaming a function changes nothing the audit log says,
and tests/api/test_audit_vocabulary.py shows any change to it as a diff. A
GET route answers HEAD too, under the same name. Routes outside the audited
prefixes (``/healthz``, ``/metrics``) pass ``audit=None``; an audited path
without a name stops the app from being made.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

#: The prefixes whose calls are all on the record (vault/api/audit.py).
AUDITED = ("/v1/", "/l/", "/h/", "/x/", "/p/", "/auth/")

#: (method, path pattern) -> audit action.
ACTIONS: web.AppKey[dict[tuple[str, str], str]] = web.AppKey("audit_actions")


def route(
    app: web.Application, method: str, path: str, handler: Handler, *, audit: str | None
) -> None:
    if path.startswith(AUDITED) and not audit:
        raise ValueError(f"{method} {path} is audited: name its audit action")
    if not path.startswith(AUDITED) and audit:
        raise ValueError(f"{method} {path} is not audited: it takes no audit action")
    actions = app.setdefault(ACTIONS, {})
    methods: tuple[str, ...] = (method,)
    if method == "GET":
        app.router.add_get(path, handler)
        methods = ("GET", "HEAD")
    else:
        app.router.add_route(method, path, handler)
    if audit:
        for name in methods:
            actions[(name, path)] = audit


def action_of(request: web.Request) -> str:
    """The audit action of the route the request matched, or ``unmatched``."""
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    resource = info.route.resource
    if resource is None:
        return "unmatched"
    return request.app[ACTIONS].get((info.route.method, resource.canonical), "unmatched")
