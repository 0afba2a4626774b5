"""The OpenAPI 3.1 document, built from the routes the app has and their models.

Each handler declares its operation once with :func:`operation`: the body,
query and answer models (:mod:`vault.api.models`) and the refusals its own
logic can give. What every call of a kind can answer is added here, so it
is never forgotten: a ``/v1/`` call can answer 401 (with
``WWW-Authenticate``; ``unauthenticated``, or ``totp_required`` for a
session that must still set up its one-time codes), 403 ``blocked``, 429
(with ``Retry-After``) and 503;
a call with a body 400, 408, 413, 415 and 422; a link (``/l/``, ``/h/``,
``/x/``) its conditional and range answers. Error answers list the codes
they can carry as an enum. The document lists every registered route and
only those, so it cannot describe a path that does not exist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

import vault
from vault.api.body import text_fields
from vault.api.models.common import ErrorBody
from vault.api.models.types import REFERENCED

_H = TypeVar("_H", bound=Callable[..., Any])
_ATTR = "__openapi__"
_REF = "#/components/schemas/{name}"

#: What every authenticated call can answer besides its own refusals.
AUTHENTICATED: dict[int, tuple[str, ...]] = {
    401: ("unauthenticated", "totp_required"),
    403: ("blocked",),
    429: ("rate_limited",),
    503: ("storage_unavailable",),
}
#: What every call that reads a JSON body (or an upload's meta) can answer.
WITH_BODY: dict[int, tuple[str, ...]] = {
    400: ("invalid_input",),
    408: ("request_timeout",),
    413: ("too_large",),
    415: ("unsupported_type",),
    422: ("bsn_not_stored",),
}
#: What a link can answer besides its content (API.md "Links").
LINK: dict[int, tuple[str, ...]] = {
    403: (
        "link_invalid",
        "link_expired",
        "forbidden",
        "consent_missing",
        "outside_window",
        "blocked",
        "restricted",
    ),
    404: ("not_found",),
    410: ("destroyed",),
    412: ("conflict",),
    416: ("invalid_input",),
    500: ("integrity_error",),
    503: ("storage_unavailable",),
}

_DESCRIPTIONS = {
    200: "OK.",
    201: "Created.",
    204: "Done; no content.",
    206: "The asked byte range.",
    302: "A redirect; Location says where.",
    304: "Not modified: the client's copy (If-None-Match) is current.",
    400: "The request is malformed (see the message).",
    401: "No, an unknown or a revoked token.",
    403: "Refused (see the code).",
    404: "No such thing, or nothing the caller is related to.",
    408: "The body stopped arriving; the connection is closed.",
    409: "A conflict with the current state.",
    410: "Destroyed under retention or erasure.",
    412: "If-Match names another version.",
    413: "Larger than allowed.",
    415: "Not an accepted type.",
    416: "The range cannot be sent: it starts past the end or ends before it starts "
    "(Content-Range: bytes */size).",
    422: "A citizen service number (BSN) was sent; the vault never stores one.",
    429: "Too many failed logins from this address; Retry-After says when to try again.",
    500: "Stored data failed its integrity check.",
    503: "Storage, the database or the audit log is unreachable; nothing was written.",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
#: Headers an answer of this status always carries.
_ANSWER_HEADERS: dict[int, dict[str, Any]] = {
    302: {
        "Location": {
            "description": "Where to go next.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with.",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer"},
        }
    },
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": _RETRY_AFTER},
}


@dataclasses.dataclass(frozen=True)
class Operation:
    summary: str
    tags: tuple[str, ...]
    answers: Mapping[int, type[msgspec.Struct] | None]
    body: type[msgspec.Struct] | None
    upload: type[msgspec.Struct] | None
    query: type[msgspec.Struct] | None
    path: Mapping[str, Any]
    refusals: Mapping[int, tuple[str, ...]]
    auth: bool
    link: bool
    content: Mapping[str, Any] | None
    #: The body is multipart with one ``file`` part (a replaced file).
    file_only: bool = False

    def models(self) -> list[type[msgspec.Struct]]:
        found = [m for m in self.answers.values() if m is not None]
        return found + [m for m in (self.body, self.upload) if m is not None]


def operation(
    summary: str,
    *,
    tags: list[str],
    answer: type[msgspec.Struct] | tuple[int, type[msgspec.Struct] | None] | None = None,
    body: type[msgspec.Struct] | None = None,
    upload: type[msgspec.Struct] | None = None,
    query: type[msgspec.Struct] | None = None,
    path: Mapping[str, Any] | None = None,
    refusals: Mapping[int, tuple[str, ...]] | None = None,
    auth: bool = True,
    link: bool = False,
    content: Mapping[str, Any] | None = None,
    file_only: bool = False,
) -> Callable[[_H], _H]:
    """Declare the operation a handler serves (see the module's docstring).

    ``answer`` is a model (200), or (status, model or None for no content);
    ``upload`` the ``meta`` model of a multipart upload; ``path`` the type of
    a path parameter that is not a plain string; ``content`` a non-JSON
    answer's media types (for a ``link``: what its content can be);
    ``file_only`` a multipart body of one ``file`` part.
    """
    if answer is None or isinstance(answer, tuple):
        answers = {answer[0]: answer[1]} if answer else {}
    else:
        answers = {200: answer}

    def mark(handler: _H) -> _H:
        spec = Operation(
            summary=summary,
            tags=tuple(tags),
            answers=answers,
            body=body,
            upload=upload,
            query=query,
            path=dict(path or {}),
            refusals=dict(refusals or {}),
            auth=auth,
            link=link,
            content=content,
            file_only=file_only,
        )
        setattr(handler, _ATTR, spec)
        return handler

    return mark


def declared(handler: Any) -> Operation | None:
    spec = getattr(handler, _ATTR, None)
    return spec if isinstance(spec, Operation) else None


def build_document(app: web.Application) -> dict[str, Any]:
    routes: list[tuple[str, str, Any, Operation]] = []
    for route in app.router.routes():
        spec = declared(route.handler)
        resource = route.resource
        if spec is None or resource is None:
            continue
        if route.method == "HEAD" and not spec.link:
            continue
        routes.append((resource.canonical, route.method.lower(), route.handler, spec))
    models: list[type[msgspec.Struct]] = [ErrorBody]
    for found in [*REFERENCED, *(m for *_, spec in routes for m in spec.models())]:
        if found not in models:
            models.append(found)
    _, schemas = msgspec.json.schema_components(models, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, spec in routes:
        paths.setdefault(path, {})[method] = _operation(path, method, handler, spec)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kluis",
            "version": vault.__version__,
            "description": "A vault for the records a childcare organisation keeps about "
            "children. Contract: shared/API.md; choices: docs/api-notes.md.",
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": schemas.pop("ErrorBody"), **dict(sorted(schemas.items()))},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from POST /v1/people or POST /v1/people/{id}/tokens.",
                }
            },
        },
        "security": [{"bearer": []}],
    }


def _operation(path: str, method: str, handler: Any, spec: Operation) -> dict[str, Any]:
    module = handler.__module__.rsplit(".", 1)[-1]
    entry: dict[str, Any] = {
        "operationId": f"{module}_{handler.__name__}" + ("_head" if method == "head" else ""),
        "summary": spec.summary,
        "tags": list(spec.tags),
    }
    parameters = [_path_parameter(name, spec.path.get(name)) for name in _path_params(path)]
    if spec.query is not None:
        parameters += _query_parameters(spec.query)
    if spec.link:
        parameters += _LINK_HEADERS
    if parameters:
        entry["parameters"] = parameters
    if spec.body is not None or spec.upload is not None or spec.file_only:
        entry["requestBody"] = _request_body(spec)
    refusals: dict[int, list[str]] = {}
    extra: list[Mapping[int, tuple[str, ...]]] = [spec.refusals]
    if spec.auth:
        extra.append(AUTHENTICATED)
    if spec.body is not None or spec.upload is not None or spec.file_only:
        extra.append(WITH_BODY)
    if spec.query is not None or spec.path:
        extra.append({400: ("invalid_input",)})
    if spec.query is not None and text_fields(spec.query):
        extra.append({422: ("bsn_not_stored",)})  # free text in the query is scanned too
    if spec.link:
        extra.append(LINK)
    for mapping in extra:
        for status, codes in mapping.items():
            known = refusals.setdefault(status, [])
            known.extend(c for c in codes if c not in known)
    responses: dict[str, Any] = {}
    if spec.link:
        responses.update(_link_answers(head=method == "head", media_types=spec.content))
    for status, model in spec.answers.items():
        answer: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "OK.")}
        if status in _ANSWER_HEADERS:
            answer["headers"] = dict(_ANSWER_HEADERS[status])
        if model is not None:
            answer["content"] = _json(_ref(model))
        if spec.content is not None:
            # Beside the model's JSON (a report's printable page), or instead of it.
            answer["content"] = {**answer.get("content", {}), **spec.content}
        responses[str(status)] = answer
    for status in sorted(refusals):
        responses[str(status)] = _refusal(status, refusals[status], head=method == "head")
    entry["responses"] = dict(sorted(responses.items()))
    if not spec.auth:
        entry["security"] = []
    return entry


def _refusal(status: int, codes: list[str], *, head: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Refused.")}
    if not head:
        answer["content"] = _json(
            {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": codes},
                            "message": {"type": "string"},
                        },
                    }
                },
            }
        )
    headers = dict(_STATUS_HEADERS.get(status, {}))
    if status == 416:
        headers["Content-Range"] = _header("bytes */size", required=True)
    if headers:
        answer["headers"] = headers
    return answer


#: format "binary" beside 3.1's contentMediaType: what generators
#: (openapi-python-client) read as a file.
_FILE = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}


def _request_body(spec: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {}
    required = True
    if spec.file_only:
        content["multipart/form-data"] = {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": _FILE}}
        }
    if spec.upload is not None:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "required": ["meta", "file"],
                "properties": {
                    "meta": _ref(spec.upload),
                    "file": _FILE,
                },
            },
            "encoding": {"meta": {"contentType": "application/json"}},
        }
    if spec.body is not None:
        content["application/json"] = {"schema": _ref(spec.body)}
        info = msgspec.inspect.type_info(spec.body)
        assert isinstance(info, msgspec.inspect.StructType)
        required = spec.upload is not None or any(f.required for f in info.fields)
    return {"required": required, "content": content}


def _query_parameters(model: type[msgspec.Struct]) -> list[dict[str, Any]]:
    _, schemas = msgspec.json.schema_components([model], ref_template=_REF)
    properties = schemas[model.__name__]["properties"]
    required = set(schemas[model.__name__].get("required", ()))
    out = []
    for name, schema in properties.items():
        schema = dict(schema)
        description = schema.pop("description", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            parameter["description"] = description
        parameter["schema"] = schema
        out.append(parameter)
    return out


def _path_parameter(name: str, type_: Any) -> dict[str, Any]:
    schema = msgspec.json.schema(type_) if type_ is not None else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _header(description: str, *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_LINK_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
    for name, description in (
        ("Range", "One byte range, bytes=first-last, bytes=first- or bytes=-suffix."),
        ("If-Range", "Send the range only while the content still has this ETag."),
        ("If-None-Match", "304 if one of these ETags matches (weak comparison)."),
        ("If-Match", "412 unless one of these ETags matches (strong comparison)."),
    )
]


#: What a link to a record can carry: the types sanitised uploads are stored
#: in (sniffed, never the client's), and a diary entry's text.
LINK_MEDIA = ("image/*", "video/*", "application/pdf", "text/plain")


def _link_answers(*, head: bool, media_types: Mapping[str, Any] | None) -> dict[str, Any]:
    common = {
        "Content-Type": _header("The type sniffed at upload, never the client's.", required=True),
        "Content-Length": _header("The bytes of this answer.", required=True),
        "ETag": _header("A strong validator of the content.", required=True),
        "Accept-Ranges": _header("bytes", required=True),
        "Cache-Control": _header("How long a copy may be reused.", required=True),
        "Content-Disposition": _header("inline or attachment, with the file name."),
    }
    binary = {
        media: {"schema": {"type": "string", "format": "binary", "contentMediaType": media}}
        for media in (media_types or LINK_MEDIA)
    }
    whole: dict[str, Any] = {"description": "The content.", "headers": common}
    part: dict[str, Any] = {
        "description": _DESCRIPTIONS[206],
        "headers": {**common, "Content-Range": _header("bytes first-last/size", required=True)},
    }
    if not head:
        whole["content"] = binary
        part["content"] = binary
    return {
        "200": whole,
        "206": part,
        "304": {"description": _DESCRIPTIONS[304], "headers": {"ETag": common["ETag"]}},
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(model: type[msgspec.Struct]) -> dict[str, Any]:
    name = "Error" if model is ErrorBody else model.__name__
    return {"$ref": _REF.format(name=name)}


def _path_params(path: str) -> list[str]:
    names = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            names.append(part[1:-1].split(":")[0])
    return names
