"""The request register (API.md 1.1 "Reports and requests"): ``/v1/requests``.

A guardian files a request for their child (or about themselves), the
privacy officer for anyone; each is due four weeks later. The register is
the privacy officer's, a guardian sees their own (the policy decides per
request, ``request.view``); overdue requests come first. Answers are the
privacy officer's and are on the record (the audit event names the
outcome; the note is sealed, vault/rights/register.py).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from vault.api.access import PRINCIPAL, ask, check, now
from vault.api.body import answer, read_body, read_query
from vault.api.models.rights import (
    FiledRequest,
    NewRequest,
    Register,
    RegisterEntry,
    RegisterQuery,
    RequestAnswer,
)
from vault.api.openapi import operation
from vault.api.resources import DB, KEYRING, KEYS, READER
from vault.api.routes import route
from vault.api.trail import note
from vault.directory.children import child_facts
from vault.directory.sealing import Sealer
from vault.errors import NotFound
from vault.policy import Action, ChildTarget, DirectoryTarget, RequestTarget
from vault.rights import register


def _sealer(request: web.Request) -> Sealer:
    app = request.app
    return Sealer(app[DB], app[KEYS], app[KEYRING])


def _entry(found: register.Request, moment: datetime) -> RegisterEntry:
    return RegisterEntry(
        id=found.id,
        type=found.type,  # type: ignore[arg-type]  # stored types are register.TYPES
        child_id=found.child_id,
        status=found.status,  # type: ignore[arg-type]
        received_at=found.received_at,
        due_at=found.due_at,
        overdue=found.overdue(moment),
        answered_at=found.answered_at,
    )


@operation(
    "File a request of a person concerned (a guardian for their child or themselves, or the "
    "privacy officer); it is due four weeks later.",
    tags=["retention"],
    body=NewRequest,
    answer=(201, FiledRequest),
    refusals={403: ("forbidden",), 404: ("not_found",)},
)
async def file_request(request: web.Request) -> web.Response:
    body = await read_body(request, NewRequest)
    if body.child_id is not None:
        note(request, children=[body.child_id])
        child = await child_facts(request.app[READER], body.child_id)
        if child is None:
            raise NotFound()
        check(request, Action.FILE_REQUEST, ChildTarget(child))
    else:
        check(request, Action.FILE_REQUEST, DirectoryTarget())
    filed = await register.file(
        _sealer(request), body.type, body.child_id, request[PRINCIPAL].id, body.note, now(request)
    )
    note(request, request_id=filed.id, type=filed.type)
    return answer(
        FiledRequest(
            id=filed.id,
            type=body.type,
            status="open",
            received_at=filed.received_at,
            due_at=filed.due_at,
        ),
        status=201,
    )


@operation(
    "The register of requests (the privacy officer; a guardian sees their own): overdue "
    "first, then by due date.",
    tags=["retention"],
    query=RegisterQuery,
    answer=Register,
    refusals={403: ("forbidden",)},
)
async def list_requests(request: web.Request) -> web.Response:
    check(request, Action.LIST_REQUESTS, DirectoryTarget())
    query = read_query(request, RegisterQuery)
    moment = now(request)
    found = await register.listing(request.app[DB], moment, filed_by=None, status=query.status)
    shown = [
        _entry(r, moment)
        for r in found
        if ask(request, Action.VIEW_REQUEST, RequestTarget(filed_by=r.filed_by)).allowed
    ]
    return answer(Register(requests=shown))


@operation(
    "Answer a request (the privacy officer); the outcome is on the record.",
    tags=["retention"],
    body=RequestAnswer,
    answer=RegisterEntry,
    refusals={403: ("forbidden",), 404: ("not_found",), 409: ("conflict",)},
)
async def answer_request(request: web.Request) -> web.Response:
    check(request, Action.ANSWER_REQUEST, DirectoryTarget())
    body = await read_body(request, RequestAnswer)
    note(request, request_id=request.match_info["id"])
    found = await register.find(request.app[DB], request.match_info["id"])
    note(request, children=[found.child_id] if found.child_id else [], type=found.type)
    moment = now(request)
    done = await register.answer(
        _sealer(request), found, body.outcome, body.note, request[PRINCIPAL].id, moment
    )
    note(request, answer=body.outcome)
    return answer(_entry(done, moment))


def setup(app: web.Application) -> None:
    route(app, "POST", "/v1/requests", file_request, audit="requests.file")
    route(app, "GET", "/v1/requests", list_requests, audit="requests.list")
    route(app, "POST", "/v1/requests/{id}/answer", answer_request, audit="requests.answer")
