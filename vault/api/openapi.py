"""The OpenAPI 3.1 document, built from the routes the app actually has.

Each handler carries its description through :func:`operation`; the document
lists every registered route, so it grows with the API and cannot describe a
path that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

import vault

_H = TypeVar("_H", bound=Callable[..., Any])
_ATTR = "__openapi__"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def operation(
    summary: str,
    *,
    tags: list[str],
    responses: dict[int, str],
    auth: bool = True,
    request_body: dict[str, Any] | None = None,
    response_schema: dict[str, Any] | None = None,
) -> Callable[[_H], _H]:
    """Attach the OpenAPI description of one operation to its handler."""

    def mark(handler: _H) -> _H:
        spec: dict[str, Any] = {"summary": summary, "tags": tags, "responses": {}}
        for status, description in responses.items():
            answer: dict[str, Any] = {"description": description}
            if status >= 400:
                answer["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                }
            elif response_schema is not None and status < 300:
                answer["content"] = {"application/json": {"schema": response_schema}}
            spec["responses"][str(status)] = answer
        if not auth:
            spec["security"] = []
        if request_body is not None:
            spec["requestBody"] = request_body
        setattr(handler, _ATTR, spec)
        return handler

    return mark


def build_document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        spec = getattr(route.handler, _ATTR, None)
        resource = route.resource
        if spec is None or resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        entry = dict(spec)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(path)
        ]
        if params:
            entry["parameters"] = params
        paths.setdefault(path, {})[route.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kluis",
            "version": vault.__version__,
            "description": "A vault for the records a childcare organisation keeps about "
            "children. Contract: shared/API.md.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _path_params(path: str) -> list[str]:
    names = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            names.append(part[1:-1].split(":")[0])
    return names
